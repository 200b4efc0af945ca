"""What every command does around its library call: read the config file, put the flags on top, validate,
choose and check the output folder, and print the summary."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from coursecorrect.cli.preflight import output_folder
from coursecorrect.config import Config, apply_overrides, parse_assignments, read_config_file, validate_config
from coursecorrect.console import console, summary_table

C = TypeVar("C", bound=Config)

RUNS = Path("runs")
"""Where output folders go when ``--out`` is not given."""


def load_spec(
    cls: type[C], config: Path | None, overrides: dict[str, Any], name: str, data: dict[str, Any] | None = None
) -> C:
    """``config``'s settings (or ``data`` already read from it) with the flags' ``overrides`` (``None`` values
    left out) on top, validated as ``cls``; errors name the file, or the command ``name``."""
    if data is None:
        data = read_config_file(config) if config else {}
    return validate_config(cls, apply_overrides(data, overrides), source=str(config or name))


def env_options(items: Iterable[str] | None, prefix: str = "env.options") -> dict[str, Any]:
    """``--env-option KEY=VALUE`` flags as overrides of ``PREFIX.KEY``."""
    return parse_assignments(items or (), "--env-option", prefix)


def out_folder(out: Path | None, default: str) -> Path:
    """``--out``, or ``runs/DEFAULT``: checked to be usable as a folder before anything is written."""
    return output_folder(out or RUNS / default)


def print_summary(title: str, summary: dict[str, Any], label: str, where: Path) -> None:
    """The summary table, then where the outputs are."""
    console.print(summary_table(title, summary))
    console.print(f"{label}: {where}")


def print_done(start: float, report: Path) -> None:
    """The last line of a run: its time this session (since ``start``, a ``time.perf_counter()``) and report."""
    console.print(f"[bold]done[/bold] in {time.perf_counter() - start:.0f} s this session; report: {report}")
