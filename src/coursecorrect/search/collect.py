"""``coursecorrect collect``: resumable MCTS collection into a run folder, in this process or on Ray.

The trees are searched by :func:`~coursecorrect.search.batch.search_trees` (many trees together, one backend
call per step and per n), or, with ``CollectConfig.ray``, by the same function on Ray workers
(:mod:`coursecorrect.search.distributed`); since every request is sampled with its own seed, either way gives
the same trees.

Each finished tree is written atomically to ``OUT/trees/task_{id}.json``; a re-run skips tasks whose tree
file exists, so an interrupted run (even kill -9) loses at most the trees that were in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coursecorrect.config import MAX_COUNT, MAX_SIZE, Config
from coursecorrect.data.tree import Tree, tree_path
from coursecorrect.envs import EnvConfig
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import LLM, LLMConfig
from coursecorrect.rundir import RunDir
from coursecorrect.search.batch import Counters, search_trees
from coursecorrect.search.distributed import RayConfig, ray_search_trees
from coursecorrect.search.mcts import MCTSConfig
from coursecorrect.search.stats import tree_stats

SUMMARY_FILE = "summary.json"


class CollectSettings(Config):
    """How trees are searched: the part of a collection that a run configures once for every env and model."""

    mcts: MCTSConfig = Field(default_factory=MCTSConfig, description="the search of each tree")
    split: str = Field("train", description="task split to search (train, test, all)")
    limit: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="search only the first N tasks (of the split or task_ids)"
    )
    task_ids: list[int] | None = Field(None, min_length=1, description="search these task ids instead of the split's")
    batch_trees: int = Field(
        8, ge=1, le=MAX_SIZE, description="trees searched together per process (their requests share backend calls)"
    )


class CollectConfig(CollectSettings):
    """An MCTS collection: which env split, which model, how each tree is searched."""

    env: EnvConfig = Field(default_factory=lambda: EnvConfig(max_steps=20), description="the env to search")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the policy that samples responses")
    ray: RayConfig | None = Field(None, description="search on Ray workers instead of in this process")


def collect(config: CollectConfig, out_dir: Path, llm: LLM | None = None, progress: bool = True) -> dict[str, Any]:
    """Search the trees of ``config``'s tasks into ``out_dir/trees/`` (resuming: tasks whose tree file
    exists are skipped) and return a summary, also written to ``out_dir/summary.json``. A folder started
    with another config is refused; ``limit``, ``task_ids``, ``batch_trees`` and ``ray`` may change between
    runs (they leave the trees unchanged). With ``config.ray`` the trees are searched on Ray workers (``llm``
    must then be None: each worker makes its own from ``config.model``) and written here as they arrive."""
    if config.ray is not None and llm is not None:
        raise ValueError("collect on Ray makes each worker's model from config.model; pass no llm")
    with config.env.make() as probe:
        task_ids = list(config.task_ids) if config.task_ids is not None else probe.task_ids(config.split)
        for task_id in task_ids:
            probe.check_task_id(task_id)  # an unknown id fails here, before anything is written or loaded
    task_ids = task_ids[: config.limit]
    run = RunDir.open(
        out_dir, config.model_copy(update={"limit": None, "task_ids": None, "batch_trees": 8, "ray": None})
    )
    todo = [t for t in task_ids if not tree_path(run.root, t).exists()]
    trees = [Tree.load(tree_path(run.root, t)) for t in task_ids if t not in todo]
    successes = sum(any(leaf.success for leaf in tree.terminal_leaves()) for tree in trees)
    counters = Counters()
    start = time.perf_counter()
    llm_made = llm is None and bool(todo) and config.ray is None
    bar = Progress(
        TextColumn("[bold]trees"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TextColumn("with success {task.fields[successes]}"), TimeElapsedColumn(), disable=not progress or not todo,
    )
    try:
        with bar:
            task = bar.add_task("collect", total=len(task_ids), completed=len(task_ids) - len(todo),
                                successes=successes, rate="")

            def show(c: Counters) -> None:
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.update(task, rate=f"{c.nodes / elapsed:.1f} nodes/s {c.completion_tokens / elapsed:.0f} tok/s")

            if not todo:
                searched: Iterator[Tree] = iter(())
            elif config.ray is not None:
                searched = ray_search_trees(
                    config.ray, config.env, config.model, config.mcts, todo, counters, config.batch_trees, show
                )
            else:
                llm = llm or config.model.make()
                searched = search_trees(config.env.make, llm, todo, config.mcts, config.batch_trees, counters, show)
            for tree in searched:
                tree.meta["model"] = config.model.model
                tree.save(tree_path(run.root, tree.task_id))
                trees.append(tree)
                successes += any(leaf.success for leaf in tree.terminal_leaves())
                bar.update(task, advance=1, successes=successes)
        elapsed = time.perf_counter() - start
    finally:
        if llm_made and llm is not None:
            llm.close()
    stats = tree_stats(trees)
    tokens = counters.completion_tokens
    summary = {
        "env": config.env.name, "model": config.model.model, "variant": config.mcts.variant,
        **stats,
        "trees_this_run": counters.trees, "nodes_this_run": counters.nodes,
        "generations_this_run": counters.generations, "backend_calls_this_run": counters.calls,
        "completion_tokens_this_run": tokens, "wall_seconds_this_run": round(elapsed, 2),
        "nodes_per_second": round(counters.nodes / elapsed, 3) if counters.nodes else 0.0,
        "tokens_per_second": round(tokens / elapsed, 3) if tokens else 0.0,
    }
    atomic_write_json(run.root / SUMMARY_FILE, summary)
    return summary
