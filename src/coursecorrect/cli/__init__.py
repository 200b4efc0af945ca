"""The ``coursecorrect`` command line: thin shells over the library's functions, one module per command group.

Each command reads its config file, puts its flags on top, validates (``cli.common``), checks its arguments and
output folder before anything is written (``cli.preflight``), calls one library function and prints its
summary. User errors (``CourseCorrectError``) become one line and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coursecorrect import __version__
from coursecorrect.cli.env import env_app
from coursecorrect.cli.eval import eval_command
from coursecorrect.cli.pipeline import compare_command, demo_command, report_command, run_command
from coursecorrect.cli.revision import build_data_command, export_command
from coursecorrect.cli.rise import rise_app
from coursecorrect.cli.search import collect_command, tree_app
from coursecorrect.cli.train import train_command
from coursecorrect.console import console
from coursecorrect.errors import CourseCorrectError

app = typer.Typer(
    help="Teach language-model agents to recover from their own mistakes (Agent-R, RISE).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
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
app.command("eval")(eval_command)
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




def main() -> None:
    """Entry point: user errors become one readable line and exit code 2, never a traceback."""
    try:
        app()
    except CourseCorrectError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
