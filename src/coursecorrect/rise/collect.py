"""RISE data collection: roll out training problems for up to T turns, each turn's best of ``num_samples``
from the learner itself (self-distillation) or from a teacher, stopping at the first correct turn.

Writes ``OUT/rollouts/part-*.jsonl`` (resumable, see :mod:`coursecorrect.rise.parts`) and ``OUT/summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from coursecorrect.config import MAX_COUNT, MAX_SAMPLES, MAX_SIZE, MAX_STEPS, MAX_TOKENS, Config, Seed
from coursecorrect.envs import EnvConfig
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import LLM, LLMConfig, SamplingParams
from coursecorrect.rise.parts import read_parts, run_in_parts
from coursecorrect.rise.prompt import math_env
from coursecorrect.rise.records import Rollout
from coursecorrect.rise.rollout import TurnPlan, roll_out
from coursecorrect.rundir import RunDir

ROLLOUTS_DIR = "rollouts"
SUMMARY_FILE = "summary.json"


def default_env() -> EnvConfig:
    return EnvConfig(name="reasoning-gym", max_steps=5)


class TurnSpec(Config):
    """How one turn is answered: the best of ``num_samples`` from the learner or the teacher."""

    model: Literal["learner", "teacher"] = Field("learner", description="who answers this turn")
    num_samples: int = Field(
        1, ge=1, le=MAX_SAMPLES, description="samples drawn; the best-graded one is kept (ties: the first)"
    )
    temperature: float = Field(0.7, ge=0, description="sampling temperature (0 = greedy)")


class RiseCollectSettings(Config):
    """How problems are rolled out (the part of a collection that a RISE run configures once)."""

    turns: list[TurnSpec] = Field(
        default_factory=lambda: [TurnSpec(), TurnSpec(num_samples=16, temperature=1.0)],
        min_length=1, max_length=MAX_STEPS,
        description="one entry per turn (released RISE: 1 learner sample, then best-of-16)",
    )
    split: str = Field("train", description="task split to roll out")
    limit: int | None = Field(None, ge=1, le=MAX_COUNT, description="only the first N problems of the split")
    max_new_tokens: int = Field(256, ge=1, le=MAX_TOKENS, description="tokens per attempt")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    window: int | None = Field(None, ge=1, le=MAX_STEPS, description="keep only the last k attempts in context")
    drop_degenerate: bool = Field(True, description="samples looping on a phrase are never kept")
    chunk_size: int = Field(
        32, ge=1, le=MAX_SIZE, description="problems rolled out together (one backend call per turn)"
    )
    seed: Seed = Field(0, description="sampling seed")


class RiseCollectConfig(RiseCollectSettings):
    """A RISE collection: problems, the learner (and teacher), and the turns."""

    env: EnvConfig = Field(default_factory=default_env, description="a math env: reasoning-gym, gsm8k or math")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the learner")
    teacher: LLMConfig | None = Field(None, description="the model of teacher turns, e.g. a server")

    @model_validator(mode="after")
    def _teacher_when_used(self) -> RiseCollectConfig:
        if any(t.model == "teacher" for t in self.turns) and self.teacher is None:
            raise ValueError("a turn is answered by the teacher, but no teacher model is configured")
        return self


def plans(config: RiseCollectConfig, llms: dict[str, LLM]) -> list[TurnPlan]:
    names = {"learner": config.model.model, "teacher": config.teacher.model if config.teacher else ""}
    return [
        TurnPlan(llms[t.model], names[t.model], SamplingParams(
            n=t.num_samples, temperature=t.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens,
        ))
        for t in config.turns
    ]


def collect_rollouts(
    config: RiseCollectConfig, out_dir: Path, llm: LLM | None = None, progress: bool = True
) -> dict[str, Any]:
    """Roll out ``config``'s problems into ``out_dir`` (resuming) and return the summary. ``llm`` is the
    learner when already loaded."""
    env = math_env(config.env.make())
    task_ids = env.task_ids(config.split)[: config.limit]
    run = RunDir.open(out_dir, config.model_copy(update={"limit": None}))
    owned: list[LLM] = []
    llms: dict[str, LLM] = {}

    def loaded(role: str) -> LLM:
        if role not in llms:
            if role == "learner" and llm is not None:
                llms[role] = llm
            else:
                llms[role] = (config.model if role == "learner" else config.teacher).make()
                owned.append(llms[role])
        return llms[role]

    def work(chunk: list[int]) -> list[Rollout]:
        for spec in config.turns:
            loaded(spec.model)
        return roll_out(env, chunk, plans(config, llms), seed=config.seed,
                        stop_on_success=True, window=config.window, drop_degenerate=config.drop_degenerate)

    start = time.perf_counter()
    try:
        processed = run_in_parts(run.root / ROLLOUTS_DIR, task_ids, config.chunk_size, work, "rollouts", progress)
    finally:
        for backend in owned:
            backend.close()
        env.close()
    wanted = set(task_ids)
    summary = {**rollout_stats([r for r in read_parts(run.root / ROLLOUTS_DIR) if r.task_id in wanted],
                               len(config.turns)),
               "problems_this_run": processed, "wall_seconds_this_run": round(time.perf_counter() - start, 2)}
    atomic_write_json(run.root / SUMMARY_FILE, summary)
    return summary


def rollout_stats(records: list[Rollout], turns: int) -> dict[str, Any]:
    """How many problems were solved, and at which turn."""
    solved_at = [0] * turns
    for record in records:
        for t, turn in enumerate(record.turns):
            if turn.grade == 1:
                solved_at[t] += 1
                break
    n = max(len(records), 1)
    return {
        "problems": len(records),
        "solved": sum(solved_at),
        "solved_at_turn": solved_at,
        "first_turn_accuracy": round(solved_at[0] / n, 4),
        "solved_after_a_wrong_turn": sum(solved_at[1:]),
        "stopped_degenerate": sum(r.stop == "degenerate" for r in records),
        "samples": sum(t.samples for r in records for t in r.turns),
    }
