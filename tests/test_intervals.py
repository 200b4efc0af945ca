"""Result intervals: known answers for the bootstrap, the seed spread, paired differences and formatting."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

from coursecorrect.eval.intervals import (
    Interval,
    bootstrap_mean,
    describe_difference,
    paired_difference,
    seed_spread,
    task_by_seed_interval,
)

pytestmark = pytest.mark.filterwarnings("error")  # degenerate inputs must not warn

R = 2000  # resamples: enough for the tolerances below, fast on a shared machine


def bernoulli(n: int, p: float = 0.3) -> list[float]:
    """Exactly ``round(p * n)`` successes among ``n`` values, spread evenly: deterministic, mean ``p``."""
    k = round(p * n)
    return [float((i + 1) * k // n - i * k // n) for i in range(n)]


def zero_width_at(interval: Interval, value: float) -> bool:
    return interval.low == interval.estimate == interval.high and interval.estimate == pytest.approx(value, abs=1e-12)


# ---- bootstrap_mean


@pytest.mark.parametrize("values", [[0.7] * 50, [0.1] * 1000, [3.0], [0.0, 0.0]])
def test_constant_values_give_zero_width_at_the_constant(values: list[float]) -> None:
    interval = bootstrap_mean(values, resamples=R)
    assert zero_width_at(interval, values[0])
    assert interval.width == 0


@pytest.mark.parametrize(("level", "z"), [(0.95, 1.959964), (0.90, 1.644854)])
def test_large_bernoulli_sample_matches_the_normal_approximation(level: float, z: float) -> None:
    n, p = 4000, 0.3
    values = bernoulli(n, p)
    assert sum(values) == 1200
    half = z * math.sqrt(p * (1 - p) / n)  # 0.01420 at 95%, 0.01192 at 90%
    interval = bootstrap_mean(values, level=level, resamples=R)
    assert interval.estimate == pytest.approx(p)
    assert interval.level == level
    assert interval.low == pytest.approx(p - half, abs=0.0012)
    assert interval.high == pytest.approx(p + half, abs=0.0012)


def test_interval_shrinks_as_n_grows() -> None:
    widths = [bootstrap_mean(bernoulli(n), resamples=R).width for n in (100, 400, 1600)]
    assert widths[0] > widths[1] > widths[2]
    for wider, narrower in zip(widths, widths[1:], strict=False):
        assert wider / narrower == pytest.approx(2, rel=0.2)  # 4x the tasks: half the width


def test_same_seed_same_interval_other_seed_contains_the_mean_too() -> None:
    rng = random.Random(7)
    values = [rng.random() for _ in range(60)]
    mean = sum(values) / len(values)
    first, again, other = (bootstrap_mean(values, resamples=R, seed=s) for s in (0, 0, 1))
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.estimate == other.estimate == pytest.approx(mean)
    assert first.contains(mean) and other.contains(mean)


@pytest.mark.parametrize("bad", [[], [0.5, float("nan")], [[0.1, 0.2]]])
def test_bootstrap_rejects_empty_nan_and_nested_values(bad: list) -> None:
    with pytest.raises(ValueError):
        bootstrap_mean(bad, resamples=R)


@pytest.mark.parametrize("level", [0, 1, 95])
def test_level_must_be_a_fraction(level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean([0.1, 0.2], level=level, resamples=R)


def test_empty_values_message_is_clear() -> None:
    with pytest.raises(ValueError, match="empty"):
        bootstrap_mean([])


# ---- seed_spread


def test_seed_spread_is_student_t() -> None:
    interval = seed_spread([1.0, 2.0, 3.0])
    half = 4.3027 * 0.57735  # t_{0.975, 2} * sd / sqrt(3), sd = 1
    assert interval.estimate == 2.0
    assert interval.low == pytest.approx(2 - half, rel=1e-4)
    assert interval.high == pytest.approx(2 + half, rel=1e-4)


def test_seed_spread_one_seed_or_equal_seeds_is_zero_width() -> None:
    assert zero_width_at(seed_spread([0.42]), 0.42)
    assert zero_width_at(seed_spread([0.5, 0.5, 0.5]), 0.5)
    with pytest.raises(ValueError):
        seed_spread([])


# ---- task_by_seed_interval


def test_task_by_seed_bootstraps_the_per_task_means_over_tasks() -> None:
    # Seeds disagree within each task, but every task's mean over seeds is 0.5: nothing varies between tasks.
    table = {task: [0.0, 1.0] if task % 2 else [1.0, 0.0] for task in range(40)}
    assert zero_width_at(task_by_seed_interval(table, resamples=R), 0.5)


def test_task_by_seed_equals_bootstrap_of_per_task_means_whatever_the_order() -> None:
    rng = random.Random(3)
    table = {f"task-{i:02d}": [rng.random() for _ in range(3)] for i in range(30)}
    means = [sum(table[t]) / 3 for t in sorted(table)]
    shuffled = dict(rng.sample(list(table.items()), len(table)))
    expected = bootstrap_mean(means, resamples=R, seed=5)
    assert task_by_seed_interval(table, resamples=R, seed=5) == expected
    assert task_by_seed_interval(shuffled, resamples=R, seed=5) == expected


@pytest.mark.parametrize(
    ("table", "match"),
    [({}, "at least one task"), ({1: [0.5], 2: []}, "without values"), ({1: [0.5, 0.7], 2: [0.5]}, "numbers of seeds")],
)
def test_task_by_seed_rejects_missing_values(table: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        task_by_seed_interval(table, resamples=R)


# ---- paired_difference


def scores(n: int = 50, seed: int = 11) -> dict[str, float]:
    rng = random.Random(seed)
    return {f"t{i}": rng.random() for i in range(n)}


def test_identical_results_differ_by_exactly_zero() -> None:
    a = scores()
    assert zero_width_at(paired_difference(a, dict(a), resamples=R), 0.0)


def test_constant_gap_gives_that_gap_with_zero_width() -> None:
    b = scores()
    a = {t: v + 0.1 for t, v in b.items()}
    assert zero_width_at(paired_difference(a, b, resamples=R), 0.1)  # a - b: a is ahead by 0.1
    assert zero_width_at(paired_difference(b, a, resamples=R), -0.1)


def test_pairs_by_task_id_not_by_order_and_ignores_unshared_tasks() -> None:
    b = scores()
    items = [(t, v + 0.1) for t, v in b.items()]
    random.Random(1).shuffle(items)
    a = dict(items)
    assert list(a) != list(b)
    b_extra = {**b, "only-in-b": 100.0}
    assert zero_width_at(paired_difference(a, b_extra, resamples=R), 0.1)


def test_paired_difference_does_not_depend_on_mapping_order() -> None:
    a, b = scores(seed=1), scores(seed=2)
    reordered = dict(reversed(list(a.items())))
    assert paired_difference(a, b, resamples=R) == paired_difference(reordered, b, resamples=R)


def test_paired_difference_is_reproducible_across_processes() -> None:
    # String hashes (so set order) change with PYTHONHASHSEED: a reported interval must not.
    code = (
        "import random; from coursecorrect.eval.intervals import paired_difference as d; r = random.Random(4); "
        "a = {f't{i}': r.random() for i in range(40)}; b = {f't{i}': r.random() for i in range(40)}; "
        "print(d(a, b, resamples=200).to_dict())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True, text=True, check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_paired_difference_needs_common_tasks() -> None:
    with pytest.raises(ValueError, match="share no task"):
        paired_difference({"x": 1.0}, {"y": 1.0}, resamples=R)
    with pytest.raises(ValueError):
        paired_difference({}, {}, resamples=R)


def test_clear_win_excludes_zero_and_noise_does_not() -> None:
    b = {f"t{i}": v for i, v in enumerate(bernoulli(200, 0.3))}
    better = {f"t{i}": v for i, v in enumerate(bernoulli(200, 0.6))}
    win = paired_difference(better, b, resamples=R)
    assert win.estimate == pytest.approx(0.3) and win.excludes_zero and win.low > 0
    same_rate = {t: b[f"t{(int(t[1:]) + 1) % 200}"] for t in b}  # b's successes, one task over
    tie = paired_difference(same_rate, b, resamples=R)
    assert tie.estimate == 0.0 and tie.contains(0.0) and not tie.excludes_zero and tie.width > 0


# ---- Interval and its text


def test_interval_format_and_str() -> None:
    interval = Interval(0.43, 0.33, 0.53)
    assert str(interval) == "0.43 [0.33, 0.53]"
    assert interval.format(digits=3) == "0.430 [0.330, 0.530]"
    assert Interval(0.4321, 0.3333, 0.5555).format(1) == "0.4 [0.3, 0.6]"


def test_interval_contains_excludes_zero_and_to_dict() -> None:
    interval = Interval(0.43, 0.33, 0.53)
    assert interval.contains(0.33) and interval.contains(0.53) and not interval.contains(0.54)
    assert interval.excludes_zero
    assert not Interval(0.0, -0.1, 0.1).excludes_zero
    assert json.loads(json.dumps(interval.to_dict())) == {"estimate": 0.43, "low": 0.33, "high": 0.53, "level": 0.95}


def test_interval_rejects_inverted_or_nan_bounds() -> None:
    with pytest.raises(ValueError):
        Interval(0.5, 0.6, 0.4)
    with pytest.raises(ValueError):
        Interval(float("nan"), 0.0, 1.0)
    with pytest.raises(ValueError):
        Interval(0.5, 0.4, 0.6, level=1.5)


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (Interval(0.12, 0.03, 0.21), "+0.12 [+0.03, +0.21]"),
        (Interval(0.02, -0.05, 0.09), "+0.02 [-0.05, +0.09] (within its interval)"),
        (Interval(-0.12, -0.21, -0.03), "-0.12 [-0.21, -0.03]"),
        (Interval(0.0, 0.0, 0.0), "+0.00 [+0.00, +0.00] (within its interval)"),
        (Interval(-0.001, -0.004, 0.002), "+0.00 [+0.00, +0.00] (within its interval)"),  # never "-0.00"
    ],
)
def test_describe_difference(interval: Interval, text: str) -> None:
    assert describe_difference(interval) == text


def test_describe_difference_digits() -> None:
    assert describe_difference(Interval(0.123, 0.031, 0.215), digits=3) == "+0.123 [+0.031, +0.215]"
