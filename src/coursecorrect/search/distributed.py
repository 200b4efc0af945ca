"""MCTS collection on Ray: the tasks are shared out to worker actors, the trees stream back one by one.

Each worker is a Ray actor with its own env instances and its own LLM, made from the collection's model config
inside the worker (a local transformers model, or a client of the config's OpenAI-compatible server). It
runs :func:`~coursecorrect.search.batch.search_trees` over task ids that it pulls from a shared queue
whenever it has a free search slot (so fast workers take more tasks). The driver keeps one ``next_tree``
call in flight per worker, which returns as soon as that worker finishes a tree, and writes the tree at
once, as a local run does (plain calls rather than streaming generators, which the Ray client behind
``ray://`` addresses does not support). Since every request is sampled with its own seed, the trees are
those of a local run with the same config, whatever the number of workers, as long as the backend itself
is batch-invariant (see docs/scale-out.md).
"""

from __future__ import annotations

import math
import socket
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from coursecorrect.config import MAX_SIZE, Config
from coursecorrect.data.tree import Tree
from coursecorrect.envs import EnvConfig
from coursecorrect.errors import CourseCorrectError
from coursecorrect.llm import LLM, LLMConfig
from coursecorrect.search.batch import Counters, search_trees
from coursecorrect.search.mcts import MCTSConfig

INSTALL_HINT = "pip install 'coursecorrect[ray]'"
_SUMMED = [f.name for f in fields(Counters) if f.name != "batch_sizes"]


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


class CollectWorker:
    """A Ray actor that searches the tasks it pulls from a queue, with its own envs and model."""

    def __init__(self, env: EnvConfig, model: LLMConfig, mcts: MCTSConfig, queue: Any, batch_trees: int) -> None:
        self.env, self.model, self.mcts, self.queue, self.batch_trees = env, model, mcts, queue, batch_trees
        self.counters = Counters()
        self.llm: LLM | None = None
        self.trees: Iterator[Tree] | None = None

    def next_tree(self) -> tuple[dict[str, Any], dict[str, int]] | None:
        """The next finished tree as a dict, with this worker's running counters; None once the queue is
        drained. The first call makes the model (so that its errors reach the driver as they are)."""
        if self.trees is None:
            self.llm = self.model.make()
            tasks = _drain(self.queue)
            self.trees = search_trees(self.env.make, self.llm, tasks, self.mcts, self.batch_trees, self.counters)
        tree = next(self.trees, None)
        if tree is None:
            if self.llm is not None:
                self.llm.close()
            return None
        return tree.to_dict(), {name: getattr(self.counters, name) for name in _SUMMED}


def _drain(queue: Any) -> Iterator[int]:
    """Task ids from the queue, one per request, until it is empty."""
    from ray.util.queue import Empty

    while True:
        try:
            yield queue.get_nowait()
        except Empty:
            return


def ray_search_trees(
    config: RayConfig,
    env: EnvConfig,
    model: LLMConfig,
    mcts: MCTSConfig,
    task_ids: Sequence[int],
    counters: Counters,
    batch_trees: int = 8,
    on_step: Callable[[Counters], None] | None = None,
) -> Iterator[Tree]:
    """Search ``task_ids`` on Ray workers as ``config`` says, each with its envs of ``env``, its model of
    ``model`` and up to ``batch_trees`` trees at once; yield each tree as it arrives.

    ``counters`` (all but ``batch_sizes``) add up the workers' totals as of their latest tree; ``on_step``
    is called after each tree. Connects to (or starts) Ray first and disconnects at the end if it connected;
    the workers are ended either way.
    """
    ray = import_ray()
    connected = connect(ray, config.address)
    workers: list[Any] = []
    queue = None
    try:
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
        queue.put_nowait_batch(list(task_ids))
        count = worker_count(ray, config, len(task_ids))
        batch_trees = min(batch_trees, math.ceil(len(task_ids) / count))  # no worker takes all the tasks
        actor = ray.remote(CollectWorker).options(  # SPREAD: workers on every node, each near its node's server
            num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker, scheduling_strategy="SPREAD"
        )
        workers = [actor.remote(env, model, mcts, queue, batch_trees) for _ in range(count)]
        pending = {worker.next_tree.remote(): i for i, worker in enumerate(workers)}
        totals = [dict.fromkeys(_SUMMED, 0) for _ in workers]
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, CourseCorrectError):  # a user-facing error in a worker: shown as it is
                    raise e.cause from None
                raise
            if result is None:
                continue
            pending[workers[i].next_tree.remote()] = i
            tree, totals[i] = result
            for name in _SUMMED:
                setattr(counters, name, sum(t[name] for t in totals))
            if on_step is not None:
                on_step(counters)
            yield Tree.from_dict(tree)
    finally:
        for worker in workers:
            ray.kill(worker)
        if queue is not None:
            queue.shutdown()
        if connected:
            ray.shutdown()


def import_ray() -> types.ModuleType:
    """The ``ray`` module, or a CourseCorrectError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise CourseCorrectError(f"collecting on Ray needs the ray package: {INSTALL_HINT}") from None
    return ray


def connect(ray: types.ModuleType, address: str) -> bool:
    """Start or join Ray at ``address`` unless this process already is connected; return whether it
    connected (and so should disconnect at the end). An unreachable address fails at once."""
    if ray.is_initialized():
        return False
    if address not in ("local", "auto"):
        check_reachable(address)
    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CourseCorrectError(f"cannot connect to Ray at {address!r}: {e}") from None
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a Ray address (``host:port`` or ``ray://host:port``); Ray itself
    would retry for minutes."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise CourseCorrectError(
            f"not a Ray address: {address!r} (expected 'local', 'auto', host:port or ray://host:port)"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise CourseCorrectError(f"cannot connect to Ray at {address!r}: {e.strerror or e}") from None


def worker_count(ray: types.ModuleType, config: RayConfig, tasks: int) -> int:
    """``config.workers``, else as many as the cluster's free CPUs (or GPUs) fit; at most ``tasks``, at least 1."""
    if config.workers is not None:
        return max(1, min(config.workers, tasks))
    free = ray.available_resources()
    fit = free.get("CPU", 0) / config.cpus_per_worker
    if config.gpus_per_worker > 0:
        fit = min(fit, free.get("GPU", 0) / config.gpus_per_worker)
    return max(1, min(int(fit), tasks))

