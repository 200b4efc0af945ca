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

A method whose training data and settings turn out identical to an earlier method's, iteration by iteration
(``good``, ``optimal`` and ``optimal+good`` on an env whose rewards are only 0 or 1), takes that method's models,
evaluations and next trees instead of remaking them (:func:`~coursecorrect.pipeline.compare_folders.twin_of`);
the report says so.

Within a seed, every method first builds its iteration-1 data, then each method runs to its end in turn. So the
shared trees are needed only until the first data are built, and a run resumed on another machine (git keeps
neither models nor trees) remakes at most the warm start, those trees, and the models of the one method it stopped
in; a finished method's models are not remade.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from coursecorrect.config import Config, Seed, apply_overrides
from coursecorrect.console import console
from coursecorrect.errors import ConfigError
from coursecorrect.llm.actor import Actor
from coursecorrect.pipeline.compare_folders import method_dir, method_stages, twin_of
from coursecorrect.pipeline.compare_report import write_compare_report
from coursecorrect.pipeline.run import RunConfig, check_run_config, loop_stages
from coursecorrect.rundir import RunDir, StageDir
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
                shared = method_stages(root, seed, method, config.methods)
                run = RunDir.open(method_dir(root, seed, method), spec, shared=shared)
                gold = spec.data.mode == "gold"
                steps = _steps_of(root, seed, config.control_steps_like, config.methods) if gold else None
                runs.append((method, spec, run, steps))
            for _, spec, run, steps in runs:  # every method's first data first: then the shared trees are done with
                for key in loop_stages(spec, run, actor, progress, train_steps=steps):
                    if key == ("data", 1):
                        break
            for method, spec, run, steps in runs:
                for stage, _ in loop_stages(spec, run, actor, progress, train_steps=steps):
                    if stage == "data":  # new data: a twin's next stages may now be the earlier method's
                        _take_twin_stages(root, seed, method, config.methods, run)
    finally:
        actor.release()
    return write_compare_report(root)


def _take_twin_stages(root: Path, seed: int, method: str, methods: list[str], run: RunDir) -> None:
    """Point ``run``'s stages that repeat an earlier method's training at that method's folders."""
    stages = method_stages(root, seed, method, methods)
    if (twin := twin_of(root, seed, method, methods)) and any(run.shared.get(k) != v for k, v in stages.items()):
        other, iterations = twin
        console.print(f"[cyan]{method} trains on the same data with the same settings as {other} up to iteration "
                      f"{iterations[-1]}: taking its models, evaluations and trees[/cyan]")
    run.shared.update(stages)


def _steps_of(root: Path, seed: int, method: str, methods: list[str]) -> Callable[[int], int | None]:
    """``train_steps`` for the control: the optimizer steps ``method`` took in each iteration (None: unknown)."""

    def steps(iteration: int) -> int | None:
        run = RunDir(method_dir(root, seed, method), method_stages(root, seed, method, methods))
        train = StageDir(run.path_of("train", iteration))
        if not train.is_done():
            return None
        return train.summary().get("steps") or None

    return steps
