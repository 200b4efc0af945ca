"""CLI commands of the search stage: ``collect`` and ``tree show`` / ``tree stats``.

Mounted by ``coursecorrect.cli``::

    app.command("collect")(collect_command)
    app.add_typer(tree_app, name="tree")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coursecorrect.config import apply_overrides, read_config_file, validate_config
from coursecorrect.console import console, summary_table
from coursecorrect.errors import CourseCorrectError

tree_app = typer.Typer(help="Show and summarise MCTS trees.", no_args_is_help=True)


def collect_command(
    config: Annotated[Path | None, typer.Option(help="Collect config file (.toml/.yaml); flags override it.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it exists).")] = None,
    limit: Annotated[int | None, typer.Option(help="Search only the first N tasks.")] = None,
    task_ids: Annotated[str | None, typer.Option(help="Comma-separated task ids instead of the split's.")] = None,
    split: Annotated[str | None, typer.Option(help="Task split: train, test or all.  [default: train]")] = None,
    model: Annotated[str | None, typer.Option(help="Model alias, folder, hub id or server model.")] = None,
    variant: Annotated[str | None, typer.Option(help="paper or released.  [default: paper]")] = None,
    iterations: Annotated[int | None, typer.Option(help="MCTS iterations per tree.  [default: 8]")] = None,
    rollouts: Annotated[int | None, typer.Option(help="Simulations per expansion (paper).  [default: 2]")] = None,
    n_children: Annotated[int | None, typer.Option(help="Samples per expansion.  [default: 4]")] = None,
    max_depth: Annotated[int | None, typer.Option(help="Depth limit.  [default: 20]")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per response.  [default: 128]")] = None,
    batch_trees: Annotated[int | None, typer.Option(help="Trees searched together.  [default: 8]")] = None,
    seed: Annotated[int | None, typer.Option(help="Search and sampling seed.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Search MCTS trees of agent trajectories (Agent-R stage 1) into OUT/trees/task_{id}.json."""
    from coursecorrect.search.collect import CollectConfig, collect

    ids = None
    if task_ids is not None:
        try:
            ids = [int(part) for part in task_ids.split(",") if part.strip()]
        except ValueError:
            raise CourseCorrectError(f"--task-ids must be comma-separated integers, got {task_ids!r}") from None
    data = read_config_file(config) if config else {}
    data = apply_overrides(data, {
        "limit": limit, "task_ids": ids, "split": split, "model.model": model, "mcts.variant": variant,
        "mcts.iterations": iterations, "mcts.rollouts": rollouts, "mcts.n_children": n_children,
        "mcts.max_depth": max_depth, "mcts.max_new_tokens": max_new_tokens, "batch_trees": batch_trees,
        "mcts.seed": seed,
    })
    spec = validate_config(CollectConfig, data, source=str(config or "collect"))
    out = out or Path("runs") / f"collect-{spec.env.name}-{Path(spec.model.model).name}-{spec.mcts.variant}"
    summary = collect(spec, out, progress=progress)
    console.print(summary_table(f"MCTS collection: {spec.model.model} on {spec.env.name} {spec.split}", summary))
    console.print(f"trees and summary: {out}")


@tree_app.command("show")
def tree_show(
    file: Annotated[Path, typer.Argument(help="A tree file (OUT/trees/task_N.json).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")] = None,
    depth: Annotated[int | None, typer.Option(help="Show nodes down to this depth only.")] = None,
) -> None:
    """Render a tree in the terminal, or write it as an HTML page with --html."""
    from coursecorrect.io import atomic_write_text
    from coursecorrect.search.tree import Tree
    from coursecorrect.search.viewer import render_tree, tree_html

    if depth is not None and depth < 0:
        raise CourseCorrectError(f"--depth must be >= 0, got {depth}")
    tree = Tree.load(file)
    if html is not None:
        atomic_write_text(html, tree_html(tree, max_depth=depth))
        console.print(f"wrote {html}")
    else:
        console.print(render_tree(tree, max_depth=depth))


@tree_app.command("stats")
def tree_stats_command(
    folder: Annotated[Path, typer.Argument(help="A collection folder (with trees/), or a tree file.")],
) -> None:
    """Summarise a collection: trees, leaves, leaf-score histogram, trees with both a success and a failure."""
    from coursecorrect.search.stats import tree_stats
    from coursecorrect.search.tree import TreeFileError, load_trees

    trees = load_trees(folder)
    if not trees:
        raise TreeFileError(f"{folder}: no tree files (task_*.json) found")
    console.print(summary_table(f"trees in {folder}", tree_stats(trees)))
