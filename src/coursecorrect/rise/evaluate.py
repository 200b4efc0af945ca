"""RISE evaluation: sequential (T turns, one sample each, always told "incorrect") and parallel (one turn,
several samples), with the metrics of :mod:`coursecorrect.rise.metrics` and a plot of accuracy per turn.

Writes ``OUT/sequential/part-*.jsonl``, ``OUT/parallel/part-*.jsonl`` (resumable), ``OUT/summary.json`` and
``OUT/accuracy.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from coursecorrect.config import MAX_COUNT, MAX_SAMPLES, MAX_SIZE, MAX_STEPS, MAX_TOKENS, Config, Seed
from coursecorrect.envs import EnvConfig
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import LLM, LLMConfig, SamplingParams
from coursecorrect.rise.collect import default_env
from coursecorrect.rise.metrics import parallel_metrics, sequential_metrics
from coursecorrect.rise.parts import read_parts, run_in_parts
from coursecorrect.rise.plots import plot_accuracy
from coursecorrect.rise.prompt import math_env
from coursecorrect.rise.records import Rollout
from coursecorrect.rise.rollout import TurnPlan, roll_out
from coursecorrect.rundir import RunDir

SUMMARY_FILE = "summary.json"


class RiseEvalSettings(Config):
    """How a model is evaluated (the part a RISE run configures once)."""

    split: str = Field("test", description="task split")
    limit: int | None = Field(None, ge=1, le=MAX_COUNT, description="only the first N problems")
    turns: int = Field(5, ge=1, le=MAX_STEPS, description="sequential turns")
    parallel_samples: int = Field(
        5, ge=0, le=MAX_SAMPLES, description="samples of the parallel evaluation (0 = skip it)"
    )
    temperature: float = Field(0.0, ge=0, description="sequential turns' temperature (0 = greedy)")
    parallel_temperature: float = Field(0.7, gt=0, description="parallel samples' temperature")
    max_new_tokens: int = Field(256, ge=1, le=MAX_TOKENS, description="tokens per attempt")
    window: int | None = Field(None, ge=1, le=MAX_STEPS, description="keep only the last k attempts in context")
    chunk_size: int = Field(32, ge=1, le=MAX_SIZE, description="problems evaluated together")
    seed: Seed = Field(0, description="sampling seed")


class RiseEvalConfig(RiseEvalSettings):
    """A turn-wise evaluation of one model."""

    env: EnvConfig = Field(default_factory=default_env, description="a math env: reasoning-gym, gsm8k or math")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the model evaluated")


def rise_evaluate(config: RiseEvalConfig, out_dir: Path, llm: LLM | None = None, progress: bool = True) -> dict:
    """Evaluate ``config.model`` (or the loaded ``llm``) into ``out_dir`` (resuming); return the summary."""
    env = math_env(config.env.make())
    task_ids = env.task_ids(config.split)[: config.limit]
    run = RunDir.open(out_dir, config.model_copy(update={"limit": None}))
    model = config.model.model
    sequential = SamplingParams(temperature=config.temperature, max_new_tokens=config.max_new_tokens)
    backend: list[LLM] = [llm] if llm is not None else []

    def loaded() -> LLM:
        if not backend:
            backend.append(config.model.make())
        return backend[0]

    def turns(chunk: list[int]) -> list[Rollout]:
        plan = [TurnPlan(loaded(), model, sequential)] * config.turns
        return roll_out(env, chunk, plan, seed=config.seed,
                        stop_on_success=False, window=config.window)

    def samples(chunk: list[int]) -> list[Rollout]:
        params = SamplingParams(n=config.parallel_samples, temperature=config.parallel_temperature,
                                max_new_tokens=config.max_new_tokens)
        return roll_out(env, chunk, [TurnPlan(loaded(), model, params)], seed=config.seed + 1,
                        stop_on_success=False, keep_samples=True)

    start = time.perf_counter()
    try:
        run_in_parts(run.root / "sequential", task_ids, config.chunk_size, turns, "sequential", progress)
        if config.parallel_samples:
            run_in_parts(run.root / "parallel", task_ids, config.chunk_size, samples, "parallel", progress)
    finally:
        if llm is None and backend:
            backend[0].close()
        env.close()
    wanted = set(task_ids)
    summary: dict[str, Any] = {"env": env.name, "model": model, "split": config.split}
    summary |= sequential_metrics([r for r in read_parts(run.root / "sequential") if r.task_id in wanted],
                                  config.turns)
    if config.parallel_samples:
        summary |= parallel_metrics([r for r in read_parts(run.root / "parallel") if r.task_id in wanted],
                                    config.parallel_samples)
    summary["wall_seconds_this_run"] = round(time.perf_counter() - start, 2)
    atomic_write_json(run.root / SUMMARY_FILE, summary)
    plot_accuracy({model: summary["accuracy_per_turn"]}, run.root / "accuracy.png", f"{env.name} {config.split}")
    return summary
