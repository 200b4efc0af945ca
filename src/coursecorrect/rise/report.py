"""The report of a RISE run: turn-wise metrics per iteration (report.md) and accuracy per turn (accuracy.png)."""

from __future__ import annotations

from pathlib import Path

from coursecorrect.io import atomic_write_text
from coursecorrect.rise.plots import plot_accuracy
from coursecorrect.rundir import StageDir


def _iterations(root: Path) -> list[tuple[int, StageDir]]:
    """(iteration, finished eval stage) pairs, iteration 0 being the starting model."""
    found = [(0, StageDir(root / "eval"))]
    found += sorted((int(p.name.split("_")[1]), StageDir(p / "eval")) for p in root.glob("iter_*") if p.is_dir())
    return [(i, stage) for i, stage in found if stage.is_done()]


def write_rise_report(root: Path) -> Path:
    """Write ``root/report.md`` and ``root/accuracy.png`` from the finished stages; return the report's path."""
    evals = _iterations(root)
    lines = ["# RISE run report", ""]
    if not evals:
        lines.append("No evaluation has finished yet.")
    else:
        first = evals[0][1].summary()
        metrics = [k for k in first if "@" in k]
        lines += [f"{first.get('env')} {first.get('split')} split, {first.get('problems')} problems.", "",
                  "| iteration | model | " + " | ".join(metrics) + " | accuracy per turn |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        curves = {}
        for i, stage in evals:
            s = stage.summary()
            turns = ", ".join(f"{100 * a:.1f}" for a in s["accuracy_per_turn"])
            row = " | ".join(f"{100 * s[k]:.1f}" for k in metrics)
            model = Path(s["model"])
            shown = model.relative_to(root.resolve()) if model.is_relative_to(root.resolve()) else s["model"]
            lines.append(f"| {i} | {shown} | {row} | {turns} |")
            curves[f"iteration {i}"] = s["accuracy_per_turn"]
        plot_accuracy(curves, root / "accuracy.png", f"{first.get('env')} {first.get('split')}")
        lines += ["", "Metrics in %. m1@t1: first turn; m1@tT: majority over T sequential turns; p1@tT: any turn "
                  "correct; m5@t1: majority over 5 parallel samples.", "", "![accuracy per turn](accuracy.png)", ""]
    collects = sorted(root.glob("iter_*/collect/DONE.json"))
    if collects:
        lines += ["## Collection", "", "| iteration | problems | solved | solved at turn | after a wrong turn |",
                  "|---|---|---|---|---|"]
        for done in collects:
            s = StageDir(done.parent).summary()
            lines.append(f"| {done.parent.parent.name.split('_')[1]} | {s['problems']} | {s['solved']} | "
                         f"{s['solved_at_turn']} | {s['solved_after_a_wrong_turn']} |")
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
