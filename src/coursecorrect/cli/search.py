"""``coursecorrect collect`` (MCTS over trajectories) and ``coursecorrect tree show | stats``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coursecorrect.cli.common import env_options, load_spec, out_folder, print_summary
from coursecorrect.cli.preflight import check_model, check_tasks, output_file
from coursecorrect.config import read_config_file
from coursecorrect.console import console, summary_table
from coursecorrect.envs import ENV_OPTION_HELP
from coursecorrect.errors import CourseCorrectError
from coursecorrect.llm import BACKEND_HELP

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
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    base_url: Annotated[str | None, typer.Option(help="openai: the server's /v1 URL.")] = None,
    ray: Annotated[
        bool | None, typer.Option("--ray/--no-ray", help="Search on Ray workers (a local Ray unless --ray-address).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join, e.g. auto or ray://HOST:10001 (implies --ray).")
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option(help="Ray worker actors (implies --ray).  [default: one per free CPU]")
    ] = None,
    ray_gpus_per_worker: Annotated[
        float | None, typer.Option(help="GPUs each Ray worker reserves (implies --ray).  [default: 0]")
    ] = None,
    env_option: Annotated[list[str] | None, typer.Option(help=ENV_OPTION_HELP)] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Search MCTS trees of agent trajectories (Agent-R stage 1) into OUT/trees/task_{id}.json.

    Resumable: a re-run with the same config skips the trees already written. Every request is sampled with
    its own seed, so the trees do not depend on --batch-trees or on how many processes search them.

    At scale: serve the model with vLLM (one OpenAI-compatible server per GPU node), start a Ray cluster
    (`ray start --head` on one node, `ray start --address HEAD:6379` on the others), then on the head run
    `coursecorrect collect --ray-address auto --backend openai --base-url http://HOST:8000/v1 --model NAME
    --out OUT`. Each Ray worker has its own envs and sends its requests to the server; the trees stream back
    and are written here. With --ray and the transformers backend each worker loads its own model. A Ray
    run gives the same trees as a local run when the backend's logits do not depend on the batch: so with
    transformers on CPU; on GPUs and with vLLM, batched numerics may differ in the last bits and, rarely, a
    token with them. See docs/scale-out.md.
    """
    from coursecorrect.search.collect import CollectConfig, collect

    ids = _parse_task_ids(task_ids) if task_ids is not None else None
    ray_options = {"ray.address": ray_address, "ray.workers": ray_workers, "ray.gpus_per_worker": ray_gpus_per_worker}
    given = ["--" + key.replace(".", "-").replace("_", "-") for key, value in ray_options.items() if value is not None]
    if ray is False and given:
        raise CourseCorrectError(f"--no-ray conflicts with {', '.join(given)} (options of a search on Ray)")
    data = read_config_file(config) if config else {}
    if ray is False:
        data.pop("ray", None)
    elif ray or given:
        data["ray"] = data.get("ray") or {}
    overrides = {
        "limit": limit, "task_ids": ids, "split": split, "model.model": model, "mcts.variant": variant,
        "mcts.iterations": iterations, "mcts.rollouts": rollouts, "mcts.n_children": n_children,
        "mcts.max_depth": max_depth, "mcts.max_new_tokens": max_new_tokens, "batch_trees": batch_trees,
        "mcts.seed": seed, "model.backend": backend, "model.base_url": base_url, **ray_options,
        **env_options(env_option),
    }
    spec = load_spec(CollectConfig, config, overrides, "collect", data)
    out = out_folder(out, f"collect-{spec.env.name}-{Path(spec.model.model).name}-{spec.mcts.variant}")
    if split is not None and ids is not None:  # both given: the ids must be the split's
        check_tasks(spec.env, spec.split, ids, in_split=True)
    if spec.ray is None:  # Ray workers load their own model, maybe from a folder only they have
        check_model(spec.model)
    summary = collect(spec, out, progress=progress)
    title = f"MCTS collection: {spec.model.model} on {spec.env.name} {spec.split}"
    print_summary(title, summary, "trees and summary", out)


def _parse_task_ids(text: str) -> list[int]:
    """``--task-ids``: one or more comma-separated integers."""
    try:
        return [int(part) for part in text.split(",")]  # an empty part ("", "1,,2") is an error too
    except ValueError:
        raise CourseCorrectError(f"--task-ids must be comma-separated integers, e.g. 3,7,12; got {text!r}") from None


@tree_app.command("show")
def tree_show(
    file: Annotated[Path, typer.Argument(help="A tree file (OUT/trees/task_N.json).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")] = None,
    depth: Annotated[int | None, typer.Option(help="Show nodes down to this depth only.")] = None,
) -> None:
    """Render a tree in the terminal, or write it as an HTML page with --html."""
    from coursecorrect.data.tree import Tree
    from coursecorrect.io import atomic_write_text
    from coursecorrect.search.viewer import render_tree, tree_html

    if depth is not None and depth < 0:
        raise CourseCorrectError(f"--depth must be >= 0, got {depth}")
    tree = Tree.load(file)
    if html is not None:
        atomic_write_text(output_file(html, "--html"), tree_html(tree, max_depth=depth))
        console.print(f"wrote {html}")
    else:
        console.print(render_tree(tree, max_depth=depth))


@tree_app.command("stats")
def tree_stats_command(
    folder: Annotated[Path, typer.Argument(help="A collection folder (with trees/), or a tree file.")],
) -> None:
    """Summarise a collection: trees, leaves, leaf-score histogram, trees with both a success and a failure."""
    from coursecorrect.data.tree import TreeFileError, load_trees
    from coursecorrect.search.stats import tree_stats

    trees = load_trees(folder)
    if not trees:
        raise TreeFileError(f"{folder}: no tree files (task_*.json) found")
    console.print(summary_table(f"trees in {folder}", tree_stats(trees)))
