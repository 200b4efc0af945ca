"""``compare`` on the tiny random model: shared stages, byte-identical iteration-1 trees, resume, report."""

from __future__ import annotations

import json
import shutil

import pytest

from coursecorrect.config import validate_config
from coursecorrect.data.tree import trees_digest
from coursecorrect.errors import ConfigError
from coursecorrect.pipeline.compare import CompareConfig, method_dir, run_compare
from coursecorrect.pipeline.report import splice_into_markdown
from test_pipeline import TINY

COMPARE = {**TINY, "methods": ["agent-r", "good", "eto", "gold"], "seeds": [0, 1],
           "variants": {}, "dpo": {"max_steps": 1, "batch_size": 2}}


def _stage_times(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("DONE.json")}


def test_methods_share_the_warm_start_first_eval_and_iteration_1_trees_then_resume(tmp_path):
    config = CompareConfig.model_validate(COMPARE)
    report = run_compare(config, tmp_path, progress=False)

    assert (tmp_path / "warm_start" / "DONE.json").is_file() and (tmp_path / "eval" / "DONE.json").is_file()
    for seed in (0, 1):
        shared = tmp_path / f"seed_{seed}" / "iter_1" / "collect"
        digest = trees_digest(shared)
        assert list(shared.rglob("task_*.json"))
        for method in ("agent-r", "good", "eto"):
            run = method_dir(tmp_path, seed, method)
            assert not (run / "warm_start").exists() and not (run / "iter_1" / "collect").exists()
            data = json.loads((run / "iter_1" / "data" / "DONE.json").read_text())
            assert data["trees_sha256"] == digest
            assert (run / "iter_1" / "eval" / "textcraft" / "episodes.jsonl").is_file()
        assert not (method_dir(tmp_path, seed, "gold") / "iter_1" / "collect").exists()  # the control searches none
        assert (method_dir(tmp_path, seed, "eto") / "iter_1" / "data" / "preferences.jsonl").is_file()
    assert "seed: 1" in (method_dir(tmp_path, 1, "agent-r") / "config.yaml").read_text()

    text = report.read_text()
    assert "## Table 2: test success (%)" in text and "| eto |" in text and "| gold |" in text
    assert "## Table 1" in text and "vs agent-r" in text
    assert "| seed 1: gold | 4/4 |" in text and "| seed 0: iteration-1 trees | 1/1 |" in text  # progress
    times = _stage_times(tmp_path)

    run_compare(config, tmp_path, progress=False)  # all done: nothing runs again
    assert _stage_times(tmp_path) == times

    killed = method_dir(tmp_path, 1, "good") / "iter_1" / "eval"
    (killed / "DONE.json").unlink()  # as if killed in the middle of one method's evaluation
    before = report.read_text()
    run_compare(config, tmp_path, progress=False)
    again = _stage_times(tmp_path)
    redone = [stage for stage in times if again[stage] != times[stage]]
    assert redone == [str((killed / "DONE.json").relative_to(tmp_path))]
    numbers = before.split("## Progress")[0]
    assert report.read_text().split("## Progress")[0] == numbers  # greedy evaluation: the same numbers


def test_every_method_builds_its_first_data_before_any_trains_and_a_moved_run_remakes_only_what_it_needs(tmp_path):
    config = CompareConfig.model_validate({**COMPARE, "methods": ["agent-r", "good", "gold"], "seeds": [0],
                                           "iterations": 2})
    run_compare(config, tmp_path, progress=False)
    runs = {m: method_dir(tmp_path, 0, m) for m in config.methods}
    data_1 = [(run / "iter_1" / "data" / "DONE.json").stat().st_mtime_ns for run in runs.values()]
    train_1 = [(run / "iter_1" / "train" / "DONE.json").stat().st_mtime_ns for run in runs.values()]
    assert max(data_1) < min(train_1)  # the shared trees are done with before the first training

    # carried to another machine with what git keeps (no models, no trees), stopped in gold's last evaluation
    # (gold trains a model every iteration; the tiny model's search may yield no data to train on)
    for folder in [*tmp_path.rglob("model"), *tmp_path.rglob("trees")]:
        shutil.rmtree(folder)
    (runs["gold"] / "iter_2" / "eval" / "DONE.json").unlink()
    times = _stage_times(tmp_path)
    run_compare(config, tmp_path, progress=False)
    again = _stage_times(tmp_path)
    redone = sorted(stage for stage in again if again[stage] != times.get(stage))
    gold = str(runs["gold"].relative_to(tmp_path))
    assert redone == sorted(["warm_start/DONE.json", f"{gold}/iter_1/train/DONE.json",
                             f"{gold}/iter_2/train/DONE.json", f"{gold}/iter_2/eval/DONE.json"])


def test_compare_config_checks_methods_seeds_and_variants():
    with pytest.raises(ConfigError, match="unknown method 'sft'"):
        validate_config(CompareConfig, {"methods": ["sft"]}, source="c")
    with pytest.raises(ConfigError, match="each seed once"):
        validate_config(CompareConfig, {"seeds": [1, 1]}, source="c")
    with pytest.raises(ConfigError, match=r"may set only data\.\* and train\.\*"):
        validate_config(CompareConfig, {"methods": ["x"], "variants": {"x": {"preset": "agent-r",
                                                                           "set": {"collect.limit": 3}}}}, source="c")
    config = validate_config(CompareConfig, {"methods": ["agent-r", "eto", "star"], "variants": {
        "star": {"preset": "agent-r", "set": {"data.accumulate": True, "train.start": "initial"}}}}, source="c")
    star = config.method_config("star", seed=2)
    assert star.data.accumulate and star.train.start == "initial" and star.data.mode == "agent-r"
    assert star.collect.mcts.seed == 2 and star.train.seed == 2 and star.dpo is None
    eto = config.method_config("eto", 1)
    assert eto.dpo is not None and eto.dpo.seed == 1 and eto.data.mode == "good"
    assert config.method_config("agent-r", 1).dpo is None


def test_report_fills_a_marked_block_of_a_markdown_file(tmp_path):
    run = tmp_path / "results" / "r"
    run.mkdir(parents=True)
    (run / "report.md").write_text("# Compare report: r\n\n## Table 2\n\n| a |\n\n![p](compare_success.png)\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n<!-- report: {run.as_posix()} -->\nold\n<!-- /report -->\nafter\n")
    splice_into_markdown(readme, run, run / "report.md")
    text = readme.read_text()
    assert "old" not in text and "### Table 2" in text and text.endswith("<!-- /report -->\nafter\n")
    assert "](results/r/compare_success.png)" in text
    readme.write_text("no block here\n")
    with pytest.raises(Exception, match="no block"):
        splice_into_markdown(readme, run, run / "report.md")
