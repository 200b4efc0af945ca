"""Batched, resumable MCTS collection: many trees advance together, one backend call per step and per n.

Up to ``batch_trees`` searches are active at once, each with its own env. At every step each search has
its pending requests (one expansion with n = ``n_children``, or its rollouts with n = 1); all of them go
to the backend together — one ``generate`` call for the expansions and one for the rollouts — so a
backend batches them (transformers) or sends them concurrently (OpenAI-compatible). With prefix caching a
child's prompt, which extends its parent's, is prefilled only for its new tokens.

Each request is sampled with its own seed (from ``MCTSConfig.seed``, the task id and the request's index
in its tree), so a tree does not depend on which other trees share its backend calls: ``batch_trees``, the
order of tasks, and the number of processes or machines (``CollectConfig.ray``, see
:mod:`coursecorrect.search.distributed`) leave the trees unchanged.

Each finished tree is written atomically to ``OUT/trees/task_{id}.json``; a re-run skips tasks whose tree
file exists, so an interrupted run (even kill -9) loses at most the trees that were in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coursecorrect.agent.prompt import approx_tokens
from coursecorrect.config import MAX_COUNT, MAX_SIZE, Config
from coursecorrect.envs import Env, EnvConfig
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import LLM, LLMConfig
from coursecorrect.llm.base import Completion
from coursecorrect.pipeline.rundir import RunDir
from coursecorrect.search.mcts import MCTSConfig, Request, Search, TreeSearch
from coursecorrect.search.stats import tree_stats
from coursecorrect.search.tree import Tree, tree_path

SUMMARY_FILE = "summary.json"


class RayConfig(Config):
    """Collection on a Ray cluster: each worker has its own envs and model (or the config's server)."""

    address: str = Field(
        "local", description="'local' starts a Ray instance here; else a cluster to join ('auto', "
        "'ray://host:10001', 'host:6379'); a Ray already initialised in this process is used as it is"
    )
    workers: int | None = Field(
        None, ge=1, le=MAX_SIZE, description="worker actors (default: as many as the cluster's free CPUs, or GPUs when "
        "gpus_per_worker > 0, allow; never more than the trees to search)"
    )
    cpus_per_worker: float = Field(1.0, gt=0, le=MAX_SIZE, description="CPUs each worker reserves")
    gpus_per_worker: float = Field(
        0.0, ge=0, le=MAX_SIZE, description="GPUs each worker reserves (for a transformers model)"
    )


class CollectConfig(Config):
    """An MCTS collection: which env split, which model, how each tree is searched."""

    env: EnvConfig = Field(default_factory=lambda: EnvConfig(max_steps=20), description="the env to search")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the policy that samples responses")
    mcts: MCTSConfig = Field(default_factory=MCTSConfig, description="the search of each tree")
    split: str = Field("train", description="task split to search (train, test, all)")
    limit: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="search only the first N tasks (of the split or task_ids)"
    )
    task_ids: list[int] | None = Field(None, min_length=1, description="search these task ids instead of the split's")
    batch_trees: int = Field(
        8, ge=1, le=MAX_SIZE, description="trees searched together per process (their requests share backend calls)"
    )
    ray: RayConfig | None = Field(None, description="search on Ray workers instead of in this process")


@dataclass
class Counters:
    """Running totals of a collection, for progress bars and benchmarks."""

    trees: int = 0
    nodes: int = 0
    generations: int = 0
    calls: int = 0
    completion_tokens: int = 0
    batch_sizes: list[tuple[int, int]] = field(default_factory=list)  # (n, conversations) per call (this process)


@dataclass
class _Active:
    search: TreeSearch
    run: Search
    requests: list[Request]
    env: Env
    nodes_seen: int = 0  # counted into Counters.nodes so far (the root too)


def search_trees(
    make_env: Callable[[], Env],
    llm: LLM,
    task_ids: Iterable[int],
    config: MCTSConfig,
    batch_trees: int = 8,
    counters: Counters | None = None,
    on_step: Callable[[Counters], None] | None = None,
) -> Iterator[Tree]:
    """Search every task in ``task_ids``; yield each tree as soon as its search finishes.

    At most ``batch_trees`` searches are active; envs are reused across tasks. ``task_ids`` is read lazily, one
    id whenever a search slot is free. Each step sends all pending requests in one ``generate`` call per
    distinct ``n``.
    """
    counters = counters if counters is not None else Counters()
    count_tokens = getattr(llm, "count_tokens", approx_tokens)
    pending, active, free_envs, all_envs = iter(task_ids), [], [], []
    exhausted = False
    try:
        while not exhausted or active:
            while not exhausted and len(active) < batch_trees:
                task_id = next(pending, None)
                if task_id is None:
                    exhausted = True
                    break
                env = free_envs.pop() if free_envs else make_env()
                if env not in all_envs:
                    all_envs.append(env)
                search = TreeSearch(env, task_id, config, count_tokens)
                run = search.run()
                requests = next(run, None)
                if requests is None:  # nothing to search (iterations = 0)
                    free_envs.append(env)
                    counters.trees += 1
                    yield search.tree
                    continue
                active.append(_Active(search, run, requests, env))
            if not active:
                continue
            results = _generate_all(llm, active, config, counters)
            still: list[_Active] = []
            finished: list[_Active] = []
            for slot, completions in zip(active, results, strict=True):
                try:
                    slot.requests = slot.run.send(completions)
                    still.append(slot)
                except StopIteration:
                    finished.append(slot)
                counters.nodes += slot.search.num_nodes - slot.nodes_seen
                slot.nodes_seen = slot.search.num_nodes
            active = still
            if on_step is not None:
                on_step(counters)
            for slot in finished:
                free_envs.append(slot.env)
                counters.trees += 1
                yield slot.search.tree
    finally:
        for env in all_envs:
            env.close()


def _generate_all(
    llm: LLM, active: list[_Active], config: MCTSConfig, counters: Counters
) -> list[list[list[Completion]]]:
    """Answer every active search's requests: one ``generate`` call per distinct ``n``, each request with its
    own seed."""
    results: list[list[list[Completion] | None]] = [[None] * len(slot.requests) for slot in active]
    by_n: dict[int, list[tuple[int, int]]] = {}
    for s, slot in enumerate(active):
        for r, request in enumerate(slot.requests):
            by_n.setdefault(request.n, []).append((s, r))
    for n in sorted(by_n, reverse=True):
        where = by_n[n]
        requests = [active[s].requests[r] for s, r in where]
        tokens_before = llm.stats.completion_tokens
        outputs = llm.generate([q.messages for q in requests], config.sampling(n, [q.seed for q in requests]))
        counters.completion_tokens += llm.stats.completion_tokens - tokens_before
        counters.calls += 1
        counters.generations += n * len(requests)
        counters.batch_sizes.append((n, len(requests)))
        for (s, r), samples in zip(where, outputs, strict=True):
            results[s][r] = samples
    return results  # type: ignore[return-value]


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
                from coursecorrect.search.distributed import ray_search_trees

                searched = ray_search_trees(config, todo, counters, show)
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
