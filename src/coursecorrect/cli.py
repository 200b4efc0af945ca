"""The ``coursecorrect`` command line: thin shells over the library's functions."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coursecorrect import __version__
from coursecorrect.config import (
    MAX_SECONDS,
    MAX_SIZE,
    MAX_STEPS,
    apply_overrides,
    parse_assignments,
    read_config_file,
    validate_config,
)
from coursecorrect.console import console, summary_table
from coursecorrect.envs import ENV_OPTION_HELP, ENVS, Env, EnvConfig
from coursecorrect.errors import CourseCorrectError
from coursecorrect.llm import BACKEND_HELP
from coursecorrect.pipeline.cli import compare_command, demo_command, report_command, run_command
from coursecorrect.preflight import check_model, check_tasks, output_folder
from coursecorrect.revision.cli import build_data_command, export_command
from coursecorrect.rise.cli import rise_app
from coursecorrect.search.cli import collect_command, tree_app
from coursecorrect.train.cli import train_command

app = typer.Typer(
    help="Teach language-model agents to recover from their own mistakes (Agent-R, RISE).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
env_app = typer.Typer(help="List, play and check environments.", no_args_is_help=True)
app.add_typer(env_app, name="env")
app.command("collect")(collect_command)
app.add_typer(tree_app, name="tree")
app.command("build-data")(build_data_command)
app.command("train")(train_command)
app.command("export")(export_command)
app.command("run")(run_command)
app.command("demo")(demo_command)
app.command("compare")(compare_command)
app.command("report")(report_command)
app.add_typer(rise_app, name="rise")


def _version(value: bool) -> None:
    if value:
        console.print(f"coursecorrect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """coursecorrect: Agent-R and RISE for open LLM agents."""


def _env_from(name: str | None, config: Path | None, max_steps: int | None, env_options: list[str] | None) -> Env:
    """An env from a config file and/or a name; command-line values win over the file's."""
    data = read_config_file(config) if config else {}
    options = parse_assignments(env_options or (), "--env-option", "options")
    data = apply_overrides(data, {"name": name, "max_steps": max_steps, **options})
    return validate_config(EnvConfig, data, source=str(config or "env")).make()


@env_app.command("list")
def env_list() -> None:
    """List registered environments with their task counts."""
    table = Table("env", "tasks", "train", "test", "snapshots", "about")
    for name in ENVS.names():
        env = ENVS.get(name)()
        with env:
            about = (type(env).__doc__ or "").strip().splitlines()[0]
            if getattr(env, "needs_download", False):  # counting would download the data set first
                table.add_row(name, "?", "?", "?", "copy" if env.supports_snapshot else "replay", about)
                continue
            counts = [str(len(env.task_ids(split))) if split in env.splits else "-" for split in ("train", "test")]
            table.add_row(name, str(env.num_tasks), *counts, "copy" if env.supports_snapshot else "replay", about)
    console.print(table)


PLAY_HELP = "Type an action, or :solve (the expert's plan), :reset, :help, :quit."


@env_app.command("play")
def env_play(
    name: Annotated[str | None, typer.Argument(help="Env name, e.g. textcraft.")] = None,
    task: Annotated[int, typer.Option(help="Task id to play.")] = 0,
    max_steps: Annotated[int | None, typer.Option(help="Actions before the episode is cut.")] = None,
    config: Annotated[Path | None, typer.Option(help="Env config file (.toml/.yaml).")] = None,
    instruction: Annotated[bool, typer.Option(help="Print the env's instruction prompt first.")] = False,
    env_option: Annotated[list[str] | None, typer.Option(help=ENV_OPTION_HELP)] = None,
) -> None:
    """Play an environment by hand: observations are printed, actions read from the keyboard."""
    env = _env_from(name, config, max_steps, env_option)
    with env:
        if instruction:
            console.print(env.instruction, markup=False)
        console.print(f"[bold]{env.name} task {task}[/bold]  ({PLAY_HELP})")
        console.print(env.reset(task), markup=False)
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                console.print()
                return
            if line in (":quit", ":q"):
                return
            if line == ":help":
                console.print(PLAY_HELP)
            elif line == ":reset":
                console.print(env.reset(task), markup=False)
            elif line == ":solve":
                plan = env.expert_actions()
                console.print("\n".join(plan) if plan else "This env has no expert solver.", markup=False)
            else:
                result = env.step(line)
                console.print(result.observation, markup=False)
                if result.done:
                    verdict = "solved" if result.reward > 0 else "step limit reached" if result.truncated else "over"
                    steps = len(env.actions)
                    console.print(f"[bold]Episode {verdict}[/bold]: reward {result.reward:g} in {steps} steps.")
                    return


@env_app.command("check")
def env_check(
    name: Annotated[str, typer.Argument(help="Env name, e.g. textcraft.")],
    split: Annotated[str, typer.Option(help="train, test or all.")] = "all",
) -> None:
    """Run the env's expert on every task of a split and report how many it solves."""
    env = ENVS.get(name)()
    with env:
        solved, failed = 0, []
        for task_id in env.task_ids(split):
            env.reset(task_id)
            plan = env.expert_actions()
            if plan is None:
                raise CourseCorrectError(f"env {name!r} has no expert solver to check with")
            results = []
            for action in plan:  # a plan longer than max_steps is cut where the episode ends
                results.append(env.step(action))
                if results[-1].done:
                    break
            if results and results[-1].reward >= 1:
                solved += 1
            else:
                failed.append(task_id)
        total = solved + len(failed)
        console.print(f"{name} {split}: the expert solved {solved}/{total} tasks.")
        if failed:
            console.print(f"unsolved task ids: {failed[:20]}{' ...' if len(failed) > 20 else ''}")
            raise typer.Exit(1)


@env_app.command("serve")
def env_serve(
    name: Annotated[str, typer.Argument(help="Env name, e.g. textcraft.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 opens the server to the network.")] = "127.0.0.1",
    max_envs: Annotated[
        int, typer.Option(min=1, max=MAX_SIZE, help="Live envs at most; /create answers 503 beyond.")
    ] = 256,
    idle_timeout: Annotated[
        float, typer.Option(min=1, max=MAX_SECONDS, help="Seconds before an unused env is closed.")
    ] = 600.0,
    max_steps: Annotated[
        int, typer.Option(min=1, max=MAX_STEPS, help="Actions per episode before it is truncated.")
    ] = 100,
) -> None:
    """Serve an env over AgentGym's HTTP protocol; play it elsewhere as env 'agentgym:http://HOST:PORT'."""
    from coursecorrect.envs.agentgym.server import create_app, serve

    _check_listen(host, port)
    app = create_app(name, max_envs=max_envs, idle_timeout=idle_timeout, max_steps=max_steps)
    console.print(f"serving {name} on http://{host}:{port} (Ctrl+C stops)")
    serve(app, host=host, port=port)


def _check_listen(host: str, port: int) -> None:
    """Fail in one line when ``host:port`` cannot be listened on (a host that does not resolve, a port in use),
    binding the way uvicorn will."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:  # socket.gaierror too
        raise CourseCorrectError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


@app.command("eval")
def eval_command(
    config: Annotated[Path | None, typer.Option(help="Eval config file (.toml/.yaml); flags override it.")] = None,
    env: Annotated[str | None, typer.Option(help="Env name.  [default: textcraft]")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model alias, folder, hub id, server model.  [default: smollm2-135m-instruct]")
    ] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL, with --backend openai.")] = None,
    split: Annotated[str | None, typer.Option(help="Task split: train, test or all.  [default: test]")] = None,
    limit: Annotated[int | None, typer.Option(help="Play only the first N tasks.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Actions per episode.  [default: 100]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Episodes advanced together.  [default: 8]")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per agent turn.  [default: 128]")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it exists).")] = None,
    revision_ability: Annotated[Path | None, typer.Option(
        "--revision-ability", help="Instead: continue the failed episodes of this eval folder from a random step "
        "(Agent-R's revision-ability protocol)."
    )] = None,
    max_rounds: Annotated[
        int | None, typer.Option(help="With --revision-ability: turns after the cut.  [default: 50]")
    ] = None,
    env_option: Annotated[list[str] | None, typer.Option(help=ENV_OPTION_HELP)] = None,
) -> None:
    """Evaluate a model on an env split: per-episode trajectories (episodes.jsonl) and a summary."""
    from coursecorrect.eval import EvalConfig, evaluate

    data = read_config_file(config) if config else {}
    data = apply_overrides(data, {
        "env.name": env, "env.max_steps": max_steps, "model.model": model, "model.backend": backend,
        "model.base_url": base_url, "split": split, "limit": limit, "agent.batch_size": batch_size,
        "agent.temperature": temperature, "agent.max_new_tokens": max_new_tokens, "agent.seed": seed,
        **parse_assignments(env_option or (), "--env-option", "env.options"),
    })
    if revision_ability is not None:
        _revision_ability(data, revision_ability, max_rounds, out, config)
        return
    spec = validate_config(EvalConfig, data, source=str(config or "eval"))
    out = output_folder(out or Path("runs") / f"eval-{spec.env.name}-{Path(spec.model.model).name}-{spec.split}")
    check_tasks(spec.env, spec.split, spec.task_ids)
    check_model(spec.model)
    summary = evaluate(spec, out)
    console.print(summary_table(f"{spec.model.model} on {spec.env.name} {spec.split}", summary))
    console.print(f"episodes and summary: {out}")


def _revision_ability(data: dict, failed: Path, max_rounds: int | None, out: Path | None, config: Path | None) -> None:
    from coursecorrect.eval.revision_ability import RevisionAbilityConfig, revision_ability

    data = {key: value for key, value in data.items() if key != "split"}
    data = apply_overrides(data, {"failed": str(failed), "max_rounds": max_rounds})
    spec = validate_config(RevisionAbilityConfig, data, source=str(config or "eval"))
    out = output_folder(out or failed.parent / f"{failed.name}-revision-{Path(spec.model.model).name}")
    check_model(spec.model)
    summary = revision_ability(spec, out)
    console.print(summary_table(f"revision ability of {spec.model.model} on {failed}", summary))
    console.print(f"continued episodes and summary: {out}")


def main() -> None:
    """Entry point: user errors become one readable line and exit code 2, never a traceback."""
    try:
        app()
    except CourseCorrectError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
