"""Bad input on the command line: every case ends at once with exit code 2, one readable line and no traceback,
and a command that fails on its arguments leaves its output paths as they were (run in process, through
``coursecorrect.cli.main``, so each case fails before any model loads)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from coursecorrect.agent import episode_start
from coursecorrect.cli import main
from coursecorrect.config import parse_assignments
from coursecorrect.errors import ConfigError
from coursecorrect.search import Tree

RUN = '[model]\nmodel = "tiny-random"\n'
CONVERSATION = (
    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "loss": true}]}\n'
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a file, a folder, an empty model folder, data (good and bad) and configs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "emptymodel").mkdir()
    (tmp_path / "rundir").mkdir()
    (tmp_path / "rundir" / "config.yaml").write_text("{}\n")
    (tmp_path / "good.jsonl").write_text(CONVERSATION)
    (tmp_path / "notjson.jsonl").write_text("not json\n")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"messages": "caf\xe9"}\n')
    Tree.new("walk", 0, episode_start("Walk.", "You are at 0.")).save(tmp_path / "tree.json")
    (tmp_path / "run.toml").write_text(RUN)
    (tmp_path / "inf-limit.toml").write_text(RUN + "[eval]\nlimit = 1e400\n")
    (tmp_path / "huge-steps.toml").write_text(RUN + f"[collect]\nmax_steps = {10**30}\n")
    (tmp_path / "inf-temperature.toml").write_text(RUN + "[eval.agent]\ntemperature = inf\n")
    (tmp_path / "bad-split.toml").write_text(RUN + '[eval]\nsplit = "tst"\n')
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, str, str]:
    """Run ``coursecorrect ARGS`` in process through ``main``; return its exit code, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["coursecorrect", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


CASES = [
    # --out names an existing file (was FileExistsError), --html or --out an existing folder (IsADirectoryError)
    ("run-out-file", "run --config run.toml --out afile", "error: --out afile: it is a file; give a folder"),
    ("run-out-under-file", "run --config run.toml --out afile/run", "error: --out afile/run: afile is a file"),
    ("eval-out-file", "eval --model tiny-random --out afile", "error: --out afile: it is a file"),
    ("demo-out-file", "demo --out afile", "error: --out afile: it is a file"),
    ("train-out-file", "train --data good.jsonl --out afile", "error: --out afile: it is a file"),
    ("collect-out-file", "collect --out afile", "error: --out afile: it is a file"),
    ("build-data-out-file", "build-data --mode gold --out afile", "error: --out afile: it is a file"),
    ("tree-html-dir", "tree show tree.json --html adir", "error: --html adir: it is a folder; give a file name"),
    ("export-json-out-dir", "export good.jsonl --format sharegpt --out adir", "error: --out adir: it is a folder"),
    ("export-hf-out-file", "export good.jsonl --format hf --out afile", "error: --out afile: it is a file"),
    ("report-readme-dir", "report rundir --readme adir", "error: --readme adir: it is a folder"),
    # a model folder that holds no model (was a ValueError from transformers)
    ("eval-empty-model", "eval --model emptymodel --out ev", "error: model folder 'emptymodel' holds no model"),
    ("rise-eval-empty-model", "rise eval --model emptymodel --out ev", "holds no model (no config.json)"),
    # JSONL that is not JSON lines (binary text was UnicodeDecodeError)
    ("train-data-not-json", "train --data notjson.jsonl --out t", "error: notjson.jsonl:1: not valid JSON"),
    ("train-data-not-utf8", "train --data latin1.jsonl --out t", "latin1.jsonl:1: not valid JSON (not UTF-8 text)"),
    ("train-mix-not-json", "train --data good.jsonl --mix-data latin1.jsonl --out t", "latin1.jsonl:1: not valid"),
    ("export-not-json", "export latin1.jsonl --format hf --out x", "latin1.jsonl:1: not valid JSON"),
    (
        "rise-train-not-json",
        "rise train --rollouts latin1.jsonl --build-only --out r",
        "nothing to train on (skipped 1 unusable record(s): latin1.jsonl:1: not valid JSON (not UTF-8 text))",
    ),
    # values that ran on for ever
    ("run-inf-limit", "run --config inf-limit.toml --out r", "eval.limit: Input should be a finite number"),
    ("run-huge-max-steps", "run --config huge-steps.toml --out r", "collect.max_steps: Input should be less than"),
    ("run-inf-temperature", "run --config inf-temperature.toml --out r", "temperature: Input should be a finite"),
    ("run-bad-split", "run --config bad-split.toml --out r", "textcraft: unknown split 'tst'"),
    ("collect-empty-task-id", "collect --task-ids 1,,2", "error: --task-ids must be comma-separated integers"),
    (
        "collect-id-not-in-split",
        "collect --split test --task-ids 31 --limit 1",
        "error: task id 31 is not in textcraft's test split",
    ),
    ("eval-inf-temperature", "eval --temperature inf --out e", "agent.temperature: Input should be a finite number"),
    ("eval-huge-max-steps", f"eval --max-steps {10**30} --out e", "env.max_steps: Input should be less than or equal"),
    ("train-inf-epochs", "train --data good.jsonl --epochs inf --out t", "epochs: Input should be a finite number"),
    ("train-negative-seed", "train --data good.jsonl --seed -1 --out t", "seed: Input should be greater than or"),
    # bad values that were accepted
    ("collect-no-task-ids", ["collect", "--task-ids", ""], "error: --task-ids must be comma-separated integers"),
    ("collect-no-ray-with-workers", "collect --no-ray --ray-workers 2", "error: --no-ray conflicts with --ray-workers"),
    ("eval-bad-split", "eval --split tst --out e", "error: textcraft: unknown split 'tst'"),
    ("eval-bad-env-option", "eval --env-option bogus=1 --out e", "unexpected keyword argument 'bogus'"),
    ("eval-env-option-nan", "eval --env-option n=NaN --out e", "error: --env-option: NaN is not a finite number"),
    ("play-env-option-no-value", "env play textcraft --env-option seed", "error: --env-option takes KEY=VALUE"),
    ("play-env-option-max-steps", "env play textcraft --env-option max_steps=3", "set max_steps as a field"),
    ("serve-bad-host", "env serve textcraft --host not.a.host.invalid", "error: cannot serve on not.a.host.invalid"),
    (
        "serve-bad-env-option",
        "env serve textcraft --port 0 --env-option bogus=1",
        "unexpected keyword argument 'bogus'",
    ),
]


@pytest.mark.parametrize(("args", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_in_one_line_and_writes_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: Any, message: str
) -> None:
    before = _snapshot(workdir)
    code, out, err = run_cli(args.split() if isinstance(args, str) else args, monkeypatch, capsys)
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert _snapshot(workdir) == before


def test_port_out_of_range_is_a_usage_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["env", "serve", "textcraft", "--port", "99999"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in out + err
    assert "Invalid value for '--port'" in err and "65535" in err


@pytest.mark.parametrize(
    ("args", "module", "function"),
    [
        (["eval", "--out", "e"], "coursecorrect.eval", "evaluate"),
        (["collect", "--out", "c"], "coursecorrect.search.collect", "collect"),
    ],
)
def test_env_options_reach_the_env_config(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    module: str,
    function: str,
) -> None:
    seen = []

    def run(spec: Any, out: Path, **_: Any) -> dict:
        seen.append(spec.env.options)
        return {}

    monkeypatch.setattr(importlib.import_module(module), function, run)
    code, _, err = run_cli([*args, "--env-option", "seed=3"], monkeypatch, capsys)
    assert code == 0, err
    assert seen == [{"seed": 3}]


def test_env_options_reach_the_served_env(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = importlib.import_module("coursecorrect.envs.agentgym.server")
    served = []
    monkeypatch.setattr(server, "serve", lambda app, **_: served.append(app.state.pool))
    code, _, err = run_cli(["env", "serve", "textcraft", "--port", "0", "--env-option", "seed=3"], monkeypatch, capsys)
    assert code == 0, err
    env = served[0].factory()
    assert env.seed == 3


def test_env_option_values_are_json_or_text() -> None:
    items = ["num_tasks=544", "instruction=Craft it.", "ids=[1, 2]", "on=true", 'quoted="7"', "empty="]
    assert parse_assignments(items, "--env-option", "env.options") == {
        "env.options.num_tasks": 544,
        "env.options.instruction": "Craft it.",
        "env.options.ids": [1, 2],
        "env.options.on": True,
        "env.options.quoted": "7",
        "env.options.empty": "",
    }
    with pytest.raises(ConfigError, match="1e400 is not a finite number"):
        parse_assignments(["n=1e400"], "--env-option", "env.options")
