"""The command line, run as a user runs it (a subprocess), including its error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from coursecorrect import __version__
from coursecorrect.cli import app


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coursecorrect.cli", *args], input=stdin, capture_output=True, text=True,
        timeout=120,
    )


def _command_paths(command, prefix=()):
    """Every command path of the CLI: (), ("env",), ("env", "list"), ..."""
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"coursecorrect {__version__}"


@pytest.mark.parametrize("path", list(_command_paths(typer.main.get_command(app))), ids=lambda p: " ".join(p) or "root")
def test_help_on_every_command(path):
    result = run(*path, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_env_list():
    result = run("env", "list")
    assert result.returncode == 0 and "textcraft" in result.stdout and "544" in result.stdout


def test_env_play_session():
    result = run("env", "play", "textcraft", "--task", "12",
                 stdin="get 3 wheat\ninventory\n:solve\ncraft 1 bread using 3 wheat\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Goal: craft bread." in out and "Inventory: [wheat] (3)" in out
    assert "get 3 wheat\ncraft 1 bread using 3 wheat" in out  # the expert's plan
    assert "Episode solved: reward 1 in 3 steps." in out


def test_env_play_ends_on_eof():
    assert run("env", "play", "textcraft", stdin="inventory\n").returncode == 0


def test_env_check_textcraft():
    result = run("env", "check", "textcraft", "--split", "test")
    assert result.returncode == 0 and "solved 100/100" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("env", "play", "textcrft"), "error: env: name: unknown env 'textcrft'. Did you mean 'textcraft'?"),
        (("env", "play", "textcraft", "--task", "9999"), "error: textcraft: unknown task id 9999"),
        (("env", "play", "--config", "/nonexistent.toml"), "error: /nonexistent.toml: no such config file"),
        (("env", "check", "textcraft", "--split", "dev"), "error: textcraft: unknown split 'dev'"),
    ],
)
def test_bad_input_gives_one_readable_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_malformed_config_file(tmp_path):
    path = tmp_path / "env.toml"
    path.write_text("max_steps = 'x'\nfoo = 1\n")
    result = run("env", "play", "--config", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "max_steps: Input should be a valid integer" in result.stderr and "foo: unknown field" in result.stderr
