"""``coursecorrect run | demo | compare | report``: the Agent-R loop, its baselines, and their reports."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from coursecorrect.cli.common import RUNS, load_spec, print_done
from coursecorrect.cli.preflight import check_model, check_tasks, output_file, output_folder
from coursecorrect.console import console
from coursecorrect.errors import CourseCorrectError

if TYPE_CHECKING:
    from coursecorrect.pipeline.run import RunConfig

DEMO_CONFIG = "demo.toml"


def demo_config_text() -> str:
    """The bundled demo config (also a commented example of every run setting that matters)."""
    return files("coursecorrect.pipeline").joinpath(DEMO_CONFIG).read_text(encoding="utf-8")


def _run(spec: RunConfig, out: Path, progress: bool) -> None:
    from coursecorrect.pipeline.run import run_pipeline

    _check_run(spec, out)
    start = time.perf_counter()
    report = run_pipeline(spec, out, progress=progress)
    console.print(success_table(out))
    print_done(start, report)


def _check_run(spec: RunConfig, out: Path) -> None:
    """The run's folder, starting model, envs, splits and task ids, checked before anything is written."""
    output_folder(out)
    check_model(spec.model)
    for env in spec.envs:
        for stage in (spec.warm_start, spec.collect, spec.eval):
            check_tasks(env, stage.split, stage.task_ids)


def success_table(out: Path) -> Table:
    """The run's test success per iteration, with 95% intervals and the change from iteration 0."""
    from coursecorrect.eval.intervals import describe_difference
    from coursecorrect.pipeline.report import format_percent, in_points, interval_rows
    from coursecorrect.rundir import RunDir

    table = Table(title="Test success (95% bootstrap intervals over tasks; change paired by task)")
    for column in ("iteration", "solved", "success %", "vs iteration 0 (points)"):
        table.add_column(column)
    for i, solved, n, interval, diff in interval_rows(RunDir(out)):
        change = describe_difference(in_points(diff), digits=1) if diff is not None else "–"
        table.add_row(str(i), f"{solved}/{n}", format_percent(interval), change)
    return table


def run_command(
    config: Annotated[Path, typer.Option(help="Run config file (.toml/.yaml).")],
    out: Annotated[Path | None, typer.Option(help="Run folder (resumed).  [default: runs/<config>]")] = None,
    iterations: Annotated[int | None, typer.Option(help="Number of Agent-R iterations.")] = None,
    model: Annotated[str | None, typer.Option(help="Starting model: alias, folder or hub id.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run the Agent-R loop: warm start, then per iteration collect → build-data → train → eval, and a report.

    Re-running the same command resumes at the first unfinished stage."""
    from coursecorrect.pipeline.run import RunConfig

    spec = load_spec(RunConfig, config, {"iterations": iterations, "model.model": model}, "run")
    _run(spec, out or RUNS / config.stem, progress)


def demo_command(
    out: Annotated[Path, typer.Option(help="Run folder (resumed if it exists).")] = Path("runs/demo"),
    print_config: Annotated[bool, typer.Option(help="Print the demo's run config and exit.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The Agent-R loop on SmolLM2-135M-Instruct and TextCraft, sized for a laptop (about 11 minutes on 2 cores).

    Copy its config (--print-config) to start your own run with `coursecorrect run --config`."""
    text = demo_config_text()
    if print_config:
        typer.echo(text)
        return
    import tomllib

    from coursecorrect.pipeline.run import RunConfig

    _run(load_spec(RunConfig, None, {}, "demo", tomllib.loads(text)), out, progress)


def compare_command(
    config: Annotated[Path, typer.Option(help="Compare config file (.toml/.yaml): a run config plus methods, seeds.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed).  [default: runs/<config>]")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run Agent-R and its baselines (ETO, direct revision, good, optimal, ...) from one starting model over
    several seeds, sharing the warm start, the first evaluation and iteration 1's trees; report with intervals.

    Re-running the same command resumes at the first unfinished stage."""
    from coursecorrect.pipeline.compare import CompareConfig, run_compare

    spec = load_spec(CompareConfig, config, {}, "compare")
    out = out or RUNS / config.stem
    _check_run(spec, out)
    start = time.perf_counter()
    print_done(start, run_compare(spec, out, progress=progress))


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A folder made by `coursecorrect run`, `demo` or `compare`.")],
    readme: Annotated[
        Path | None,
        typer.Option(help="Also put the report's tables into this markdown file, between the lines "
                     "'<!-- report: RUN_DIR -->' and '<!-- /report -->'."),
    ] = None,
) -> None:
    """Redraw the report (report.md and plots) of a run or a comparison, finished or not."""
    from coursecorrect.pipeline.compare_report import is_compare_folder, write_compare_report
    from coursecorrect.pipeline.report import splice_into_markdown, write_report

    if not (run_dir / "config.yaml").is_file():
        raise CourseCorrectError(f"{run_dir}: not a run folder (no config.yaml)")
    if readme is not None:
        output_file(readme, "--readme")
    report = write_compare_report(run_dir) if is_compare_folder(run_dir) else write_report(run_dir)
    console.print(f"report: {report}")
    if readme is not None:
        splice_into_markdown(readme, run_dir, report)
        console.print(f"updated: {readme}")
