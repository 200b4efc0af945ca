"""Evaluation: play a split with a model, save trajectories, and summarise them."""

from coursecorrect.eval.harness import EvalConfig, evaluate
from coursecorrect.eval.metrics import repeated_subsequences, summarize

__all__ = ["EvalConfig", "evaluate", "repeated_subsequences", "summarize"]
