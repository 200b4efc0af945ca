"""``compare`` on the tiny random model: shared stages, byte-identical iteration-1 trees, resume, report."""

from __future__ import annotations

import json
import shutil

import pytest

from coursecorrect.config import validate_config
from coursecorrect.data.conversation import Conversation, Message, write_conversations
from coursecorrect.data.tree import trees_digest
from coursecorrect.errors import ConfigError
from coursecorrect.pipeline.compare import CompareConfig, method_dir, run_compare
from coursecorrect.pipeline.compare_folders import method_stages, twin_of
from coursecorrect.pipeline.compare_report import _paired_means, _per_seed, _train_steps
from coursecorrect.pipeline.report import splice_into_markdown
from coursecorrect.revision.build import DATA_FILE
from coursecorrect.rundir import RunDir
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
        # the tiny model's search finds no success: good's data (none) and settings are agent-r's, so good takes
        # agent-r's training and evaluation; eto trains with DPO, so it is no twin
        assert (method_dir(tmp_path, seed, "agent-r") / "iter_1" / "eval" / "textcraft" / "episodes.jsonl").is_file()
        assert (method_dir(tmp_path, seed, "eto") / "iter_1" / "eval" / "textcraft" / "episodes.jsonl").is_file()
        assert not (method_dir(tmp_path, seed, "good") / "iter_1" / "train").exists()
        assert not (method_dir(tmp_path, seed, "good") / "iter_1" / "eval").exists()
        assert not (method_dir(tmp_path, seed, "gold") / "iter_1" / "collect").exists()  # the control searches none
        assert (method_dir(tmp_path, seed, "eto") / "iter_1" / "data" / "preferences.jsonl").is_file()
    assert "seed: 1" in (method_dir(tmp_path, 1, "agent-r") / "config.yaml").read_text()

    text = report.read_text()
    assert "## Table 2: test success (%)" in text and "| eto |" in text and "| gold |" in text
    assert "## Table 1" in text and "vs agent-r" in text
    assert "| seed 1: gold | 4/4 |" in text and "| seed 0: iteration-1 trees | 1/1 |" in text  # progress
    assert "| seed 1: good (3 more taken from agent-r) | 1/1 |" in text  # its own data stage; the rest is agent-r's
    assert "- seed 1: good trains on the same data with the same settings as agent-r in iteration 1" in text
    rows = {line.split(" |")[0]: line.split(" | ", 1)[1] for line in text.split("## Table 3")[0].splitlines()
            if line.startswith(("| agent-r |", "| good |"))}
    assert rows["| agent-r"].rsplit(" | ", 1)[0] == rows["| good"].rsplit(" | ", 1)[0]  # all but "vs agent-r"
    times = _stage_times(tmp_path)

    run_compare(config, tmp_path, progress=False)  # all done: nothing runs again
    assert _stage_times(tmp_path) == times

    killed = method_dir(tmp_path, 1, "eto") / "iter_1" / "eval"
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
    trains = [RunDir(method_dir(tmp_path, 0, m), method_stages(tmp_path, 0, m, config.methods)).path_of("train", 1)
              for m in config.methods]  # good (no data, as agent-r) takes agent-r's training
    train_1 = [(path / "DONE.json").stat().st_mtime_ns for path in trains]
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


def _data_stage(run, iteration, answers, kind):
    """A finished data stage of ``run`` with one example per answer, labelled ``kind``."""
    examples = [Conversation(messages=[Message(role="user", content="Goal: craft stick."),
                                       Message(role="assistant", content=answer, loss=True)], meta={"kind": kind})
                for answer in answers]
    stage = run.stage("data", iteration)
    write_conversations(stage.path / DATA_FILE, examples)
    stage.mark_done({"examples": len(examples)})


def test_a_method_with_the_same_training_data_and_settings_as_an_earlier_one_takes_its_stages(tmp_path):
    methods = ["good", "optimal", "eto", "gold", "fast", "optimal+good"]
    config = CompareConfig.model_validate({**COMPARE, "methods": methods, "iterations": 2, "variants": {
        "fast": {"preset": "good", "set": {"train.learning_rate": 1e-3}}}})
    runs = {m: RunDir.open(method_dir(tmp_path, 0, m), config.method_config(m, 0)) for m in methods}
    for method, run in runs.items():
        _data_stage(run, 1, ["Action: get 1 oak log"], "good" if method == "good" else "optimal")
        _data_stage(run, 2, ["Action: craft 4 stick using 2 planks"], "good")
    _data_stage(runs["optimal+good"], 2, ["Action: get 2 planks"], "good")

    assert twin_of(tmp_path, 0, "optimal", methods) == ("good", [1, 2])  # labels aside, the same examples
    assert twin_of(tmp_path, 0, "optimal+good", methods) == ("good", [1])  # its iteration-2 data differ
    assert twin_of(tmp_path, 0, "good", methods) is None  # nothing before it
    for other in ("eto", "gold", "fast"):  # DPO, the control, another learning rate: other training
        assert twin_of(tmp_path, 0, other, methods) is None

    good = method_dir(tmp_path, 0, "good")
    stages = method_stages(tmp_path, 0, "optimal", methods)
    assert {k: v for k, v in stages.items() if k.startswith("iter_") and k != "iter_1/collect"} == {
        "iter_1/train": good / "iter_1" / "train", "iter_1/eval": good / "iter_1" / "eval",
        "iter_1/revision": good / "iter_1" / "revision", "iter_2/collect": good / "iter_2" / "collect",
        "iter_2/train": good / "iter_2" / "train", "iter_2/eval": good / "iter_2" / "eval",
        "iter_2/revision": good / "iter_2" / "revision",
    }  # no iteration 3
    assert "iter_2/train" not in method_stages(tmp_path, 0, "optimal+good", methods)
    runs["optimal"].stage("eval", 1).mark_done({})  # a stage it ran on its own stays its own
    assert "iter_1/eval" not in method_stages(tmp_path, 0, "optimal", methods)

    _data_stage(runs["optimal"], 1, ["Action: get 1 oak log"], "optimal")  # remade (new DONE time): read again
    assert twin_of(tmp_path, 0, "optimal", methods) == ("good", [1, 2])
    (runs["optimal"].path_of("data", 1) / DATA_FILE).write_text("")
    runs["optimal"].stage("data", 1).mark_done({})
    assert twin_of(tmp_path, 0, "optimal", methods) is None


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


def test_table_1_gives_eto_its_sft_and_dpo_steps_and_other_methods_their_sft_steps():
    eto = [{"steps": 56, "dpo": {"steps": 48}}, {"steps": 52, "dpo": {"steps": 40}}]
    assert _train_steps(eto) == "54 + 44 DPO"
    assert _train_steps([{"steps": 152}, {"steps": 148}]) == "150"
    assert _train_steps([{"steps": 10, "dpo": {"skipped": True, "steps": 0}}]) == "10 + 0 DPO"
    assert _train_steps([{"skipped": "no training data"}]) == "–"


def test_per_seed_table_shows_each_seeds_success_over_the_iterations_it_has_run():
    def tasks(rate: float) -> dict[tuple[str, int], float]:  # 200 tasks, so a rate of 21.5% is exact
        return {("textcraft", k): float(k < 200 * rate) for k in range(200)}

    data = {"seeds": [0, 1, 2], "methods": ["agent-r", "gold"],
            "by_seed": {"agent-r": {0: {i: tasks(r) for i, r in enumerate((0.19, 0.21, 0.19, 0.19))},
                                    1: {0: tasks(0.19), 1: tasks(0.215)}},
                        "gold": {0: {0: tasks(0.19), 1: tasks(0.22)}}}}
    lines = _per_seed(data)
    assert lines[2] == "| method | seed 0 | seed 1 | seed 2 |"
    assert lines[4] == "| agent-r | 19 → 21 → 19 → 19 | 19 → 21.5 | – |"
    assert lines[5] == "| gold | 19 → 22 | – | – |"


def test_a_difference_pairs_only_the_seeds_both_methods_have_run():
    a, b = ("textcraft", 0), ("textcraft", 1)
    by_seed = {"agent-r": {0: {3: {a: 0.0, b: 1.0}}, 1: {3: {a: 1.0, b: 1.0}}},
               "gold": {0: {3: {a: 1.0, b: 1.0}}, 1: {2: {a: 0.0, b: 0.0}}}}
    mine, ref = _paired_means(by_seed, "gold", "agent-r", 3)
    assert mine == {a: 1.0, b: 1.0} and ref == {a: 0.0, b: 1.0}  # seed 0 only: gold has no iteration 3 on seed 1
    assert _paired_means(by_seed, "gold", "agent-r", 2) == ({}, {})
    mine, ref = _paired_means(by_seed, "agent-r", "agent-r", 3)
    assert mine == ref == {a: 0.5, b: 1.0}
