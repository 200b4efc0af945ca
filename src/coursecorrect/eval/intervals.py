"""95% intervals for reported results: bootstrap over test tasks, spread over seeds, paired differences.

The unit of resampling is the test task: a method's score is the mean over tasks, and its interval is a
percentile bootstrap (``scipy.stats.bootstrap``) of that mean. With several seeds per task, each task's
score is first averaged over seeds (``task_by_seed_interval``). Two methods are compared task by task
(``paired_difference``); a difference whose interval contains 0 is "within its interval".

Degenerate inputs give no warnings or NaN: no values raise ``ValueError``; one value, or values that are
all equal (up to float rounding), give a zero-width interval at their mean.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
from scipy import stats

TaskId = TypeVar("TaskId", bound=Hashable)

RESAMPLES = 10_000
BATCH = 1_000  # resamples drawn at once: bounds memory at BATCH x n floats
CONSTANT_RTOL = 1e-12  # values spread less than this (relative to their size) are treated as equal


@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``level`` (e.g. 0.95) interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.estimate, self.low, self.high)):
            raise ValueError(f"interval values must be finite, got {self.estimate}, [{self.low}, {self.high}]")
        if self.low > self.high:
            raise ValueError(f"interval low {self.low} is above high {self.high}")
        _check_level(self.level)

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the closed interval."""
        return self.low <= x <= self.high

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval (for a difference: one method is ahead beyond the noise)."""
        return not self.contains(0.0)

    def format(self, digits: int = 2) -> str:
        """``"0.43 [0.33, 0.53]"``."""
        return f"{_fmt(self.estimate, digits)} [{_fmt(self.low, digits)}, {_fmt(self.high, digits)}]"

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of the mean of ``values`` (one per test task), seeded."""
    x = _as_values(values, "values")
    _check_level(level)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    estimate = float(np.mean(x))
    if _is_constant(x):
        return Interval(estimate, estimate, estimate, level)
    result = stats.bootstrap(
        (x,), np.mean, n_resamples=resamples, batch=BATCH, vectorized=True, confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), level)


def seed_spread(means: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean over seeds ± Student-t half-width ``t_{(1+level)/2, n-1} · sd / √n`` (``sd`` with ``n - 1``).

    With one seed the spread is unknown: the interval is zero-width at that seed's value."""
    x = _as_values(means, "means")
    _check_level(level)
    estimate = float(np.mean(x))
    n = len(x)
    if n == 1 or _is_constant(x):
        return Interval(estimate, estimate, estimate, level)
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return Interval(estimate, estimate - half, estimate + half, level)


def task_by_seed_interval(
    table: Mapping[TaskId, Sequence[float]], level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0,
) -> Interval:
    """One method's score over tasks and seeds: ``table`` maps each test task to its per-seed values.

    Each task's values are averaged over seeds, and the mean over tasks is bootstrapped over tasks (the
    seeds stay with their task). Every task must have the same number of seeds. The result does not
    depend on the order of ``table``."""
    if not table:
        raise ValueError("task_by_seed_interval needs at least one task")
    counts = {task: len(runs) for task, runs in table.items()}
    if min(counts.values()) == 0:
        empty = [task for task, count in counts.items() if count == 0]
        raise ValueError(f"tasks without values: {empty[:5]}{' ...' if len(empty) > 5 else ''}")
    if len(set(counts.values())) > 1:
        raise ValueError(f"tasks have different numbers of seeds: {sorted(set(counts.values()))}")
    per_task = [float(np.mean(_as_values(table[task], f"task {task!r}"))) for task in _ordered(table)]
    return bootstrap_mean(per_task, level=level, resamples=resamples, seed=seed)


def paired_difference(
    a: Mapping[TaskId, float], b: Mapping[TaskId, float], level: float = 0.95, resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of the mean of ``a[task] - b[task]`` over the tasks both have, paired by task id.

    Positive means ``a`` scores higher. Tasks in only one of the two are left out. The result does not
    depend on the order of either mapping."""
    common = a.keys() & b.keys()
    if not common:
        raise ValueError("paired_difference: the two results share no task ids")
    tasks = _ordered(common)
    diffs = np.array([a[t] for t in tasks], dtype=float) - np.array([b[t] for t in tasks], dtype=float)
    return bootstrap_mean(diffs, level=level, resamples=resamples, seed=seed)


def describe_difference(interval: Interval, digits: int = 2) -> str:
    """``"+0.12 [+0.03, +0.21]"``, with ``" (within its interval)"`` appended when the interval contains 0."""
    text = " ".join([
        _fmt(interval.estimate, digits, sign=True),
        f"[{_fmt(interval.low, digits, sign=True)}, {_fmt(interval.high, digits, sign=True)}]",
    ])
    return text if interval.excludes_zero else f"{text} (within its interval)"


def _fmt(x: float, digits: int, sign: bool = False) -> str:
    """``x`` to ``digits`` decimals, never as ``-0.00``."""
    return f"{round(x, digits) + 0.0:{'+' if sign else ''}.{digits}f}"


def _as_values(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float array: non-empty and finite."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: an interval needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite values (NaN or inf)")
    return x


def _is_constant(x: np.ndarray) -> bool:
    """All values equal up to float rounding (e.g. ``(v + 0.1) - v`` over many ``v``). The percentile
    interval of a mean lies within ``[min, max]``, so treating them as equal moves it by at most that much."""
    return float(np.ptp(x)) <= CONSTANT_RTOL * max(1.0, float(np.max(np.abs(x))))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")


def _ordered(tasks: Any) -> list[Any]:
    """Task ids in a fixed order (sorted; by ``repr`` when ids of mixed types do not compare)."""
    try:
        return sorted(tasks)
    except TypeError:
        return sorted(tasks, key=repr)
