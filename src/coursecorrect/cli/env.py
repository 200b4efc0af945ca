"""``coursecorrect env``: list, play, check and serve environments."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coursecorrect.cli.common import env_options, load_spec
from coursecorrect.config import MAX_SECONDS, MAX_SIZE, MAX_STEPS
from coursecorrect.console import console
from coursecorrect.envs import ENV_OPTION_HELP, ENVS, EnvConfig
from coursecorrect.errors import CourseCorrectError

env_app = typer.Typer(help="List, play and check environments.", no_args_is_help=True)


def _env_spec(
    name: str | None, config: Path | None, max_steps: int | None, options: list[str] | None
) -> EnvConfig:
    """An env's config from a config file and/or a name; command-line values win over the file's."""
    overrides = {"name": name, "max_steps": max_steps, **env_options(options, prefix="options")}
    return load_spec(EnvConfig, config, overrides, "env")


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
    env = _env_spec(name, config, max_steps, env_option).make()
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
    env_option: Annotated[list[str] | None, typer.Option(help=ENV_OPTION_HELP)] = None,
) -> None:
    """Serve an env over AgentGym's HTTP protocol; play it elsewhere as env 'agentgym:http://HOST:PORT'."""
    from coursecorrect.envs.agentgym.server import create_app, serve

    spec = _env_spec(name, None, max_steps, env_option)
    _check_listen(host, port)
    app = create_app(name, max_envs=max_envs, idle_timeout=idle_timeout, max_steps=max_steps,
                     env_options=spec.options)
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
