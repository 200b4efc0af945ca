"""The report of a ``compare`` folder, in the form of Agent-R's tables, with 95% intervals.

Everything is read back from the run folders (per-episode JSONL, stage summaries), so ``coursecorrect report``
redraws it at any point and from the small artefacts alone (no models, no trees):

- Per seed: each seed's test success over the iterations, as it has run so far.
- Table 2: test success per method and iteration. A cell is the mean over test tasks of each task's mean over
  seeds, with a bootstrap interval over the tasks; ``seeds`` gives the spread of the seeds' own means (Student
  t); ``vs REF`` is the paired difference to the reference method over tasks, on the seeds both have run,
  "within its interval" when that interval contains 0.
- Table 3: revision ability (the starting model's failed episodes, continued), the same way.
- Table 1: training data per iteration (mean over seeds), with the model critic's agreement with the expert.
- Loops: repeated action sub-sequences per episode in the last iteration.
- Progress: per part (the shared stages, each seed's trees, each method and seed) the stages done and their
  wall time, so a comparison run in parts shows what remains.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from coursecorrect.eval.intervals import (
    describe_difference,
    paired_difference,
    seed_spread,
    task_by_seed_interval,
)
from coursecorrect.eval.metrics import LOOP_LENGTHS
from coursecorrect.io import atomic_write_text
from coursecorrect.pipeline.compare_folders import (
    method_dir,
    method_stages,
    saved_config,
    shared_stages,
    twin_of,
)
from coursecorrect.pipeline.report import (
    REPORT_FILE,
    collect_results,
    format_percent,
    in_points,
    save_figure,
    task_successes,
)
from coursecorrect.pipeline.run import stage_plan
from coursecorrect.rundir import RunDir, StageDir

Scores = dict[tuple[str, int], list[float]]  # (env, task id) -> one value per seed


def is_compare_folder(root: Path) -> bool:
    config = Path(root) / "config.yaml"
    return config.is_file() and "methods" in (yaml.safe_load(config.read_text(encoding="utf-8")) or {})


def load_compare(root: Path) -> dict[str, Any]:
    """Per method and iteration: successes by task and seed, revision ability likewise, each seed's successes by
    task (``by_seed``: method -> seed -> iteration -> task -> success), and stage summaries."""
    root = Path(root)
    config = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    methods, seeds = config["methods"], config["seeds"]
    revision: dict[str, dict[int, Scores]] = {m: defaultdict(lambda: defaultdict(list)) for m in methods}
    by_seed: dict[str, dict[int, dict[int, dict[tuple[str, int], float]]]] = {m: defaultdict(dict) for m in methods}
    summaries: dict[str, dict[int, list[dict[str, Any]]]] = {m: defaultdict(list) for m in methods}
    start = task_successes(root / "eval")
    for method in methods:
        for seed in seeds:
            run = RunDir(method_dir(root, seed, method), method_stages(root, seed, method, methods))
            if not run.root.is_dir():
                continue
            results = collect_results(run)["iterations"]
            for i, stages in results.items():
                summaries[method][i].append(stages)
                if "eval" not in stages:
                    continue
                scores = start if i == 0 else task_successes(run.path_of("eval", i))
                if scores:
                    by_seed[method][seed][i] = scores
                if "revision" in stages:
                    for key, value in task_successes(run.path_of("revision", i)).items():
                        revision[method][i][key].append(value)
    success: dict[str, dict[int, Scores]] = {m: defaultdict(lambda: defaultdict(list)) for m in methods}
    for method in methods:
        for seed in seeds:
            for i, scores in by_seed[method].get(seed, {}).items():
                for key, value in scores.items():
                    success[method][i][key].append(value)
    return {"config": config, "methods": methods, "seeds": seeds, "success": success, "revision": revision,
            "by_seed": by_seed, "summaries": summaries}


def _complete(scores: Scores) -> Scores:
    """Only the tasks every finished seed played (a seed still running would bias the mean)."""
    most = max((len(v) for v in scores.values()), default=0)
    return {k: v for k, v in scores.items() if len(v) == most}


def _cell(scores: Scores) -> str:
    scores = _complete(scores)
    if not scores:
        return "–"
    interval = task_by_seed_interval(scores)
    return f"{format_percent(interval)} (n={len(scores)}×{len(next(iter(scores.values())))})"


def write_compare_report(root: Path) -> Path:
    """Write ``report.md`` and plots for the compare folder ``root``; return the report's path."""
    root = Path(root)
    data = load_compare(root)
    methods = data["methods"]
    iterations = sorted({i for m in methods for i in data["success"][m]})
    reference = data["config"].get("control_steps_like", "agent-r")
    last = iterations[-1] if iterations else 0
    lines = [f"# Compare report: {root.name}", "",
             f"Methods: {', '.join(methods)}; seeds: {', '.join(map(str, data['seeds']))}. Cells: % [95% interval] "
             "(n = test tasks × seeds).", ""]
    lines += _per_seed(data)
    lines += _table2(data, iterations, reference, last)
    lines += _table3(data, iterations)
    lines += _table1(data, iterations)
    lines += _loops(data, last)
    lines += _progress(root, data)
    plots = _plots(root, data, iterations)
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    lines += [
        "Intervals: percentile bootstrap over test tasks of each task's mean over seeds; `seeds` is the mean of "
        "the seeds' own success rates ± Student-t 95% half-width. A difference is paired by task, on the seeds both "
        "methods have run; one whose interval contains 0 is printed as within its interval.", "",
    ]
    path = root / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path


def _paired_means(by_seed: dict[str, Any], method: str, reference: str, iteration: int
                  ) -> tuple[dict[tuple[str, int], float], dict[tuple[str, int], float]]:
    """Each task's mean over the seeds both methods have evaluated at ``iteration``, for the method and the
    reference, so a difference never sets one seed set against another while a seed is still running."""
    runs = [by_seed.get(name, {}) for name in (method, reference)]
    seeds = [s for s in runs[0] if iteration in runs[0][s] and iteration in runs[1].get(s, {})]
    if not seeds:
        return {}, {}
    tasks = set.intersection(*(set(run[s][iteration]) for run in runs for s in seeds))
    mine, ref = ({task: mean(run[s][iteration][task] for s in seeds) for task in tasks} for run in runs)
    return mine, ref


def _per_seed(data: dict[str, Any]) -> list[str]:
    """One cell per method and seed: success (%) at each evaluated iteration, from iteration 0 on."""
    header = ["method", *(f"seed {s}" for s in data["seeds"])]
    lines = ["## Per seed: test success (%), iteration 0 → 1 → …", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for method in data["methods"]:
        cells = []
        for seed in data["seeds"]:
            done = data["by_seed"][method].get(seed, {})
            cells.append(" → ".join(f"{100 * mean(done[i].values()):.3g}" for i in sorted(done)) if done else "–")
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return lines + [""]


def _table2(data: dict[str, Any], iterations: list[int], reference: str, last: int) -> list[str]:
    header = ["method"] + [f"iter {i}" for i in iterations] + [f"seeds (iter {last})", f"vs {reference} (iter {last})"]
    lines = ["## Table 2: test success (%)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in data["methods"]:
        by_iter = data["success"][method]
        row = [method] + [_cell(by_iter.get(i, {})) for i in iterations]
        seeds = [mean(done[last].values()) for done in data["by_seed"][method].values() if last in done]
        plural = "s" if len(seeds) > 1 else ""
        row.append(f"{format_percent(seed_spread(seeds))} ({len(seeds)} seed{plural})" if seeds else "–")
        mine, ref = _paired_means(data["by_seed"], method, reference, last)
        if method == reference or not set(ref) & set(mine):
            row.append("–")
        else:
            row.append(describe_difference(in_points(paired_difference(mine, ref))))
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _table3(data: dict[str, Any], iterations: list[int]) -> list[str]:
    later = [i for i in iterations if i > 0]
    if not any(data["revision"][m].get(i) for m in data["methods"] for i in later):
        return []
    header = ["method"] + [f"iter {i}" for i in later]
    lines = ["## Table 3: revision ability (%)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in data["methods"]:
        lines.append("| " + " | ".join([method] + [_cell(data["revision"][method].get(i, {})) for i in later]) + " |")
    return lines + [""]


DATA_KINDS = ("pairs", "revision", "good", "optimal", "gold")


def _table1(data: dict[str, Any], iterations: list[int]) -> list[str]:
    header = ["method", "iter", *DATA_KINDS, "preference pairs", "train steps", "critic = expert"]
    lines = ["## Table 1: training data per iteration (mean over seeds)", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for method in data["methods"]:
        for i in iterations:
            runs = [s for s in data["summaries"][method].get(i, []) if "data" in s]
            if not runs:
                continue
            counts = [_sum_envs(s["data"].get("counts", {})) for s in runs]
            row = [method, str(i)] + [f"{mean(c.get(k, 0) for c in counts):g}" for k in DATA_KINDS]
            row.append(_mean_of([s["data"].get("preference_pairs") for s in runs]))
            row.append(_train_steps([s.get("train", {}) for s in runs]))
            agreement = [s["data"].get("critic_accuracy") for s in runs if s["data"].get("critic_accuracy")]
            row.append(_agreement(agreement))
            lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _sum_envs(counts: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {k: sum(env.get(k) or 0 for env in counts.values()) for k in DATA_KINDS}


def _mean_of(values: list[Any]) -> str:
    numbers = [v for v in values if isinstance(v, int | float)]
    return f"{mean(numbers):g}" if numbers else "–"


def _train_steps(trainings: list[dict[str, Any]]) -> str:
    """Mean SFT steps, and mean DPO steps after a "+" where the method also ran DPO (ETO)."""
    sft = _mean_of([t.get("steps") for t in trainings])
    dpo = _mean_of([(t.get("dpo") or {}).get("steps") for t in trainings])
    return sft if dpo == "–" else f"{sft} + {dpo} DPO"


def _agreement(records: list[dict[str, Any]]) -> str:
    pairs = sum(r.get("pairs", 0) for r in records)
    exact = sum(r.get("exact", 0) for r in records)
    return f"{exact}/{pairs} ({100 * exact / pairs:.0f}%)" if pairs else "–"


def _loops(data: dict[str, Any], last: int) -> list[str]:
    header = ["method", *(f"length {k}" for k in LOOP_LENGTHS)]
    lines = [f"## Loops: repeated action sub-sequences per episode (iteration {last}, mean over seeds)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in data["methods"]:
        runs = [s["eval"]["envs"] for s in data["summaries"][method].get(last, []) if "eval" in s]
        if not runs:
            continue
        cells = [f"{mean(mean(e['repeated_actions'][str(k)] for e in envs.values()) for envs in runs):.2f}"
                 for k in LOOP_LENGTHS]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return lines + [""]


def _progress(root: Path, data: dict[str, Any]) -> list[str]:
    """Stages done and their wall time, per part: the shared stages, each seed's trees, each method and seed."""
    lines = ["## Progress: stages done and their wall time", "", "| part | stages done | wall time (min) |",
             "|---|---|---|"]
    total = 0.0

    def row(part: str, folders: list[Path]) -> None:
        nonlocal total
        done = [StageDir(f).summary() for f in folders if StageDir(f).is_done()]
        seconds = sum(d.get("wall_seconds", 0.0) for d in done)
        total += seconds
        lines.append(f"| {part} | {len(done)}/{len(folders)} | {seconds / 60:.1f} |")

    row("shared: warm start, iteration-0 evaluation", [root / "warm_start", root / "eval"])
    for seed in data["seeds"]:
        shared = shared_stages(root, seed)
        common = set(shared.values())
        row(f"seed {seed}: iteration-1 trees", [shared["iter_1/collect"]])
        for method in data["methods"]:
            folder = method_dir(root, seed, method)
            config = saved_config(folder)
            if config is None:
                lines.append(f"| seed {seed}: {method} | not started | – |")
                continue
            run = RunDir(folder, method_stages(root, seed, method, data["methods"]))
            stages = [run.path_of(*key) for key in stage_plan(config)]
            own = [path for path in stages if path.is_relative_to(folder)]
            part = f"seed {seed}: {method}"
            if twin := twin_of(root, seed, method, data["methods"]):  # a twin's twin's stages are its too
                taken = len(stages) - len(own) - sum(path in common for path in stages)
                part += f" ({taken} more taken from {twin[0]})"
            row(part, own)
    lines.append(f"| all | | {total / 60:.1f} |")
    lines += ["", "Wall time as each stage last ran (a stage remade on another machine counts its last run; "
              "other jobs on the machine slow a stage down).", ""]
    return lines + _twins(root, data)


def _twins(root: Path, data: dict[str, Any]) -> list[str]:
    """Which methods train on the same data with the same settings as an earlier one (their stages after the
    data are that method's, unless they were run on their own), so their figures are equal by construction."""
    lines = []
    for seed in data["seeds"]:
        for method in data["methods"]:
            if twin := twin_of(root, seed, method, data["methods"]):
                other, iterations = twin
                which = f"iteration {iterations[0]}" if len(iterations) == 1 else f"iterations 1–{iterations[-1]}"
                lines.append(f"- seed {seed}: {method} trains on the same data with the same settings as {other} "
                             f"in {which}")
    if not lines:
        return []
    return ["Identical training (the same models: the figures are equal by construction, and the stages after each "
            "data stage are the first method's unless run on their own):", "", *lines, ""]


def _plots(root: Path, data: dict[str, Any], iterations: list[int]) -> list[str]:
    """Success per iteration per method, with the 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, key, title in (("compare_success.png", "success", "Test success"),
                             ("compare_revision.png", "revision", "Revision ability")):
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for method in data["methods"]:
            done = [(i, s) for i in iterations if (s := _complete(data[key][method].get(i, {})))]
            points = [(i, task_by_seed_interval(s)) for i, s in done]
            if not points:
                continue
            xs = [i for i, _ in points]
            line, = ax.plot(xs, [100 * p.estimate for _, p in points], marker="o", label=method)
            ax.fill_between(xs, [100 * p.low for _, p in points], [100 * p.high for _, p in points],
                            color=line.get_color(), alpha=0.15)
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set(xlabel="iteration", ylabel="%", title=f"{title} (95% bands)", ylim=(0, 100))
        ax.set_xticks(iterations)
        ax.legend(fontsize="small")
        written.append(save_figure(fig, root / name))
    return written

