"""RISE's turn-wise metrics over evaluation records.

Sequential records hold T turns of one sample each (every turn told "incorrect"); parallel records hold one
turn with several samples (``turns[0].all``).

- accuracy per turn: share of problems whose turn-t answer is correct;
- m1@t1: first-turn accuracy; m1@t5: majority vote over the answers of the T sequential turns;
- p1@t5: correct at any of the T turns (an oracle would have stopped there);
- m5@t1: majority vote over the parallel samples.

A vote counts answers by their normal form; the most frequent wins, ties go to the answer given first;
attempts with no readable answer do not vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from coursecorrect.rise.records import Grade, Rollout, Sample, parse_rollouts


class _Vote(BaseModel):
    """What a vote reads of an attempt (a :class:`Sample`, or a mapping with ``key`` and ``grade``)."""

    model_config = ConfigDict(from_attributes=True, strict=True)

    key: str | None = None
    grade: Grade


def majority_correct(attempts: Sequence[Sample | Mapping[str, Any]]) -> bool:
    """Whether the majority answer among ``attempts`` is correct."""
    keyed = [v for v in map(_Vote.model_validate, attempts) if v.key is not None]
    if not keyed:
        return False
    counts = Counter(v.key for v in keyed)
    top = max(counts.values())
    winner = next(v for v in keyed if counts[v.key] == top)
    return winner.grade == 1


def sequential_metrics(records: Sequence[Rollout | Mapping[str, Any]], turns: int) -> dict[str, Any]:
    """Accuracy per turn, m1@t1, m1@tT and p1@tT of sequential evaluation records."""
    rollouts = parse_rollouts(records)
    n = len(rollouts)
    if not n:
        return {"problems": 0}
    per_turn = [sum(len(r.turns) > t and r.turns[t].grade == 1 for r in rollouts) / n for t in range(turns)]
    return {
        "problems": n,
        "m1@t1": round(per_turn[0], 4),
        f"m1@t{turns}": round(sum(majority_correct(r.turns) for r in rollouts) / n, 4),
        f"p1@t{turns}": round(sum(any(t.grade == 1 for t in r.turns) for r in rollouts) / n, 4),
        "accuracy_per_turn": [round(a, 4) for a in per_turn],
        "unparseable_share": round(sum(t.key is None for r in rollouts for t in r.turns)
                                   / max(sum(len(r.turns) for r in rollouts), 1), 4),
    }


def parallel_metrics(records: Sequence[Rollout | Mapping[str, Any]], samples: int) -> dict[str, Any]:
    """m{samples}@t1 (majority vote) and pass@samples of parallel evaluation records."""
    rollouts = parse_rollouts(records)
    n = max(len(rollouts), 1)
    return {
        f"m{samples}@t1": round(sum(majority_correct(r.turns[0].all) for r in rollouts) / n, 4),
        f"p{samples}@t1": round(sum(r.turns[0].correct_samples > 0 for r in rollouts) / n, 4),
    }
