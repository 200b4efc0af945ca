"""``coursecorrect rise run``: RISE iterations in one resumable run directory.

    runs/NAME/
      config.yaml
      eval/                the starting model, turn-wise (iteration 0)
      iter_1/collect/      rollouts of the current model (and teacher): rollouts/part-*.jsonl
      iter_1/data/         weighted examples (data.jsonl, counts.json)
      iter_1/train/        the fine-tuned model (model/), trained from the current model
      iter_1/eval/         the new model, turn-wise
      report.md, accuracy.png

Each stage writes its artefacts, then its ``DONE.json``; re-running skips finished stages and resumes the first
unfinished one (rollouts and evaluation also resume inside the stage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from coursecorrect.config import MAX_STEPS, Config
from coursecorrect.console import console
from coursecorrect.data.conversation import read_conversations, write_conversations
from coursecorrect.envs import EnvConfig
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import MANAGED_BACKENDS, LLMConfig
from coursecorrect.llm.actor import Actor
from coursecorrect.rise.collect import (
    ROLLOUTS_DIR,
    RiseCollectConfig,
    RiseCollectSettings,
    collect_rollouts,
    default_env,
)
from coursecorrect.rise.data import RiseDataConfig, rise_examples
from coursecorrect.rise.evaluate import RiseEvalConfig, RiseEvalSettings, rise_evaluate
from coursecorrect.rise.parts import read_parts
from coursecorrect.rise.report import write_rise_report
from coursecorrect.rundir import RunDir, run_stage
from coursecorrect.train.sft import TrainConfig, train_sft


class RiseRunConfig(Config):
    """RISE: evaluate the starting model, then ``iterations`` × (collect → data → train → eval)."""

    env: EnvConfig = Field(default_factory=default_env, description="a math env: reasoning-gym, gsm8k or math")
    model: LLMConfig = Field(
        default_factory=LLMConfig,
        description="the starting model (an alias or folder that transformers loads, for training) and the backend "
        "that samples from each iteration's model: transformers, vllm, vllm-server or llama-cpp",
    )
    teacher: LLMConfig | None = Field(None, description="the model of teacher turns (any backend)")
    iterations: int = Field(1, ge=0, le=MAX_STEPS, description="RISE iterations after the first evaluation")
    collect: RiseCollectSettings = Field(
        default_factory=RiseCollectSettings, description="rollouts of training problems (env, model, teacher: above)"
    )
    data: RiseDataConfig = Field(
        default_factory=RiseDataConfig, description="which rollout turns become training examples, and their weights"
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="SFT settings; model is set by the run")
    eval: RiseEvalSettings = Field(
        default_factory=RiseEvalSettings, description="turn-wise evaluation of each model (env and model: above)"
    )

    @model_validator(mode="after")
    def _checks(self) -> RiseRunConfig:
        if self.model.backend == "openai":
            raise ValueError(
                "rise run fine-tunes a new model every iteration, so the model needs backend 'transformers' or an "
                f"engine coursecorrect starts with each model ({', '.join(MANAGED_BACKENDS)}): a running server "
                "cannot pick up its weights; it can be the teacher"
            )
        RiseCollectConfig.model_validate({**self.collect.model_dump(), "teacher": self.teacher})
        return self


def run_rise(config: RiseRunConfig, out_dir: Path, progress: bool = True) -> Path:
    """Run (or resume) RISE in ``out_dir``; return the report's path."""
    run = RunDir.open(out_dir, config)
    actor = Actor(config.model)
    try:
        current = config.model.model
        run_stage(run, "eval", None, lambda path: _evaluate(config, current, path, actor, progress))
        for i in range(1, config.iterations + 1):
            model_i = current
            run_stage(run, "collect", i, lambda path, m=model_i: _collect(config, m, path, actor, progress))
            run_stage(run, "data", i, lambda path, i=i: _data(config, run, i, path))
            actor.release()  # training needs the memory; the next stage reloads the new model
            trained = run_stage(run, "train", i, lambda path, i=i, m=model_i: _train(config, run, i, m, path, progress))
            current = trained["model"]
            run_stage(run, "eval", i, lambda path, m=current: _evaluate(config, m, path, actor, progress))
    finally:
        actor.release()
    return write_rise_report(run.root)


def _evaluate(config: RiseRunConfig, model: str, path: Path, actor: Actor, progress: bool) -> dict[str, Any]:
    spec = RiseEvalConfig(**config.eval.model_dump(), env=config.env, model=actor.config_for(model))
    return {**rise_evaluate(spec, path, llm=actor.get(model), progress=progress), "served": actor.served()}


def _collect(config: RiseRunConfig, model: str, path: Path, actor: Actor, progress: bool) -> dict[str, Any]:
    spec = RiseCollectConfig(**config.collect.model_dump(), env=config.env, model=actor.config_for(model),
                             teacher=config.teacher)
    summary = collect_rollouts(spec, path, llm=actor.get(model), progress=progress)
    return {"model": model, "served": actor.served(), **summary}


def _data(config: RiseRunConfig, run: RunDir, iteration: int, path: Path) -> dict[str, Any]:
    rollouts = read_parts(run.stage("collect", iteration).path / ROLLOUTS_DIR)
    examples, counts = rise_examples(rollouts, config.data)
    write_conversations(path / "data.jsonl", examples)
    atomic_write_json(path / "counts.json", counts)
    return counts


def _train(config: RiseRunConfig, run: RunDir, iteration: int, model: str, path: Path, progress: bool) -> dict:
    data = list(read_conversations(run.stage("data", iteration).path / "data.jsonl"))
    if not data:
        console.print("[yellow]no training data this iteration: the model is carried over unchanged[/yellow]")
        return {"skipped": "no training data", "model": model}
    summary = train_sft(config.train, data, path, progress=progress, base_model=model)
    return {**summary, "model": str(path / "model")}
