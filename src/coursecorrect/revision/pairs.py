"""(bad, good) leaf pairs of a search tree: the raw material of revision trajectories.

Two rules, both over a tree's terminal leaves and their scores:

- ``paper`` (Agent-R Eq. 4): ``score_bad < beta < score_good`` and ``score_good >= alpha``. The paper writes
  ``alpha < r``, but its iteration 3 uses ``alpha = 1.0`` with rewards of at most 1, where a strict bound
  admits no pair at all; the bound is therefore inclusive.
- ``released`` (the authors' code): ``score_good - score_bad > beta`` (a gap) and ``score_good > alpha``,
  both strict; trees whose root value is ``<= 0`` are skipped.

Every ordered (bad, good) combination that satisfies the rule is a pair; a tree's pairs are shuffled with a
seed of their own (so they do not depend on which other trees are processed) and optionally capped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from coursecorrect.config import MAX_COUNT, Config, Seed
from coursecorrect.data.tree import Node, Tree


class PairConfig(Config):
    """Which leaf pairs of a tree become revision trajectories."""

    rule: Literal["paper", "released"] = Field("paper", description="paper (Eq. 4) or released (the authors' code)")
    alpha: float = Field(0.5, description="floor on the good leaf's score (paper: 0.5 / 0.7 / 1.0 by iteration)")
    beta: float = Field(0.2, description="paper: the bad leaf scores below it and the good above; released: gap")
    max_pairs_per_tree: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="keep at most this many pairs per tree"
    )
    seed: Seed = Field(0, description="seed of each tree's pair shuffle")


@dataclass(frozen=True, eq=False)
class Pair:
    """A failed and a successful leaf of one tree."""

    tree: Tree
    bad: Node
    good: Node

    @property
    def shared_steps(self) -> int:
        """How many steps (from the root) the two paths have in common: the depth where they diverge."""
        shared = 0
        for bad_step, good_step in zip(self.bad.path()[1:], self.good.path()[1:], strict=False):
            if bad_step is not good_step:
                break
            shared += 1
        return shared

    def clamp(self, t_prime: int) -> int:
        """``t_prime`` moved into the bad path's own steps: a step the successful path shares cannot be the
        first error, so the result is at least ``shared_steps + 1`` (and at most the bad leaf's depth)."""
        return min(max(t_prime, self.shared_steps + 1), self.bad.depth)


def is_good(score: float, config: PairConfig) -> bool:
    """Whether a leaf scoring ``score`` may be the good side of a pair."""
    if config.rule == "paper":
        return score >= config.alpha and score > config.beta
    return score > config.alpha


def is_pair(bad_score: float, good_score: float, config: PairConfig) -> bool:
    """Whether leaves with these scores form a (bad, good) pair under ``config.rule``."""
    if not is_good(good_score, config):
        return False
    if config.rule == "paper":
        return bad_score < config.beta
    return good_score - bad_score > config.beta


def find_pairs(tree: Tree, config: PairConfig) -> list[Pair]:
    """Every ordered (bad, good) pair of ``tree``'s terminal leaves that satisfies the rule, shuffled with a
    per-tree seed and capped at ``max_pairs_per_tree``."""
    if config.rule == "released" and tree.root.value <= 0:
        return []
    leaves = list(tree.terminal_leaves())
    pairs = [
        Pair(tree, bad, good)
        for bad in leaves
        for good in leaves
        if bad is not good and is_pair(bad.score, good.score, config)
    ]
    random.Random(f"coursecorrect-pairs:{config.seed}:{tree.env}:{tree.task_id}").shuffle(pairs)
    return pairs[: config.max_pairs_per_tree]
