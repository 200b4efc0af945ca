"""``coursecorrect rise collect | train | eval | run | report``."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from coursecorrect.cli.common import load_spec, out_folder, print_done, print_summary
from coursecorrect.cli.preflight import check_model
from coursecorrect.config import apply_overrides, read_config_file, validate_config
from coursecorrect.console import console, summary_table
from coursecorrect.errors import CourseCorrectError
from coursecorrect.llm import BACKEND_HELP

rise_app = typer.Typer(
    help="RISE: multi-turn 'try again' on math problems, reward-weighted training, turn-wise evaluation.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[Path | None, typer.Option(help="Config file (.toml/.yaml); flags override it.")]
EnvOpt = Annotated[str | None, typer.Option(help="reasoning-gym, gsm8k or math.  [default: reasoning-gym]")]
TaskOpt = Annotated[str | None, typer.Option(help="reasoning-gym task, e.g. chain_sum, basic_arithmetic.")]
DataDirOpt = Annotated[Path | None, typer.Option(help="gsm8k/math: folder of <dataset>_<split>.jsonl files.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model: alias, folder or hub id.  [default: smollm2-135m-instruct]")]
LimitOpt = Annotated[int | None, typer.Option(help="Only the first N problems of the split.")]
TokensOpt = Annotated[int | None, typer.Option(help="Tokens per attempt.  [default: 256]")]
SeedOpt = Annotated[int | None, typer.Option(help="Sampling seed.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]


def _env_overrides(env: str | None, task: str | None, data_dir: Path | None, prefix: str = "env") -> dict:
    return {f"{prefix}.name": env, f"{prefix}.options.task": task,
            f"{prefix}.options.data_dir": str(data_dir) if data_dir else None}


@rise_app.command("collect")
def collect_command(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    model: ModelOpt = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model (for turns with model = 'teacher').")] = None,
    teacher_url: Annotated[
        str | None, typer.Option(help="Teacher's OpenAI-compatible /v1 URL (makes the teacher a server).")
    ] = None,
    samples: Annotated[
        list[int] | None, typer.Option(help="Samples per turn, once per turn: --samples 1 --samples 16.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Task split.  [default: train]")] = None,
    limit: LimitOpt = None,
    max_new_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it exists).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Roll out problems for several turns, keeping each turn's best sample; stops at the first correct turn."""
    from coursecorrect.rise.collect import RiseCollectConfig, collect_rollouts

    data = read_config_file(config) if config else {}
    if samples:  # one turn per value; a turn the config file describes keeps its other settings
        given = data.get("turns") or []
        data["turns"] = [{**(given[i] if i < len(given) else {}), "num_samples": n} for i, n in enumerate(samples)]
    spec = load_spec(RiseCollectConfig, config, {
        **_env_overrides(env, task, data_dir), "model.model": model, "teacher.model": teacher,
        "teacher.backend": "openai" if teacher_url else None, "teacher.base_url": teacher_url, "split": split,
        "limit": limit, "max_new_tokens": max_new_tokens, "seed": seed,
    }, "rise collect", data)
    out = out_folder(out, f"rise-collect-{spec.env.name}-{Path(spec.model.model).name}")
    check_model(spec.model)
    if spec.teacher is not None:
        check_model(spec.teacher)
    summary = collect_rollouts(spec, out, progress=progress)
    print_summary(f"RISE rollouts of {spec.model.model} on {spec.env.name}", summary, "rollouts", out / "rollouts")


@rise_app.command("train")
def train_command(
    rollouts: Annotated[Path, typer.Option(help="Rollouts folder (or JSONL file) from `rise collect`.")],
    config: ConfigOpt = None,
    model: ModelOpt = None,
    criterion: Annotated[
        str | None, typer.Option(help="Turns kept: all, better, best, success.  [default: all]")
    ] = None,
    tau: Annotated[float | None, typer.Option(help="τ of the weights exp(r/τ).  [default: 0.4]")] = None,
    weighting: Annotated[str | None, typer.Option(help="exp, advantage or uniform.  [default: exp]")] = None,
    penalize_unparseable: Annotated[
        bool | None, typer.Option("--penalize-unparseable/--no-penalize-unparseable",
                                  help="Reward -1 for attempts with no readable answer.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data.  [default: 3]")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    strict: Annotated[bool, typer.Option(help="Reject unusable rollout lines instead of skipping them.")] = False,
    build_only: Annotated[bool, typer.Option(help="Write the weighted examples (data.jsonl) and stop.")] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder: data.jsonl, counts.json, model/.")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Reward-weighted regression: one example per kept turn (only its response trained), weight exp(r/τ)."""
    from coursecorrect.data.conversation import write_conversations
    from coursecorrect.io import atomic_write_json
    from coursecorrect.rise.data import RiseDataConfig, rise_examples
    from coursecorrect.rise.parts import read_parts
    from coursecorrect.train.sft import TrainConfig, train_sft

    data = read_config_file(config) if config else {}
    data = apply_overrides(data, {
        "data.criterion": criterion, "data.tau": tau, "data.weighting": weighting,
        "data.penalize_unparseable": penalize_unparseable, "train.model": model, "train.epochs": epochs,
        "train.max_steps": max_steps, "train.learning_rate": learning_rate,
    })
    data_spec = validate_config(RiseDataConfig, data.get("data", {}), source=str(config or "rise train") + " [data]")
    train_spec = validate_config(TrainConfig, data.get("train", {}), source=str(config or "rise train") + " [train]")
    out = out_folder(out, f"rise-train-{Path(train_spec.model).name}")
    with warnings.catch_warnings(record=True) as skipped:  # read_parts warns of the lines it skips
        warnings.simplefilter("always")
        records = read_parts(rollouts, strict=strict)
    examples, counts = rise_examples(records, data_spec)
    if not examples:
        raise CourseCorrectError(
            f"{rollouts}: no turn passes criterion {data_spec.criterion!r}; nothing to train on{_first_skip(skipped)}"
        )
    for warning in skipped:
        typer.echo(f"warning: {warning.message}", err=True)
    write_conversations(out / "data.jsonl", examples)
    atomic_write_json(out / "counts.json", counts)
    console.print(summary_table("RISE examples", counts))
    if build_only:
        console.print(f"examples: {out / 'data.jsonl'}")
        return
    summary = train_sft(train_spec, examples, out, progress=progress)
    print_summary(f"RWR fine-tuning of {train_spec.model}", summary, "model", summary["model_path"])


def _first_skip(caught: list[warnings.WarningMessage]) -> str:
    """`` (skipped N unusable record(s): FILE:LINE: WHY ...)`` from read_parts' warning, in one line; or ``""``."""
    if not caught:
        return ""
    lines = [line.strip() for line in str(caught[0].message).splitlines()]
    return f" ({' '.join(lines[:2])}{' ...' if len(lines) > 2 else ''})"


@rise_app.command("eval")
def eval_command(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    model: ModelOpt = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL, with --backend openai.")] = None,
    split: Annotated[str | None, typer.Option(help="Task split.  [default: test]")] = None,
    limit: LimitOpt = None,
    turns: Annotated[int | None, typer.Option(help="Sequential turns.  [default: 5]")] = None,
    parallel_samples: Annotated[int | None, typer.Option(help="Parallel samples (0 = skip).  [default: 5]")] = None,
    window: Annotated[int | None, typer.Option(help="Keep only the last k attempts in context.")] = None,
    max_new_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it exists).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Turn-wise evaluation: T sequential turns (always told 'incorrect') and parallel samples; m1@t1, m5@t1,
    m1@t5, p1@t5, accuracy per turn and its plot."""
    from coursecorrect.rise.evaluate import RiseEvalConfig, rise_evaluate

    spec = load_spec(RiseEvalConfig, config, {
        **_env_overrides(env, task, data_dir), "model.model": model, "model.backend": backend,
        "model.base_url": base_url, "split": split, "limit": limit, "turns": turns,
        "parallel_samples": parallel_samples, "window": window, "max_new_tokens": max_new_tokens, "seed": seed,
    }, "rise eval")
    out = out_folder(out, f"rise-eval-{spec.env.name}-{Path(spec.model.model).name}-{spec.split}")
    check_model(spec.model)
    summary = rise_evaluate(spec, out, progress=progress)
    title = f"{spec.model.model} on {spec.env.name} {spec.split}, turn-wise"
    print_summary(title, summary, "records, summary and accuracy.png", out)


@rise_app.command("run")
def run_command(
    config: Annotated[Path, typer.Option(help="RISE run config file (.toml/.yaml).")],
    out: Annotated[Path | None, typer.Option(help="Run folder (resumed).  [default: runs/<config>]")] = None,
    iterations: Annotated[int | None, typer.Option(help="Number of RISE iterations.")] = None,
    model: ModelOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Evaluate the starting model, then per iteration collect → weighted data → train → eval, and a report.

    Re-running the same command resumes at the first unfinished stage."""
    from coursecorrect.rise.run import RiseRunConfig, run_rise

    spec = load_spec(RiseRunConfig, config, {"iterations": iterations, "model.model": model}, "rise run")
    out = out_folder(out, config.stem)
    check_model(spec.model)
    start = time.perf_counter()
    print_done(start, run_rise(spec, out, progress=progress))


@rise_app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `coursecorrect rise run`.")],
) -> None:
    """Redraw the report (report.md and accuracy.png) of a RISE run, finished or not."""
    from coursecorrect.rise.report import write_rise_report

    if not (run_dir / "config.yaml").is_file():
        raise CourseCorrectError(f"{run_dir}: not a run folder (no config.yaml)")
    console.print(f"report: {write_rise_report(run_dir)}")
