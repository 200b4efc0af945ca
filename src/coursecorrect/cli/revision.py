"""``coursecorrect build-data`` (revision trajectories and baselines from trees) and ``coursecorrect export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from coursecorrect.cli.common import load_spec, out_folder
from coursecorrect.cli.preflight import output_file, output_folder
from coursecorrect.config import validate_config
from coursecorrect.console import console
from coursecorrect.errors import CourseCorrectError
from coursecorrect.llm import BACKEND_HELP

if TYPE_CHECKING:
    from coursecorrect.data.tree import Tree
    from coursecorrect.revision.build import BuildConfig, BuildResult


def counts_table(title: str, counts: dict[str, dict[str, Any]]) -> Table:
    """The counts with one column per env (like Agent-R's Table 1)."""
    table = Table("", *counts, title=title)
    for key in next(iter(counts.values()), {}):
        cells = (counts[env][key] for env in counts)
        table.add_row(key, *("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells))
    return table


def _tree_model(trees: list[Tree]) -> str:
    """The model that collected the trees (their ``meta["model"]``), when they agree on one."""
    models = {tree.meta.get("model") for tree in trees}
    if len(models) != 1 or None in models:
        raise CourseCorrectError("the model critic needs --model (the trees do not name one model that made them)")
    return models.pop()


def build_data_command(
    trees: Annotated[Path | None, typer.Option(help="Collection folder (with trees/), or a tree file.")] = None,
    config: Annotated[Path | None, typer.Option(help="Build config file (.toml/.yaml); flags override it.")] = None,
    mode: Annotated[
        str | None, typer.Option(help="agent-r, direct-revision, good, optimal, optimal+good, gold. [default: agent-r]")
    ] = None,
    critic: Annotated[str | None, typer.Option(help="model, direct or value.  [default: model]")] = None,
    model: Annotated[str | None, typer.Option(help="Model critic: the actor (default: the trees' model).")] = None,
    backend: Annotated[str | None, typer.Option(help=f"Model critic: {BACKEND_HELP}")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL, with --backend openai.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Good-leaf score floor.  [default: 0.5]")] = None,
    beta: Annotated[float | None, typer.Option(help="Bad-score ceiling or gap (released).  [default: 0.2]")] = None,
    rule: Annotated[str | None, typer.Option(help="Pair rule: paper or released.  [default: paper]")] = None,
    max_pairs_per_tree: Annotated[int | None, typer.Option(help="Keep at most N pairs per tree.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the revision thoughts.")] = None,
    env: Annotated[str, typer.Option(help="Gold mode: the env whose expert plays.")] = "textcraft",
    split: Annotated[str, typer.Option(help="Gold mode: task split.")] = "train",
    limit: Annotated[int | None, typer.Option(help="Gold mode: only the first N tasks.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder for data.jsonl and counts.json.")] = None,
) -> None:
    """Build training data (Agent-R stage 2): revision trajectories and baselines from MCTS trees, or gold
    trajectories from an env's expert (--mode gold)."""
    from coursecorrect.revision.build import BuildConfig, write_data

    spec = load_spec(BuildConfig, config, {
        "mode": mode, "critic": critic, "pairs.alpha": alpha, "pairs.beta": beta, "pairs.rule": rule,
        "pairs.max_pairs_per_tree": max_pairs_per_tree, "seed": seed,
    }, "build-data")
    if spec.mode == "gold":
        out = out_folder(out, f"data-gold-{env}-{split}")
        result, source = _gold(env, split, limit), f"{env} {split}"
    else:
        if trees is None:
            raise CourseCorrectError(f"--mode {spec.mode} builds data from trees: give --trees")
        out = out_folder(out, f"data-{spec.mode}-{trees.resolve().name}")
        llm = {"model": model, "backend": backend, "base_url": base_url}
        result, source = _from_trees(trees, spec, llm), f"{trees} ({spec.critic_name} critic)"
    write_data(result, out)
    console.print(counts_table(f"{spec.mode} data from {source}", result.counts))
    console.print(f"{len(result.conversations)} conversations and counts: {out}")


def _gold(env_name: str, split: str, limit: int | None) -> BuildResult:
    from coursecorrect.envs import make_env
    from coursecorrect.revision.build import build_gold

    if limit is not None and limit < 1:
        raise CourseCorrectError(f"--limit must be >= 1, got {limit}")
    with make_env(env_name) as env:
        return build_gold(env, env.task_ids(split)[:limit])


def _from_trees(path: Path, spec: BuildConfig, llm_options: dict[str, str | None]) -> BuildResult:
    from coursecorrect.data.tree import TreeFileError, load_trees
    from coursecorrect.llm import LLMConfig
    from coursecorrect.revision.build import build_data

    trees = load_trees(path)
    if not trees:
        raise TreeFileError(f"{path}: no tree files (task_*.json) found")
    if not spec.needs_model:
        return build_data(trees, spec)
    options = {key: value for key, value in llm_options.items() if value is not None}
    options["model"] = options.get("model") or _tree_model(trees)
    llm = validate_config(LLMConfig, options, source="build-data").make()
    try:
        return build_data(trees, spec, llm)
    finally:
        llm.close()


def export_command(
    data: Annotated[Path, typer.Argument(help="Conversations (data.jsonl from build-data).")],
    fmt: Annotated[str, typer.Option("--format", help="hf, sharegpt (LLaMA-Factory) or xtuner.")],
    out: Annotated[Path, typer.Option(help="Output: a folder (hf) or a .json / .jsonl file.")],
    style: Annotated[
        str, typer.Option(help="sharegpt: split (train with mask_history) or loss_mask.")
    ] = "split",
) -> None:
    """Export conversations for a trainer, keeping which assistant turns are trained."""
    from coursecorrect.data.conversation import read_conversations
    from coursecorrect.data.export import FORMATS, export

    if fmt not in FORMATS:
        raise CourseCorrectError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if style not in ("split", "loss_mask"):
        raise CourseCorrectError(f"unknown --style {style!r}; choose split or loss_mask")
    if not data.is_file():
        raise CourseCorrectError(f"{data}: no such file")
    if fmt == "hf":
        output_folder(out)
    else:
        output_file(out, "--out")
    conversations = list(read_conversations(data))
    records = export(conversations, fmt, out, sharegpt_style=style)  # type: ignore[arg-type]
    console.print(f"wrote {records} {fmt} records from {len(conversations)} conversations: {out}")
