"""``coursecorrect run``: the whole Agent-R loop in one resumable run directory.

    runs/NAME/
      config.yaml
      warm_start/          SFT on expert (gold) trajectories, so a weak base model finds some successes
      eval/                the starting model on the test split (iteration 0; its failures feed revision ability)
      iter_1/collect/ENV/  MCTS trees of the current model
      iter_1/data/         revision + good trajectories (data.jsonl, counts.json)
      iter_1/train/        the fine-tuned model (model/) — iteration 1 trains the starting model, later ones
                           continue from the previous iteration's
      iter_1/eval/ENV/     the new model on the test split
      iter_1/revision/ENV/ revision ability: the starting model's failures continued by the new model
      report.md, *.png

Each stage writes its artefacts, then its ``DONE.json``; re-running the command skips finished stages and
resumes the first unfinished one (collection and evaluation also resume inside the stage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from coursecorrect.config import MAX_COUNT, MAX_EPOCHS, MAX_STEPS, Config, Seed
from coursecorrect.console import console
from coursecorrect.data.conversation import Conversation, read_conversations, write_conversations
from coursecorrect.data.preferences import read_preferences, write_preferences
from coursecorrect.data.tree import Tree, load_trees, trees_digest
from coursecorrect.envs import EnvConfig
from coursecorrect.errors import ConfigError
from coursecorrect.eval.critic_accuracy import critic_agreement, records_from_trees
from coursecorrect.eval.harness import EvalConfig, EvalSettings, evaluate
from coursecorrect.eval.revision_ability import RevisionAbilityConfig, revision_ability
from coursecorrect.llm import MANAGED_BACKENDS, LLMConfig
from coursecorrect.llm.actor import Actor
from coursecorrect.pipeline.report import write_report
from coursecorrect.revision.build import (
    DATA_FILE,
    BuildConfig,
    BuildResult,
    build_data,
    gold_conversations,
    summarize,
    write_data,
)
from coursecorrect.revision.preferences import preference_pairs
from coursecorrect.rundir import RunDir, StageDir, run_stage
from coursecorrect.search.collect import CollectConfig, CollectSettings, collect
from coursecorrect.train.dpo import DPOStageConfig, train_dpo
from coursecorrect.train.sft import MODEL_DIR, TrainConfig, train_sft

PREFERENCES_FILE = "preferences.jsonl"
TEXTCRAFT = "textcraft"


class WarmStartConfig(Config):
    """SFT on the envs' expert trajectories before the first iteration."""

    enabled: bool = Field(True, description="train on gold trajectories first (needed by weak base models)")
    split: str = Field("train", description="split whose tasks the expert plays")
    limit: int | None = Field(
        200, ge=1, le=MAX_COUNT, description="expert trajectories per env (first N tasks of the split)"
    )
    task_ids: list[int] | None = Field(None, min_length=1, description="these tasks instead of the split's")
    epochs: float = Field(2, gt=0, le=MAX_EPOCHS, description="epochs over the gold data")
    max_steps: int | None = Field(None, ge=1, le=MAX_COUNT, description="optimizer steps instead of epochs")
    seed: Seed = Field(0, description="training seed of the warm start (compare shares one warm start across seeds)")


class RunCollectConfig(CollectSettings):
    """Stage 1 of every iteration: MCTS on training tasks, in every env with the current model."""

    max_steps: int = Field(20, ge=1, le=MAX_STEPS, description="env step limit during search (the paper: 20)")


class RunDataConfig(BuildConfig):
    """Stage 2: revision trajectories. ``alphas[i - 1]`` replaces ``pairs.alpha`` in iteration ``i``."""

    alphas: list[float] = Field(
        default_factory=lambda: [0.5, 0.7, 1.0],
        description="α of iterations 1, 2, 3, ... (the last one repeats for further iterations)",
    )
    accumulate: bool = Field(
        False, description="train iteration i on the data of iterations 1..i (false: on iteration i's data only)"
    )


class RunTrainConfig(TrainConfig):
    """Stage 3: SFT. ``model`` and ``epochs`` are set by the run (the current model; epochs below)."""

    epochs_first: float = Field(3, gt=0, le=MAX_EPOCHS, description="epochs of iteration 1 (the paper: 3)")
    epochs_later: float = Field(1, gt=0, le=MAX_EPOCHS, description="epochs of later iterations (the paper: 1)")
    start: Literal["previous", "initial"] = Field(
        "previous",
        description="where iteration i's training starts: the previous iteration's model (Agent-R), or the starting "
        "model, as STaR does (pair it with data.accumulate)",
    )
    mix_gold: bool = Field(
        False, description="mix the warm start's expert trajectories in as the general data of Eq. 6 (mix_ratio = η)"
    )


class RunEvalConfig(EvalSettings):
    """Stage 4: the test split, and the revision-ability protocol."""

    max_steps: int = Field(100, ge=1, le=MAX_STEPS, description="env step limit (the paper: 100)")
    revision_ability: bool = Field(True, description="continue the starting model's failures with each new model")
    revision_max_rounds: int = Field(50, ge=1, le=MAX_STEPS, description="turns after the cut (the paper: 50)")
    revision_limit: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="continue at most N failed episodes per env"
    )


class RunConfig(Config):
    """The Agent-R loop: optional warm start, then ``iterations`` × (collect → data → train → eval)."""

    envs: list[EnvConfig] = Field(
        default_factory=lambda: [EnvConfig()], description="envs whose data is mixed into one training set"
    )
    model: LLMConfig = Field(
        default_factory=LLMConfig,
        description="the starting model (an alias or folder that transformers loads, for training) and the backend "
        "that samples from each iteration's model: transformers, vllm, vllm-server or llama-cpp",
    )
    iterations: int = Field(3, ge=0, le=MAX_STEPS, description="Agent-R iterations after the warm start")
    warm_start: WarmStartConfig = Field(
        default_factory=WarmStartConfig, description="SFT on expert trajectories before iteration 1"
    )
    collect: RunCollectConfig = Field(default_factory=RunCollectConfig, description="stage 1: MCTS on training tasks")
    data: RunDataConfig = Field(
        default_factory=RunDataConfig, description="stage 2: training data from the trees (revision trajectories)"
    )
    train: RunTrainConfig = Field(
        default_factory=RunTrainConfig, description="stage 3: SFT; model and epochs are set by the run"
    )
    eval: RunEvalConfig = Field(
        default_factory=RunEvalConfig, description="stage 4: the test split and the revision-ability protocol"
    )
    dpo: DPOStageConfig | None = Field(
        None, description="after each iteration's SFT, DPO on (good, bad) leaf pairs of its trees: ETO (data.mode good)"
    )

    @model_validator(mode="after")
    def _checks(self) -> RunConfig:
        if self.train.mix_gold and (self.train.mix_data is not None or not self.warm_start.enabled):
            raise ValueError("train.mix_gold mixes in the warm start's data: it needs warm_start.enabled, no mix_data")
        if self.data.mode == "gold" and self.dpo is not None:
            raise ValueError("dpo needs search trees, and data.mode 'gold' searches none")
        if self.model.backend == "openai":
            raise ValueError(
                "run fine-tunes a new model every iteration, so it needs backend 'transformers' or an engine "
                f"coursecorrect starts with each model ({', '.join(MANAGED_BACKENDS)}): a running server cannot "
                "pick up its weights"
            )
        names = [e.name for e in self.envs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"envs must name each env once, got {names}")
        return self


def run_pipeline(config: RunConfig, out_dir: Path, progress: bool = True) -> Path:
    """Run (or resume) the loop in ``out_dir``; return the report's path."""
    check_run_config(config)
    run = RunDir.open(out_dir, config)
    actor = Actor(config.model)
    try:
        run_loop(config, run, actor, progress)
    finally:
        actor.release()
    return write_report(run.root)


def run_loop(config: RunConfig, run: RunDir, actor: Actor, progress: bool = True) -> None:
    """The stages of ``config`` in ``run`` (stages already done are skipped)."""
    for _ in loop_stages(config, run, actor, progress):
        pass


StageKey = tuple[str, int | None]


def loop_stages(
    config: RunConfig, run: RunDir, actor: Actor, progress: bool = True,
    train_steps: Callable[[int], int | None] | None = None,
) -> Iterator[StageKey]:
    """Run the stages of ``config`` in ``run`` one by one, yielding each one's key once it is done; stop
    iterating to stop after a stage. ``train_steps(i)``, if given, fixes iteration ``i``'s optimizer steps
    (``compare``'s gold control trains as long as Agent-R). A finished stage whose model or trees are gone (a
    run folder carried to another machine: git keeps neither) runs again only if a stage after it still needs
    them."""
    plan = stage_plan(config)
    current = config.model.model
    if config.warm_start.enabled:
        summary = run_stage(run, "warm_start", None, lambda path: _warm_start(config, path, progress),
                            kept=_model_kept(run, plan, ("warm_start", None)))
        current = summary["model"]
        yield "warm_start", None
    start = current
    run_stage(run, "eval", None, lambda path: _evaluate(config, current, path, actor, progress))
    yield "eval", None
    searches = config.data.mode != "gold"
    for i in range(1, config.iterations + 1):
        model_i = current
        if searches:
            trees_needed = not StageDir(run.path_of("data", i)).is_done()
            run_stage(run, "collect", i, lambda path, m=model_i: _collect(config, m, path, actor, progress),
                      kept=lambda summary, i=i, needed=trees_needed: not needed or _has_trees(config, run, i))
            yield "collect", i
        run_stage(run, "data", i, lambda path, i=i, m=model_i: _build(config, i, m, run, path, actor))
        yield "data", i
        actor.release()  # training needs the memory; the next stage reloads the new model
        base = model_i if config.train.start == "previous" else start
        steps = train_steps(i) if train_steps else None
        trained = run_stage(
            run, "train", i, lambda path, i=i, m=base, n=steps: _train(config, i, m, run, path, progress, n),
            kept=_model_kept(run, plan, ("train", i)),
        )
        current = trained["model"]
        yield "train", i
        run_stage(run, "eval", i, lambda path, m=current: _evaluate(config, m, path, actor, progress))
        yield "eval", i
        if config.eval.revision_ability:
            run_stage(run, "revision", i, lambda path, m=current: _revision(config, m, run, path, actor, progress))
            yield "revision", i


def stage_plan(config: RunConfig) -> list[StageKey]:
    """Every stage of ``config``'s loop, in the order it runs them."""
    plan: list[StageKey] = [("warm_start", None)] if config.warm_start.enabled else []
    plan.append(("eval", None))
    for i in range(1, config.iterations + 1):
        plan += [("collect", i)] if config.data.mode != "gold" else []
        plan += [("data", i), ("train", i), ("eval", i)]
        plan += [("revision", i)] if config.eval.revision_ability else []
    return plan


def _model_kept(run: RunDir, plan: list[StageKey], key: StageKey) -> Callable[[dict[str, Any]], bool]:
    """``kept`` of a stage that makes a model: the model is on disk, or every stage after it is done."""
    later = plan[plan.index(key) + 1:]
    return lambda summary: _has_model(summary) or all(StageDir(run.path_of(*k)).is_done() for k in later)


def _has_model(summary: dict[str, Any]) -> bool:
    """Whether a stage's model is still on disk (a model no stage made, e.g. an alias carried over, counts as there)."""
    model = Path(summary.get("model", ""))
    return model.name != MODEL_DIR or (model / "config.json").is_file()


def _has_trees(config: RunConfig, run: RunDir, iteration: int) -> bool:
    folder = run.path_of("collect", iteration)
    return all(any((folder / env.name).rglob("task_*.json")) for env in config.envs)


def _warm_start(config: RunConfig, path: Path, progress: bool) -> dict[str, Any]:
    gold = _gold(config)
    write_conversations(path / DATA_FILE, gold)
    train = config.train.model_copy(
        update={"epochs": config.warm_start.epochs, "max_steps": config.warm_start.max_steps,
                "seed": config.warm_start.seed, "mix_data": None}
    )
    summary = train_sft(_train_config(train), gold, path, progress=progress, base_model=config.model.model)
    return {"gold_trajectories": len(gold), "train": summary, "model": str(path / MODEL_DIR)}


def _gold(config: RunConfig) -> list[Conversation]:
    """The expert trajectories of the warm start's tasks, in every env."""
    gold = []
    for env_config in config.envs:
        with env_config.make() as env:
            ids = config.warm_start.task_ids or env.task_ids(config.warm_start.split)
            gold += gold_conversations(env, ids[: config.warm_start.limit])
    return gold


def _evaluate(config: RunConfig, model: str, path: Path, actor: Actor, progress: bool) -> dict[str, Any]:
    results = {}
    for env_config in config.envs:
        spec = EvalConfig(
            **config.eval.model_dump(include=set(EvalSettings.model_fields)),
            env=env_config.model_copy(update={"max_steps": config.eval.max_steps}), model=actor.config_for(model),
        )
        results[env_config.name] = evaluate(spec, path / env_config.name, llm=actor.get(model), progress=progress)
    return {"model": model, "served": actor.served(), "envs": results}


def _collect(config: RunConfig, model: str, path: Path, actor: Actor, progress: bool) -> dict[str, Any]:
    results = {}
    c = config.collect
    for env_config in config.envs:
        spec = CollectConfig(
            **c.model_dump(include=set(CollectSettings.model_fields)),
            env=env_config.model_copy(update={"max_steps": c.max_steps}), model=actor.config_for(model),
        )
        results[env_config.name] = collect(spec, path / env_config.name, llm=actor.get(model), progress=progress)
    return {"model": model, "served": actor.served(), "envs": results}


def _build(config: RunConfig, iteration: int, model: str, run: RunDir, path: Path, actor: Actor) -> dict[str, Any]:
    if config.data.mode == "gold":
        gold = _gold(config)
        counts = summarize(gold)
        write_data(BuildResult(gold, counts), path)
        return {"examples": len(gold), "counts": counts}
    alphas = config.data.alphas
    alpha = alphas[min(iteration, len(alphas)) - 1]
    build = BuildConfig.model_validate(
        {**config.data.model_dump(exclude={"alphas", "accumulate"}),
         "pairs": {**config.data.pairs.model_dump(), "alpha": alpha}}
    )
    folder = run.stage("collect", iteration).path
    trees = [tree for env in config.envs for tree in load_trees(folder / env.name)]
    result = build_data(trees, build, llm=actor.get(model) if build.needs_model else None)
    write_data(result, path)
    summary: dict[str, Any] = {"alpha": alpha, "examples": len(result.conversations), "counts": result.counts,
                               "trees_sha256": trees_digest(folder)}
    if config.dpo is not None:
        pairs = preference_pairs(trees, build.pairs)
        write_preferences(path / PREFERENCES_FILE, pairs)
        summary["preference_pairs"] = len(pairs)
    if build.needs_model:
        summary["served"] = actor.served()
    if build.mode == "agent-r" and (accuracy := _critic_accuracy(config, result.conversations, trees)):
        summary["critic_accuracy"] = accuracy
    return summary


def _critic_accuracy(config: RunConfig, data: list[Conversation], trees: list[Tree]) -> dict[str, Any] | None:
    """How often the critic named the step where the bad path first leaves every shortest expert plan
    (envs with a plan distance only: TextCraft)."""
    metas = [c.meta for c in data if c.meta["kind"] == "revision" and c.meta["env"] == TEXTCRAFT]
    env = next((e for e in config.envs if e.name == TEXTCRAFT), None)
    if not metas or env is None:
        return None
    return critic_agreement(records_from_trees(metas, trees), env.make)


def _train(
    config: RunConfig, iteration: int, model: str, run: RunDir, path: Path, progress: bool, steps: int | None = None
) -> dict[str, Any]:
    iterations = range(1, iteration + 1) if config.data.accumulate else [iteration]
    data = [c for i in iterations for c in read_conversations(run.stage("data", i).path / DATA_FILE)]
    summary: dict[str, Any] = {"examples": len(data)}
    if data:
        epochs = config.train.epochs_first if iteration == 1 else config.train.epochs_later
        update: dict[str, Any] = {"epochs": epochs}
        if steps is not None:
            update["max_steps"] = steps
        if config.train.mix_gold:
            update["mix_data"] = run.stage("warm_start").path / DATA_FILE
        train = config.train.model_copy(update=update)
        summary |= train_sft(_train_config(train), data, path, progress=progress, base_model=model)
        model = str(path / MODEL_DIR)
    if config.dpo is not None:
        pairs = read_preferences(run.stage("data", iteration).path / PREFERENCES_FILE)
        if pairs:
            summary["dpo"] = train_dpo(config.dpo, pairs, path / "dpo", sft_model=model, progress=progress)
            model = summary["dpo"]["model_path"]
    if not data and "dpo" not in summary:
        console.print("[yellow]no training data this iteration: the model is carried over unchanged[/yellow]")
        summary["skipped"] = "no training data"
    return {**summary, "model": model}


def _revision(config: RunConfig, model: str, run: RunDir, path: Path, actor: Actor, progress: bool) -> dict[str, Any]:
    results = {}
    for env_config in config.envs:
        spec = RevisionAbilityConfig(
            failed=run.stage("eval").path / env_config.name, env=env_config, model=actor.config_for(model),
            agent=config.eval.agent, max_rounds=config.eval.revision_max_rounds, limit=config.eval.revision_limit,
        )
        results[env_config.name] = revision_ability(spec, path / env_config.name, llm=actor.get(model),
                                                    progress=progress)
    return {"model": model, "served": actor.served(), "envs": results}


def _train_config(train: RunTrainConfig) -> TrainConfig:
    """The plain training config of a run's train section."""
    return TrainConfig.model_validate(train.model_dump(exclude={"epochs_first", "epochs_later", "start", "mix_gold"}))


def check_run_config(config: RunConfig) -> None:
    """Fail before any work when a run cannot start (e.g. an env without an expert for the warm start)."""
    if not config.warm_start.enabled:
        return
    for env_config in config.envs:
        with env_config.make() as env:
            ids = env.task_ids(env.splits[0]) if env.splits else [0]
            env.reset(ids[0])
            if env.expert_actions() is None:
                raise ConfigError(f"warm_start needs an expert solver, and env {env_config.name!r} has none")
