"""RISE's turn-wise metrics over evaluation records.

Sequential records hold T turns of one sample each (every turn told "incorrect"); parallel records hold one
turn with several samples (``turns[0]["all"]``).

- accuracy per turn: share of problems whose turn-t answer is correct;
- m1@t1: first-turn accuracy; m1@t5: majority vote over the answers of the T sequential turns;
- p1@t5: correct at any of the T turns (an oracle would have stopped there);
- m5@t1: majority vote over the parallel samples.

A vote counts answers by their normal form; the most frequent wins, ties go to the answer given first;
attempts with no readable answer do not vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


def majority_correct(attempts: Sequence[dict[str, Any]]) -> bool:
    """Whether the majority answer among ``attempts`` (each with ``key`` and ``grade``) is correct."""
    keyed = [a for a in attempts if a.get("key") is not None]
    if not keyed:
        return False
    counts = Counter(a["key"] for a in keyed)
    top = max(counts.values())
    winner = next(a for a in keyed if counts[a["key"]] == top)
    return winner["grade"] == 1


def sequential_metrics(records: Sequence[dict[str, Any]], turns: int) -> dict[str, Any]:
    """Accuracy per turn, m1@t1, m1@tT and p1@tT of sequential evaluation records."""
    n = len(records)
    if not n:
        return {"problems": 0}
    per_turn = [sum(len(r["turns"]) > t and r["turns"][t]["grade"] == 1 for r in records) / n for t in range(turns)]
    return {
        "problems": n,
        "m1@t1": round(per_turn[0], 4),
        f"m1@t{turns}": round(sum(majority_correct(r["turns"]) for r in records) / n, 4),
        f"p1@t{turns}": round(sum(any(t["grade"] == 1 for t in r["turns"]) for r in records) / n, 4),
        "accuracy_per_turn": [round(a, 4) for a in per_turn],
        "unparseable_share": round(sum(t["key"] is None for r in records for t in r["turns"])
                                   / max(sum(len(r["turns"]) for r in records), 1), 4),
    }


def parallel_metrics(records: Sequence[dict[str, Any]], samples: int) -> dict[str, Any]:
    """m{samples}@t1 (majority vote) and pass@samples of parallel evaluation records."""
    n = max(len(records), 1)
    return {
        f"m{samples}@t1": round(sum(majority_correct(r["turns"][0]["all"]) for r in records) / n, 4),
        f"p{samples}@t1": round(sum(r["turns"][0]["correct_samples"] > 0 for r in records) / n, 4),
    }
