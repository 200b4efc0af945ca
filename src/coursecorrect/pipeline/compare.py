"""``coursecorrect compare``: Agent-R and its baselines from one starting model, over several seeds.

    OUT/
      config.yaml
      warm_start/, eval/           the starting model and its test episodes: shared by every seed and method
      seed_S/iter_1/collect/       iteration 1's trees (the starting model searches): shared by every method
      seed_S/METHOD/               one run per method and seed (the layout of ``coursecorrect run``, without
                                   the shared stages): iter_I/{data,train,eval,revision}, iter_2/collect, ...
      report.md, *.png             written by ``coursecorrect report OUT``

A method is a preset (:data:`PRESETS`) of data and training settings, or a variant of one (``variants``).
Every method of a seed builds its iteration-1 data from the same tree files. The seed moves the search, the
revision thoughts, the pair shuffle and the training order; the warm start and the greedy iteration-0
evaluation do not depend on it. ``gold`` (the control) trains on the warm start's expert data for as many
optimizer steps as ``control_steps_like`` took in the same iteration. Stages resume like ``run``'s.

Within a seed, every method first builds its iteration-1 data, then each method runs to its end in turn. So the
shared trees are needed only until the first data are built, and a run resumed on another machine (git keeps
neither models nor trees) remakes at most the warm start, those trees, and the models of the one method it stopped
in; a finished method's models are not remade.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from coursecorrect.config import Config, Seed, apply_overrides
from coursecorrect.errors import ConfigError
from coursecorrect.llm.actor import Actor
from coursecorrect.pipeline.compare_folders import method_dir, shared_stages
from coursecorrect.pipeline.compare_report import write_compare_report
from coursecorrect.pipeline.run import RunConfig, check_run_config, loop_stages, run_loop
from coursecorrect.rundir import RunDir
from coursecorrect.train.dpo import DPOStageConfig

PRESETS: dict[str, dict[str, Any]] = {
    "agent-r": {"data.mode": "agent-r", "data.critic": "model"},
    "agent-r-value": {"data.mode": "agent-r", "data.critic": "value"},
    "direct-revision": {"data.mode": "direct-revision"},
    "good": {"data.mode": "good"},
    "optimal": {"data.mode": "optimal"},
    "optimal+good": {"data.mode": "optimal+good"},
    "eto": {"data.mode": "good"},  # + DPO (the compare config's dpo section)
    "gold": {"data.mode": "gold"},
}
SHARED_PREFIXES = ("data.", "train.")  # what a variant may change: the shared stages must stay identical


class Variant(Config):
    """A method of your own: a preset with some data or training settings changed."""

    preset: str = Field(description=f"the method it starts from: {', '.join(PRESETS)}")
    set: dict[str, Any] = Field(
        default_factory=dict, description="dotted data.* / train.* settings, e.g. {'data.accumulate': true}"
    )


class CompareConfig(RunConfig):
    """A run config (the shared settings) plus the methods and seeds to compare."""

    methods: list[str] = Field(
        default_factory=lambda: list(PRESETS), description="presets or variant names, run in this order"
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], description="seeds of search, data and training")
    variants: dict[str, Variant] = Field(default_factory=dict, description="named variants of presets")
    dpo: DPOStageConfig | None = Field(default_factory=DPOStageConfig, description="ETO's DPO stage")
    control_steps_like: str = Field("agent-r", description="the method whose optimizer steps gold copies")

    @model_validator(mode="after")
    def _methods(self) -> CompareConfig:
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must name each method once, got {self.methods}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must list each seed once, got {self.seeds}")
        if self.iterations < 1:
            raise ValueError("compare needs at least one iteration")
        for name in self.methods:
            if name not in PRESETS and name not in self.variants:
                raise ValueError(f"unknown method {name!r}; presets: {', '.join(PRESETS)}, or define a variant")
        for name, variant in self.variants.items():
            if name in PRESETS:
                raise ValueError(f"variant {name!r} has a preset's name")
            if variant.preset not in PRESETS:
                raise ValueError(f"variant {name!r}: unknown preset {variant.preset!r}")
            bad = [key for key in variant.set if not key.startswith(SHARED_PREFIXES)]
            if bad:
                raise ValueError(f"variant {name!r} may set only data.* and train.* (shared stages), not {bad}")
        return self

    def preset_of(self, method: str) -> str:
        return self.variants[method].preset if method in self.variants else method

    def method_config(self, method: str, seed: int) -> RunConfig:
        """The run config of one method and seed."""
        data = self.model_dump(mode="json", exclude={"methods", "seeds", "variants", "dpo", "control_steps_like"})
        preset = self.preset_of(method)
        overrides = {**PRESETS[preset], **(self.variants[method].set if method in self.variants else {})}
        overrides |= {"collect.mcts.seed": seed, "data.seed": seed, "data.pairs.seed": seed, "train.seed": seed}
        data = apply_overrides(data, overrides)
        if preset == "eto":
            data["dpo"] = (self.dpo or DPOStageConfig()).model_dump(mode="json") | {"seed": seed}
        try:
            return RunConfig.model_validate(data)
        except ValueError as exc:
            raise ConfigError(f"method {method!r}: {exc}") from None


def run_compare(config: CompareConfig, out_dir: Path, progress: bool = True) -> Path:
    """Run (or resume) every method for every seed; return the report's path."""
    check_run_config(config)
    root = RunDir.open(out_dir, config).root
    order = sorted(config.methods, key=lambda m: config.preset_of(m) == "gold")  # the control copies step counts
    actor = Actor(config.model)
    try:
        for seed in config.seeds:
            runs = []
            for method in order:
                spec = config.method_config(method, seed)
                run = RunDir.open(method_dir(root, seed, method), spec, shared=shared_stages(root, seed))
                steps = _steps_of(root, seed, config.control_steps_like) if spec.data.mode == "gold" else None
                runs.append((spec, run, steps))
            for spec, run, steps in runs:  # every method's first data first: then the shared trees are done with
                for key in loop_stages(spec, run, actor, progress, train_steps=steps):
                    if key == ("data", 1):
                        break
            for spec, run, steps in runs:
                run_loop(spec, run, actor, progress, train_steps=steps)
    finally:
        actor.release()
    return write_compare_report(root)


def _steps_of(root: Path, seed: int, method: str) -> Callable[[int], int | None]:
    """``train_steps`` for the control: the optimizer steps ``method`` took in each iteration (None: unknown)."""

    def steps(iteration: int) -> int | None:
        done = method_dir(root, seed, method) / f"iter_{iteration}" / "train" / "DONE.json"
        if not done.is_file():
            return None
        return json.loads(done.read_text(encoding="utf-8")).get("steps") or None

    return steps
