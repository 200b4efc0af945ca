"""The Agent-R loop end to end on the tiny random model: stages, resume, report, demo config."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest

from coursecorrect.cli.pipeline import demo_config_text
from coursecorrect.config import validate_config
from coursecorrect.errors import ConfigError
from coursecorrect.pipeline.run import RunConfig, run_pipeline

TINY = {
    "model": {"model": "tiny-random"},
    "iterations": 1,
    "warm_start": {"limit": 2, "max_steps": 1},
    "collect": {"limit": 1, "max_steps": 2, "batch_trees": 1,
                "mcts": {"iterations": 1, "rollouts": 1, "n_children": 2, "max_depth": 2, "max_new_tokens": 8}},
    "data": {"critic_max_new_tokens": 8},
    "train": {"max_steps": 1, "batch_size": 2, "max_length": 1024},
    "eval": {"limit": 2, "max_steps": 2, "agent": {"batch_size": 2, "max_new_tokens": 8}, "revision_max_rounds": 2},
}

STAGES = ["warm_start", "eval", "iter_1/collect", "iter_1/data", "iter_1/train", "iter_1/eval", "iter_1/revision"]


def _done_times(root):
    return {stage: (root / stage / "DONE.json").stat().st_mtime_ns for stage in STAGES}


def test_run_finishes_every_stage_then_resumes_without_redoing_work(tmp_path):
    config = RunConfig.model_validate(TINY)
    report = run_pipeline(config, tmp_path, progress=False)
    assert report == tmp_path / "report.md"
    times = _done_times(tmp_path)
    assert (tmp_path / "warm_start" / "model" / "config.json").is_file()
    assert (tmp_path / "iter_1" / "collect" / "textcraft" / "trees" / "task_31.json").is_file()
    assert (tmp_path / "iter_1" / "eval" / "textcraft" / "episodes.jsonl").is_file()
    text = report.read_text()
    assert "## Results per iteration" in text and "| 0 |" in text and "| 1 |" in text
    assert "## Success with 95% intervals" in text and "| 1 | 0/2 |" in text
    assert (tmp_path / "success.png").stat().st_size > 1000

    run_pipeline(config, tmp_path, progress=False)  # everything is done: nothing runs again
    assert _done_times(tmp_path) == times

    (tmp_path / "iter_1" / "eval" / "DONE.json").unlink()  # as if killed during the last evaluation
    run_pipeline(config, tmp_path, progress=False)
    again = _done_times(tmp_path)
    assert again["iter_1/eval"] != times["iter_1/eval"]
    unchanged = [stage for stage in STAGES if stage != "iter_1/eval"]
    assert [again[s] for s in unchanged] == [times[s] for s in unchanged]

    # carried to another machine with what git keeps: no models, no trees
    shutil.rmtree(tmp_path / "warm_start" / "model")
    shutil.rmtree(tmp_path / "iter_1" / "collect" / "textcraft" / "trees")
    run_pipeline(config, tmp_path, progress=False)  # every stage is done: no model is needed, none is remade
    assert _done_times(tmp_path) == again and not (tmp_path / "warm_start" / "model").exists()

    (tmp_path / "iter_1" / "eval" / "DONE.json").unlink()  # ... and stopped during the last evaluation
    run_pipeline(config, tmp_path, progress=False)
    moved = _done_times(tmp_path)
    assert (tmp_path / "warm_start" / "model" / "config.json").is_file()  # the evaluation needs it
    remade = [stage for stage in STAGES if moved[stage] != again[stage]]
    # the tiny model's trees hold no pair, so iteration 1 trained nothing and evaluates the warm start's model;
    # its data is built, so the trees are not needed (tests/test_compare.py remakes trained models)
    assert remade == ["warm_start", "iter_1/eval"]


def test_run_refuses_a_folder_started_with_another_config(tmp_path):
    (tmp_path / "config.yaml").write_text("iterations: 7\n")
    with pytest.raises(ConfigError, match="different config"):
        run_pipeline(RunConfig.model_validate(TINY), tmp_path, progress=False)


def test_run_config_rejects_a_server_backend_and_duplicate_envs():
    with pytest.raises(ConfigError, match="backend 'transformers'"):
        validate_config(RunConfig, {"model": {"backend": "openai"}}, source="run")
    with pytest.raises(ConfigError, match="each env once"):
        validate_config(RunConfig, {"envs": [{"name": "textcraft"}, {"name": "textcraft"}]}, source="run")


def test_demo_config_is_a_valid_run_config():
    config = RunConfig.model_validate(tomllib.loads(demo_config_text()))
    assert config.model.model == "smollm2-135m-instruct" and config.warm_start.enabled


def test_cli_run_and_report_errors_are_one_line(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_text("iterations = 'many'\n")
    for args in (["run", "--config", str(bad)], ["report", str(tmp_path)]):
        result = subprocess.run([sys.executable, "-m", "coursecorrect.cli", *args], capture_output=True, text=True,
                                timeout=300, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().startswith("error: ") and "Traceback" not in result.stderr
