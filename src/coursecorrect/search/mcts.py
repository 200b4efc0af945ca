"""Monte Carlo tree search over agent trajectories (Agent-R stage 1), as a resumable state machine.

A :class:`TreeSearch` never calls the LLM itself: :meth:`TreeSearch.run` is a generator that yields the
requests it needs next (a list of :class:`Request`) and is sent back their completions, so a driver can
advance many trees together and send all their pending requests to the backend in one batch
(see :mod:`coursecorrect.search.batch`).

Two variants (``MCTSConfig.variant``):

- ``paper``: each iteration selects a leaf by UCT, expands it (``n_children`` samples, de-duplicated),
  backs up the new terminal children, then runs ``rollouts`` simulations with the policy from one new
  non-terminal child (chosen by UCT, i.e. at random among the unvisited) until a terminal node. Each
  rollout counts as one visit with its final score along its whole path, so Q = value / visits is the mean
  rollout score. Rollout steps are kept in the tree (``rollout=True``) and merged like a trie: rollouts
  that sample the same response share a node. When a later expansion samples a response that a rollout
  already produced, that rollout node is promoted to a regular child (keeping its statistics).
- ``released`` (the authors' code): each iteration descends from the root, expanding every node on the
  way and picking children by UCT, until it reaches a node whose children are all terminal; terminal
  children are backed up once, when created, with their score (0 when cut by depth).

Terminal: the env ended the episode, or depth > ``max_depth``; an expanded node whose children are all
terminal is terminal too; the search stops when the root is terminal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from coursecorrect.agent.parsing import NO_ACTION_OBSERVATION, parse_action
from coursecorrect.agent.prompt import approx_tokens, episode_start, truncate_context
from coursecorrect.config import MAX_SAMPLES, MAX_STEPS, MAX_TOKENS, Config, Seed
from coursecorrect.data.tree import Node, Tree
from coursecorrect.envs.base import Env, Snapshot
from coursecorrect.llm.base import Completion, SamplingParams


class MCTSConfig(Config):
    """How one tree is searched."""

    variant: Literal["paper", "released"] = Field(
        "paper", description="'paper': select, expand, simulate `rollouts` times, back up; "
        "'released': the authors' code — full expansion along each descent, terminal children backed up"
    )
    iterations: int = Field(
        8, ge=0, le=MAX_STEPS, description="search iterations per tree (fewer when the root turns terminal)"
    )
    rollouts: int = Field(
        2, ge=1, le=MAX_SAMPLES,
        description="paper: simulations per expansion (the paper uses 8; each one is up to max_depth sequential "
        "generations, the bulk of the cost on a CPU)",
    )
    n_children: int = Field(4, ge=1, le=MAX_SAMPLES, description="responses sampled per expansion (duplicates merged)")
    c: float = Field(0.25, ge=0, description="UCT exploration constant")
    max_depth: int = Field(20, ge=1, le=MAX_STEPS, description="nodes deeper than this are terminal")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of expansions and rollouts")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    max_new_tokens: int = Field(128, ge=1, le=MAX_TOKENS, description="tokens per response (the paper allows 500)")
    stop: list[str] = Field(default_factory=lambda: ["\nObservation"], description="cut a response at these")
    max_context_tokens: int = Field(
        3500, ge=256, le=MAX_TOKENS, description="older turns are dropped from prompts beyond this"
    )
    snapshots: bool = Field(
        True, description="restore env states from snapshots where the env supports it; false = reset + "
        "replay every time (as the released code)"
    )
    seed: Seed = Field(
        0, description="seeds each tree's tie-break RNG and its requests' sampling (with the task id), so a tree "
        "does not depend on which other trees share its backend calls"
    )

    def sampling(self, n: int, seeds: Sequence[int]) -> SamplingParams:
        """Sampling parameters of one backend call for ``n`` samples per prompt, one seed per prompt."""
        return SamplingParams(
            n=n, temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
            stop=tuple(self.stop), seeds=tuple(seeds),
        )


@dataclass(frozen=True)
class Request:
    """One pending generation: ``n`` samples of the next assistant turn of ``messages``, drawn with ``seed``
    (see :attr:`SamplingParams.seeds`)."""

    messages: list[dict[str, str]]
    n: int
    seed: int


def request_seed(seed: int, task_id: int, index: int) -> int:
    """The sampling seed of the ``index``-th request of task ``task_id``'s tree: a hash, below 2**30 so that
    ``seed + j`` stays a 31-bit integer for any server."""
    digest = hashlib.sha256(f"coursecorrect-mcts-sample:{seed}:{task_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 2


Search = Generator[list[Request], list[list[Completion]], None]


class TreeSearch:
    """The search of one task's tree. ``env`` is this search's own env instance (reset here).

    Drive it with ``gen = search.run(); requests = next(gen); requests = gen.send(completions); ...``
    until ``StopIteration``; ``completions[i]`` must hold ``requests[i].n`` completions. ``tree`` holds the
    result (and the partial tree while it runs).
    """

    def __init__(
        self, env: Env, task_id: int, config: MCTSConfig, count_tokens: Callable[[str], int] = approx_tokens
    ) -> None:
        self.env, self.config, self.count_tokens = env, config, count_tokens
        first = env.reset(task_id)
        self.tree = Tree.new(env.name, task_id, episode_start(env.instruction, first), meta={
            "variant": config.variant, "config": config.model_dump(mode="json"), "finished": False,
        })
        self.task_id = task_id
        self.rng = random.Random(f"coursecorrect-mcts:{config.seed}:{task_id}")
        self._snapshots: dict[int, Snapshot] = {0: self._snapshot()}
        self._next_id = 1
        self.requests = 0  # requests made, which numbers their seeds
        self.generations = 0  # completions consumed
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.iterations_run = 0

    @property
    def num_nodes(self) -> int:
        return self._next_id

    def run(self) -> Search:
        """The search as a generator of request batches; the tree is complete when it returns."""
        body = self._released() if self.config.variant == "released" else self._paper()
        yield from body
        self.tree.meta.update(
            finished=True, iterations=self.iterations_run, nodes=self._next_id, generations=self.generations,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            snapshots=self.config.snapshots and self.env.supports_snapshot,
        )
        self._snapshots.clear()

    # -- the two variants ------------------------------------------------------------------------------

    def _iterations(self) -> Iterator[Node]:
        """The root, once per iteration, until the iterations run out or the root is terminal."""
        for _ in range(self.config.iterations):
            if self.tree.root.terminal:
                return
            self.iterations_run += 1
            yield self.tree.root

    def _released(self) -> Search:
        for node in self._iterations():
            while not node.terminal:
                if not node.expanded:
                    for child, _ in (yield from self._expand(node)):
                        if child.terminal:
                            self._backup(child, child.score)
                    self._settle(node)
                    if node.terminal:
                        break
                node = self._select(node)

    def _paper(self) -> Search:
        for node in self._iterations():
            while node.expanded:  # non-terminal, so it has a non-terminal child
                node = self._select(node)
            new = yield from self._expand(node)
            for child, fresh in new:
                if child.terminal and fresh:
                    self._backup(child, child.score)
            self._settle(node)
            open_children = [c for c, _ in new if not c.terminal]
            if open_children:
                yield from self._simulate(self._select(node, open_children))

    # -- steps -----------------------------------------------------------------------------------------

    def _expand(self, node: Node) -> Generator[list[Request], list[list[Completion]], list[tuple[Node, bool]]]:
        """Sample ``n_children`` responses at ``node``; return the children they gave, each once, in order of
        first appearance, as (child, fresh): fresh children are new, the others rollout nodes promoted to
        regular children (already visited by their rollouts)."""
        (samples,) = yield [self._request(node, self.config.n_children)]
        created: list[tuple[Node, bool]] = []
        for completion in samples:
            existing = node.child_with_response(completion.text)
            child = self._child(node, completion, rollout=False)
            if existing is None or existing.rollout:
                created.append((child, existing is None))
            child.rollout = False
        node.expanded = True
        return created

    def _simulate(self, start: Node) -> Generator[list[Request], list[list[Completion]], None]:
        """Run ``rollouts`` simulations from ``start`` in lock-step (n=1 per prompt) to terminal nodes,
        then back up each rollout's final score as one visit."""
        heads = [start] * self.config.rollouts
        while live := [i for i, head in enumerate(heads) if not head.terminal]:
            samples = yield [self._request(heads[i], 1) for i in live]
            for i, completions in zip(live, samples, strict=True):
                heads[i] = self._child(heads[i], completions[0], rollout=True)
        for head in heads:
            self._backup(head, head.score)

    def _child(self, node: Node, completion: Completion, rollout: bool) -> Node:
        """The child of ``node`` for a sampled response: the existing child with the same text, or a new
        one made by stepping the env from ``node``'s state."""
        self.generations += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        existing = node.child_with_response(completion.text)
        if existing is not None:
            return existing
        action = parse_action(completion.text)
        parent_state = self._snapshots[node.id]
        if action is None:  # the env is not stepped; the turn still counts towards depth
            observation, reward, done, state = NO_ACTION_OBSERVATION, parent_state.reward, False, parent_state
        else:
            self.env.restore(parent_state)
            result = self.env.step(action)
            observation, reward, done, state = result.observation, result.reward, result.done, self._snapshot()
        depth = node.depth + 1
        terminal = done or depth > self.config.max_depth
        score = reward if done else 0.0
        if self.config.variant == "released" and reward < 0:  # the released code: negative = over, scored 0
            terminal, score = True, 0.0
        child = node.add(Node(
            id=self._next_id, response=completion.text, action=action, observation=observation, depth=depth,
            reward=reward, score=score, done=done, terminal=terminal, rollout=rollout,
            completion_tokens=completion.completion_tokens,
        ))
        self._next_id += 1
        if not terminal:
            self._snapshots[child.id] = state
        return child

    def _select(self, node: Node, candidates: Sequence[Node] | None = None) -> Node:
        """The child with the highest UCT among non-terminal, non-rollout children (or ``candidates``);
        unvisited children score +inf; ties are broken by the tree's seeded RNG."""
        if candidates is None:
            candidates = [c for c in node.children if not c.terminal and not c.rollout]
        log_n = math.log(max(node.visits, 1))
        scores = [uct(child.value, child.visits, log_n, self.config.c) for child in candidates]
        best = max(scores)
        ties = [child for child, score in zip(candidates, scores, strict=True) if score == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)

    def _backup(self, node: Node, score: float) -> None:
        """One visit with ``score`` for every node from the root to ``node``."""
        for step in node.path():
            step.visits += 1
            step.value += score

    def _settle(self, node: Node | None) -> None:
        """Mark expanded nodes whose children are all terminal as terminal, from ``node`` upwards."""
        while node is not None and node.expanded and not node.terminal:
            children = [c for c in node.children if not c.rollout]
            if not children or not all(c.terminal for c in children):
                return
            node.terminal = True
            node = node.parent

    def _request(self, node: Node, n: int) -> Request:
        """A request for ``n`` samples at ``node``, seeded by this tree's request count."""
        self.requests += 1
        return Request(self._prompt(node), n, request_seed(self.config.seed, self.task_id, self.requests - 1))

    def _prompt(self, node: Node) -> list[dict[str, str]]:
        messages = truncate_context(self.tree.messages(node), self.config.max_context_tokens, self.count_tokens)
        return [{"role": m.role, "content": m.content} for m in messages]

    def _snapshot(self) -> Snapshot:
        snapshot = self.env.snapshot()
        return snapshot if self.config.snapshots else dataclasses.replace(snapshot, state=None)


def uct(value: float, visits: int, log_parent_visits: float, c: float) -> float:
    """Q + c·sqrt(ln N_parent / N); +inf for an unvisited node."""
    if visits == 0:
        return math.inf
    return value / visits + c * math.sqrt(log_parent_visits / visits)
