"""Many trees searched together in this process: one backend call per step and per n.

Up to ``batch_trees`` searches are active at once, each with its own env. At every step each search has
its pending requests (one expansion with n = ``n_children``, or its rollouts with n = 1); all of them go
to the backend together — one ``generate`` call for the expansions and one for the rollouts — so a
backend batches them (transformers) or sends them concurrently (OpenAI-compatible). With prefix caching a
child's prompt, which extends its parent's, is prefilled only for its new tokens.

Each request is sampled with its own seed (from ``MCTSConfig.seed``, the task id and the request's index
in its tree), so a tree does not depend on which other trees share its backend calls: ``batch_trees``, the
order of tasks, and the number of processes or machines (:mod:`coursecorrect.search.distributed` runs
:func:`search_trees` on Ray workers) leave the trees unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from coursecorrect.agent.prompt import approx_tokens
from coursecorrect.data.tree import Tree
from coursecorrect.envs import Env
from coursecorrect.llm import LLM
from coursecorrect.llm.base import Completion
from coursecorrect.search.mcts import MCTSConfig, Request, Search, TreeSearch


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
