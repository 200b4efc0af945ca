"""Preference pairs from search trees: ETO's DPO data (a good and a bad continuation of one shared prefix).

Every (bad, good) leaf pair of a tree (:func:`~coursecorrect.revision.pairs.find_pairs`, the same rule and
caps as the revision data) becomes one :class:`~coursecorrect.data.preferences.PreferencePair` (the record,
its JSONL file and what TRL is given: :mod:`coursecorrect.data.preferences`):

    prompt     root messages + the steps both paths share     (never trained: loss=False everywhere)
    chosen     the good leaf's steps after the shared prefix  (assistant loss=True, observations)
    rejected   the bad leaf's steps after the shared prefix   (assistant loss=True, observations)
"""

from __future__ import annotations

from collections.abc import Iterable

from coursecorrect.data.preferences import PreferencePair, trl_messages
from coursecorrect.data.tree import Tree
from coursecorrect.revision.pairs import Pair, PairConfig, find_pairs


def preference_of(pair: Pair) -> PreferencePair:
    """The preference pair of a (bad, good) leaf pair: the good path preferred after the shared steps."""
    tree, shared = pair.tree, pair.shared_steps
    good, bad = tree.messages(pair.good), tree.messages(pair.bad)
    cut = len(tree.root_messages) + 2 * shared  # each step is an assistant turn and its observation
    prompt = [m.model_copy(update={"loss": False}) for m in good[:cut]]
    meta = {
        "env": tree.env, "task_id": tree.task_id, "kind": "preference",
        "good_node": pair.good.id, "good_score": pair.good.score, "good_depth": pair.good.depth,
        "bad_node": pair.bad.id, "bad_score": pair.bad.score, "bad_depth": pair.bad.depth,
        "divergence": shared,
    }
    return PreferencePair(prompt=prompt, chosen=good[cut:], rejected=bad[cut:], meta=meta)


def preference_pairs(trees: Iterable[Tree], pair_config: PairConfig) -> list[PreferencePair]:
    """The preference pairs of ``trees``: one per (bad, good) pair that ``pair_config`` admits, trees in the
    given order and each tree's pairs in :func:`find_pairs`' (seeded) order. A pair whose two continuations
    read the same (different nodes, same text) carries no preference and is left out."""
    pairs = []
    for tree in trees:
        for pair in find_pairs(tree, pair_config):
            preference = preference_of(pair)
            if trl_messages(preference.chosen) != trl_messages(preference.rejected):
                pairs.append(preference)
    return pairs
