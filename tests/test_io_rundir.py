"""Atomic files, JSONL with file:line errors, and the run directory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from coursecorrect.envs import EnvConfig
from coursecorrect.errors import ConfigError
from coursecorrect.io import (
    JSONLError,
    append_jsonl,
    atomic_write_json,
    read_jsonl,
    remove_temporaries,
    remove_temporaries_of,
    temp_dir_beside,
    write_jsonl,
)
from coursecorrect.rundir import RunDir, run_stage


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "x.json"
    atomic_write_json(target, {"a": "ü"})
    atomic_write_json(target, {"a": 2})
    assert target.read_text() == '{\n  "a": 2\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_jsonl_round_trip_and_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [{"i": 0}, {"i": 1}])
    append_jsonl(path, {"i": 2})
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2]
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(JSONLError, match=r"r\.jsonl:2: not valid JSON"):
        list(read_jsonl(path))
    assert [r["i"] for r in read_jsonl(path, skip_bad=True)] == [0, 2]


def test_torn_last_line_from_a_crash_is_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"i": 0}\n{"i": 1')
    assert list(read_jsonl(path)) == [{"i": 0}]


@pytest.mark.parametrize(
    ("content", "after"),
    [
        (b'{"i": 0}\n{"i": 1', b'{"i": 0}\n{"i": 9}\n'),  # torn mid-line: cut away
        (b'{"i": 0}\n{"i": 1}', b'{"i": 0}\n{"i": 1}\n{"i": 9}\n'),  # whole but no newline: finished
        (b'{"i": 0}\n{"s": "\xc3', b'{"i": 0}\n{"i": 9}\n'),  # torn inside a UTF-8 character
        (b'{"i": 1', b'{"i": 9}\n'),  # the only line torn
        (b"", b'{"i": 9}\n'),
        (b'{"i": 0}\n', b'{"i": 0}\n{"i": 9}\n'),
    ],
)
def test_append_repairs_a_tail_torn_by_a_crash(tmp_path, content, after):
    path = tmp_path / "log.jsonl"
    path.write_bytes(content)
    append_jsonl(path, {"i": 9})
    assert path.read_bytes() == after


def test_a_torn_line_longer_than_the_read_back_chunk_is_cut_away(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"i": 0}\n{"s": "' + "x" * 200_000)
    append_jsonl(path, {"i": 1})
    assert list(read_jsonl(path)) == [{"i": 0}, {"i": 1}]


def test_jsonl_strings_may_hold_unicode_line_breaks(tmp_path):
    path = tmp_path / "log.jsonl"
    records = [{"s": "a\u2028b\u2029c\x85d\x0ce"}, {"s": "next"}]
    write_jsonl(path, records[:1])
    append_jsonl(path, records[1])
    assert list(read_jsonl(path)) == records


def test_remove_temporaries_removes_only_ours(tmp_path):
    stage = tmp_path / "stage"
    (stage / "model").mkdir(parents=True)
    (stage / "trees").mkdir()
    ours = [
        tempfile.mkstemp(prefix=".DONE.json.", suffix=".tmp", dir=stage)[1],  # as atomic_write_text makes them
        tempfile.mkstemp(prefix=".t-3.json.", suffix=".tmp", dir=stage / "trees")[1],
        temp_dir_beside(stage / "model"),  # as the trainers save models
        temp_dir_beside(stage / "model", "stale."),
    ]
    (ours[2] / "model.safetensors").write_bytes(b"half")
    user = ["model/config.json", ".DONE.json.tmp", "notes.tmp", ".hidden", ".x.abcdefgh.tmp.bak", ".x.ABCDEFGH.tmp"]
    for name in user:
        (stage / name).write_text("keep")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (stage / ".link.abcdefgh.tmp").symlink_to(elsewhere)
    removed = remove_temporaries(stage)
    assert sorted(map(str, removed)) == sorted(map(str, ours))
    left = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
    assert left == sorted([*user, "model", "trees", ".link.abcdefgh.tmp"])


def test_remove_temporaries_of_a_path_removes_only_its_own(tmp_path):
    target = tmp_path / "model"
    ours = [
        temp_dir_beside(target),
        temp_dir_beside(target, "stale."),
        Path(tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=tmp_path)[1]),
    ]
    others = [
        temp_dir_beside(tmp_path / "model.json"),  # another target's, though it starts with ".model."
        temp_dir_beside(tmp_path / "modelx"),
        Path(tempfile.mkstemp(prefix=".DONE.json.", suffix=".tmp", dir=tmp_path)[1]),
    ]
    (tmp_path / "sub").mkdir()
    nested = temp_dir_beside(tmp_path / "sub" / "model")
    (tmp_path / ".model.abcdefgh.tmp").symlink_to(tmp_path / "sub")
    removed = remove_temporaries_of(target)
    assert sorted(removed) == sorted(ours)
    assert all(p.exists() for p in [*others, nested, tmp_path / ".model.abcdefgh.tmp"])
    assert remove_temporaries_of(tmp_path / "absent" / "model") == []


_KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from coursecorrect.io import atomic_write_json
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
atomic_write_json(Path(sys.argv[1]) / "DONE.json", {"trees": 3})
"""


def test_a_stage_restarted_after_kill_9_cleans_its_temporaries(tmp_path):
    run = RunDir.open(tmp_path / "run")
    stage = run.stage("revision", iteration=1).path
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(stage)], check=False, timeout=60)
    assert killed.returncode == -9
    (leftover,) = stage.iterdir()
    assert leftover.name.startswith(".DONE.json.") and leftover.name.endswith(".tmp")
    temp_dir_beside(stage / "model")
    (stage / "notes.txt").write_text("mine")

    def work(path):
        assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]
        return {"pairs": 1}

    assert run_stage(run, "revision", 1, work)["pairs"] == 1
    assert sorted(p.name for p in stage.iterdir()) == ["DONE.json", "notes.txt"]
    assert json.loads((stage / "DONE.json").read_text())["pairs"] == 1


def test_run_dir_layout_and_resume(tmp_path):
    config = EnvConfig(max_steps=20)
    run = RunDir.open(tmp_path / "run", config)
    collect = run.stage("collect", iteration=1)
    assert collect.path == tmp_path / "run" / "iter_1" / "collect" and not collect.is_done()
    collect.mark_done({"trees": 3})
    reopened = RunDir.open(tmp_path / "run", config)
    assert reopened.stage("collect", iteration=1).summary() == {"trees": 3}
    assert run.stage("eval").path == tmp_path / "run" / "eval"
    with pytest.raises(ConfigError, match="different config"):
        RunDir.open(tmp_path / "run", EnvConfig(max_steps=21))
    with pytest.raises(ValueError):
        run.stage("../escape")


def test_a_run_saved_before_a_field_existed_resumes_with_that_fields_default(tmp_path):
    from coursecorrect.llm import LLMConfig

    config = LLMConfig()
    run = RunDir.open(tmp_path / "run", config)
    saved = run.root / "config.yaml"
    old = "\n".join(line for line in saved.read_text().splitlines() if not line.startswith(("engine:", "  ")))
    saved.write_text(old + "\n")  # as written before LLMConfig had an 'engine' table
    assert "engine" not in saved.read_text()
    RunDir.open(tmp_path / "run", config)
    with pytest.raises(ConfigError, match="different config"):
        RunDir.open(tmp_path / "run", LLMConfig(backend="llama-cpp"))
