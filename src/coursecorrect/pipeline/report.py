"""The run report: ``report.md`` with per-iteration tables, and PNG plots beside it.

Everything is read back from the stages' ``DONE.json`` summaries, so ``coursecorrect report RUN`` redraws
the report of any run, finished or not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from coursecorrect.errors import CourseCorrectError
from coursecorrect.eval.intervals import Interval, bootstrap_mean, describe_difference, paired_difference
from coursecorrect.eval.metrics import LOOP_LENGTHS
from coursecorrect.io import atomic_write_text
from coursecorrect.rundir import RunDir, StageDir

REPORT_FILE = "report.md"
STAGE_ORDER = ("collect", "data", "train", "eval", "revision")


def _done(path: Path) -> dict[str, Any] | None:
    stage = StageDir(path)
    return stage.summary() if stage.is_done() else None


def collect_results(run: RunDir | Path) -> dict[str, Any]:
    """The finished stages of a run: warm start, and per iteration (0 = the starting model) its stages."""
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    iterations: dict[int, dict[str, Any]] = {}
    baseline = _done(run.path_of("eval"))
    if baseline is not None:
        iterations[0] = {"eval": baseline}
    for i in run.iterations():
        stages = {name: s for name in STAGE_ORDER if (s := _done(run.path_of(name, i))) is not None}
        if stages:
            iterations[i] = stages
    return {"warm_start": _done(run.path_of("warm_start")), "iterations": iterations}


def _totals(counts: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Trajectory counts of one build summed over its envs."""
    kinds = ("revision", "good", "optimal", "gold")
    return {k: sum(env.get(k) or 0 for env in counts.values()) for k in kinds}


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def write_report(root: Path) -> Path:
    """Write ``report.md`` and the plots of the run in ``root``; return the report's path."""
    root = Path(root)
    results = collect_results(root)
    iterations = results["iterations"]
    envs = sorted({env for stages in iterations.values() for env in stages.get("eval", {}).get("envs", {})})
    lines = [f"# Run report: {root.name}", ""]
    warm = results["warm_start"]
    if warm:
        train = warm.get("train", {})
        lines += [
            "## Warm start", "",
            f"SFT on {warm['gold_trajectories']} expert trajectories: {train.get('steps', '?')} steps, "
            f"train loss {_num(train.get('train_loss_first'))} → {_num(train.get('train_loss_last'))}, "
            f"{warm.get('wall_seconds', 0):.0f} s.", "",
        ]
    lines += _results_table(iterations, envs)
    lines += interval_table(RunDir(root))
    lines += _data_table(iterations)
    lines += _time_table(results)
    plots = _plots(root, iterations, envs)
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    lines += [
        "Iteration 0 is the starting model (after the warm start, if any). Success is on the test split; "
        "loops = average count of repeated action sub-sequences of length 1–4 per episode; revision ability = "
        "share of the starting model's failed test episodes that the model completes when continuing them "
        "from a random step.", "",
    ]
    path = root / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path


def task_successes(folder: Path) -> dict[tuple[str, int], float]:
    """Success per (env, task) of the episode files under a stage folder (one folder per env)."""
    from coursecorrect.data.conversation import read_conversations

    return {(path.parent.name, int(e.meta["task_id"])): float(e.meta["success"])
            for path in sorted(folder.glob("*/episodes.jsonl")) for e in read_conversations(path)}


def interval_rows(run: RunDir) -> list[tuple[int, int, int, Interval, Interval | None]]:
    """Per finished evaluation: iteration, successes, episodes, the success rate's 95% bootstrap interval over
    test tasks, and the paired difference to iteration 0 on the same tasks (None for iteration 0)."""
    results = collect_results(run)["iterations"]
    start = task_successes(run.path_of("eval")) if 0 in results else {}
    rows = []
    for i, stages in results.items():
        if "eval" not in stages:
            continue
        scores = start if i == 0 else task_successes(run.path_of("eval", i))
        if not scores:
            continue
        common = set(scores) & set(start)
        diff = paired_difference(scores, start) if i > 0 and common else None
        rows.append((i, int(sum(scores.values())), len(scores), bootstrap_mean(list(scores.values())), diff))
    return rows


def interval_table(run: RunDir) -> list[str]:
    """Markdown: success per iteration with its 95% interval, and the change from iteration 0."""
    rows = interval_rows(run)
    if not rows:
        return []
    lines = ["## Success with 95% intervals", "", "| iteration | solved | success % [95% interval] | vs iteration 0 "
             "(points) |", "|---|---|---|---|"]
    for i, solved, n, interval, diff in rows:
        change = describe_difference(in_points(diff), digits=1) if diff is not None else "–"
        lines.append(f"| {i} | {solved}/{n} | {format_percent(interval)} | {change} |")
    return lines + ["", "Intervals: percentile bootstrap over test tasks; the change is paired by task.", ""]


def in_points(interval: Interval) -> Interval:
    return Interval(100 * interval.estimate, 100 * interval.low, 100 * interval.high, interval.level)


def format_percent(interval: Interval) -> str:
    return f"{100 * interval.estimate:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def _results_table(iterations: dict[int, dict[str, Any]], envs: list[str]) -> list[str]:
    header = ["iteration"] + [f"{env} success" for env in envs] + [f"{env} steps" for env in envs]
    header += [f"loops {k}" for k in LOOP_LENGTHS] + ["revision ability"]
    lines = ["## Results per iteration", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, stages in iterations.items():
        ev = stages.get("eval", {}).get("envs", {})
        if not ev:
            continue
        row = [str(i)] + [_pct(ev[e]["success_rate"]) if e in ev else "–" for e in envs]
        row += [f"{ev[e]['average_steps']:.1f}" if e in ev else "–" for e in envs]
        row += [f"{sum(s['repeated_actions'][str(k)] for s in ev.values()) / len(ev):.2f}" for k in LOOP_LENGTHS]
        rev = stages.get("revision", {}).get("envs", {})
        row.append(_pct(sum(r["revision_success_rate"] for r in rev.values()) / len(rev)) if rev else "–")
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


DATA_COLUMNS = ("trees", "pairs", "revision", "good", "optimal", "mean_t_prime", "mean_bad_prefix")


def _data_table(iterations: dict[int, dict[str, Any]]) -> list[str]:
    data = {i: s["data"] for i, s in iterations.items() if "data" in s}
    if not data:
        return []
    lines = ["## Training data per iteration", "", "| iteration | env | α | " + " | ".join(DATA_COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(DATA_COLUMNS)]
    for i, summary in data.items():
        for env, counts in summary.get("counts", {}).items():
            cells = [f"{counts[k]:g}" if isinstance(counts.get(k), int | float) else "–" for k in DATA_COLUMNS]
            lines.append(f"| {i} | {env} | {summary.get('alpha', '–')} | " + " | ".join(cells) + " |")
    return lines + [""]


def _time_table(results: dict[str, Any]) -> list[str]:
    lines = ["## Wall time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    total = 0.0
    if results["warm_start"]:
        total += results["warm_start"].get("wall_seconds", 0)
        lines.append(f"| warm start | {results['warm_start'].get('wall_seconds', 0):.0f} |")
    for i, stages in results["iterations"].items():
        for name, summary in stages.items():
            total += summary.get("wall_seconds", 0)
            where = "start" if i == 0 else f"iteration {i}"
            lines.append(f"| {where} · {name} | {summary.get('wall_seconds', 0):.0f} |")
    lines.append(f"| **total** | **{total:.0f}** |")
    return lines + [""]


def _plots(root: Path, iterations: dict[int, dict[str, Any]], envs: list[str]) -> list[str]:
    """Draw success, loops and data plots; return the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    evals = {i: s["eval"]["envs"] for i, s in iterations.items() if s.get("eval", {}).get("envs")}
    if evals:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for env in envs:
            xs = [i for i in evals if env in evals[i]]
            ax.plot(xs, [100 * evals[i][env]["success_rate"] for i in xs], marker="o", label=f"{env} success")
        rev = {i: s["revision"]["envs"] for i, s in iterations.items() if s.get("revision", {}).get("envs")}
        if rev:
            xs = sorted(rev)
            ys = [100 * sum(r["revision_success_rate"] for r in rev[i].values()) / len(rev[i]) for i in xs]
            ax.plot(xs, ys, marker="s", linestyle="--", label="revision ability")
        ax.set(xlabel="iteration", ylabel="%", title="Success per iteration", ylim=(0, 100))
        ax.set_xticks(sorted(evals))
        ax.legend()
        written.append(save_figure(fig, root / "success.png"))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        width = 0.8 / len(evals)
        for j, (i, ev) in enumerate(evals.items()):
            ys = [sum(s["repeated_actions"][str(k)] for s in ev.values()) / len(ev) for k in LOOP_LENGTHS]
            ax.bar([k + j * width for k in LOOP_LENGTHS], ys, width=width, label=f"iteration {i}")
        ax.set(xlabel="sub-sequence length", ylabel="repeats per episode", title="Loops (repeated actions)")
        ax.set_xticks([k + width * (len(evals) - 1) / 2 for k in LOOP_LENGTHS], [str(k) for k in LOOP_LENGTHS])
        ax.legend()
        written.append(save_figure(fig, root / "loops.png"))
    data = {i: _totals(s["data"].get("counts", {})) for i, s in iterations.items() if "data" in s}
    kinds = [k for k in ("revision", "good", "optimal", "gold") if any(d[k] for d in data.values())]
    if data and kinds:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        bottom = [0.0] * len(data)
        for kind in kinds:
            ys = [d.get(kind, 0) for d in data.values()]
            ax.bar([str(i) for i in data], ys, bottom=bottom, label=kind)
            bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
        ax.set(xlabel="iteration", ylabel="trajectories", title="Training data")
        ax.legend()
        written.append(save_figure(fig, root / "data.png"))
    return written


def save_figure(fig: Any, path: Path) -> str:
    """Save a figure atomically (a temp file renamed over the target) and close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path.name


def splice_into_markdown(markdown: Path, run_dir: Path, report: Path) -> None:
    """Replace the block between ``<!-- report: RUN_DIR -->`` and ``<!-- /report -->`` in ``markdown`` with the
    report's tables (its headings one level down, plots linked relative to ``markdown``)."""
    markdown, run_dir = Path(markdown), Path(run_dir)
    text = markdown.read_text(encoding="utf-8") if markdown.is_file() else ""
    begin = f"<!-- report: {run_dir.as_posix()} -->"
    end = "<!-- /report -->"
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise CourseCorrectError(f"{markdown}: no block '{begin}' ... '{end}' to fill")
    body = []
    relative = Path(os.path.relpath(report.parent, markdown.parent)).as_posix()
    for line in report.read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            line = "#" + line
        line = re.sub(r"\]\(([^/)]+\.png)\)", lambda m: f"]({relative}/{m.group(1)})", line)
        body.append(line)
    atomic_write_text(markdown, head + begin + "\n" + "\n".join(body).strip() + "\n" + end + rest.split(end, 1)[1])
