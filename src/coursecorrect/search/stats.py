"""Statistics of a collection run: how many trees, leaves and outcomes — the raw material of revision data.

A *terminal leaf* is a finished trajectory (its score is the env's outcome); a success scores >= 1. A tree
that holds both a success and a failure yields (bad, good) pairs for revision trajectories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from coursecorrect.data.tree import Tree


def _score_key(score: float) -> str:
    return f"{score:g}"


def tree_stats(trees: Sequence[Tree]) -> dict[str, Any]:
    """Per-run statistics. ``leaf_score_histogram`` counts terminal leaves by score; ``mean_leaf_depth`` is
    over all leaves; ``trees_with_success_and_failure`` counts trees holding both outcomes."""
    nodes = leaves = terminal_leaves = rollout_nodes = depth_sum = 0
    histogram: Counter[str] = Counter()
    with_success = with_both = 0
    for tree in trees:
        success = failure = False
        for node in tree.nodes():
            nodes += 1
            rollout_nodes += node.rollout
            if not node.is_leaf:
                continue
            leaves += 1
            depth_sum += node.depth
            if node.terminal:
                terminal_leaves += 1
                histogram[_score_key(node.score)] += 1
                success |= node.success
                failure |= not node.success
        with_success += success
        with_both += success and failure
    return {
        "trees": len(trees),
        "nodes": nodes,
        "rollout_nodes": rollout_nodes,
        "leaves": leaves,
        "terminal_leaves": terminal_leaves,
        "leaf_score_histogram": dict(sorted(histogram.items(), key=lambda item: float(item[0]))),
        "trees_with_success": with_success,
        "trees_with_success_and_failure": with_both,
        "share_with_success_and_failure": round(with_both / len(trees), 4) if trees else 0.0,
        "mean_leaf_depth": round(depth_sum / leaves, 3) if leaves else 0.0,
        "mean_nodes_per_tree": round(nodes / len(trees), 2) if trees else 0.0,
    }
