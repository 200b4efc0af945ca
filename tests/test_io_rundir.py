"""Atomic files, JSONL with file:line errors, and the run directory."""

from __future__ import annotations

import pytest

from coursecorrect.envs import EnvConfig
from coursecorrect.errors import ConfigError
from coursecorrect.io import JSONLError, append_jsonl, atomic_write_json, read_jsonl, write_jsonl
from coursecorrect.pipeline import RunDir


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
