"""Collection: tree files, resume after a crash, config checks, the CLI commands, and a real tiny LM."""

from __future__ import annotations

import json
import time

import pytest
import typer
from typer.testing import CliRunner

from coursecorrect.cli.search import collect_command, tree_app
from coursecorrect.config import validate_config
from coursecorrect.envs import ENVS, EnvConfig, register_env
from coursecorrect.envs.checks import check_env
from coursecorrect.errors import ConfigError, CourseCorrectError
from coursecorrect.llm.models import TINY_RANDOM
from coursecorrect.llm.transformers_backend import TransformersLLM
from coursecorrect.search import CollectConfig, MCTSConfig, Tree, collect, load_trees, search_trees, tree_path
from search_doubles import Crash, PolicyLLM, WalkEnv, hashed_policy

CHOICES = ["Action: right", "Action: left", "Action: fall", "Thought: hmm", "right"]


@pytest.fixture
def walk_registered():
    register_env("walk", WalkEnv, overwrite=True)
    yield
    ENVS._targets.pop("walk", None)


def _config(**updates) -> CollectConfig:
    data = {
        "env": {"name": "walk", "max_steps": 20},
        "mcts": {"variant": "paper", "iterations": 4, "n_children": 3, "rollouts": 2, "max_depth": 5, "seed": 7},
        "batch_trees": 3,
        **updates,
    }
    return validate_config(CollectConfig, data)


def test_walk_env_keeps_the_env_contract():
    check_env(WalkEnv())


def test_collect_writes_one_tree_file_per_task(walk_registered, tmp_path):
    llm = PolicyLLM(hashed_policy(CHOICES))
    summary = collect(_config(), tmp_path, llm=llm, progress=False)
    files = sorted(p.name for p in (tmp_path / "trees").iterdir())
    assert files == [f"task_{i}.json" for i in range(8)], "the train split of the walk env"
    assert summary["trees"] == summary["trees_this_run"] == 8
    assert summary["nodes"] == sum(t.meta["nodes"] for t in load_trees(tmp_path)) == summary["nodes_this_run"]
    assert summary["backend_calls_this_run"] == len(llm.calls)
    assert sum(summary["leaf_score_histogram"].values()) == summary["terminal_leaves"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "config.yaml").is_file()
    tree = Tree.load(tree_path(tmp_path, 3))
    assert tree.meta["finished"] and tree.meta["model"] == "smollm2-135m-instruct" and tree.env == "walk"
    again = collect(_config(), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES), crash_at=1), progress=False)
    assert again["trees_this_run"] == 0 and again["trees"] == 8, "finished trees are skipped without a call"


def test_resume_after_a_crash_gives_the_same_trees(walk_registered, tmp_path):
    config = _config()
    whole = PolicyLLM(hashed_policy(CHOICES))
    collect(config, tmp_path / "whole", llm=whole, progress=False)
    expected = {t.task_id: t.to_dict() for t in load_trees(tmp_path / "whole")}

    crashing = PolicyLLM(hashed_policy(CHOICES), crash_at=len(whole.calls) // 2)
    with pytest.raises(Crash):
        collect(config, tmp_path / "crash", llm=crashing, progress=False)
    survived = {t.task_id for t in load_trees(tmp_path / "crash")}
    assert 0 < len(survived) < 8, "the crash hit mid-run: some trees written, the ones in flight lost"
    assert not list((tmp_path / "crash" / "trees").glob(".*")), "no partial files"

    resumed = collect(config, tmp_path / "crash", llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    assert resumed["trees_this_run"] == 8 - len(survived)
    assert {t.task_id: t.to_dict() for t in load_trees(tmp_path / "crash")} == expected


def test_collect_limit_and_task_ids(walk_registered, tmp_path):
    summary = collect(_config(limit=2), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    assert summary["trees"] == 2 and [t.task_id for t in load_trees(tmp_path)] == [0, 1]
    summary = collect(_config(task_ids=[9, 1]), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    assert summary["trees"] == 2 and summary["trees_this_run"] == 1
    with pytest.raises(CourseCorrectError, match="unknown task id 42"):
        collect(_config(task_ids=[42]), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)


def test_collect_refuses_a_folder_of_another_config(walk_registered, tmp_path):
    collect(_config(limit=1), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    other = _config(limit=1, mcts={"variant": "released"})
    with pytest.raises(ConfigError, match="different config"):
        collect(other, tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    collect(_config(limit=2, batch_trees=1), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)


def test_collect_config_defaults_and_errors():
    config = CollectConfig()
    assert config.env.max_steps == 20 and config.split == "train" and config.mcts == MCTSConfig()
    with pytest.raises(ConfigError, match="mcts.n_children"):
        validate_config(CollectConfig, {"mcts": {"n_children": 0}})
    with pytest.raises(ConfigError, match="env.name"):
        validate_config(CollectConfig, {"env": {"name": "textcraf"}})


def _cli() -> typer.Typer:
    """The commands mounted as coursecorrect.cli mounts them."""
    app = typer.Typer()
    app.command("collect")(collect_command)
    app.add_typer(tree_app, name="tree")
    return app


def test_tree_cli_show_and_stats(walk_registered, tmp_path):
    collect(_config(limit=2), tmp_path, llm=PolicyLLM(hashed_policy(CHOICES)), progress=False)
    runner = CliRunner()
    shown = runner.invoke(_cli(), ["tree", "show", str(tree_path(tmp_path, 1))])
    assert shown.exit_code == 0, shown.output
    assert "walk task 1" in shown.output and "root" in shown.output and "You fell" in shown.output
    shallow = runner.invoke(_cli(), ["tree", "show", str(tree_path(tmp_path, 1)), "--depth", "1"])
    assert shallow.exit_code == 0 and "more nodes" in shallow.output
    page = tmp_path / "t.html"
    written = runner.invoke(_cli(), ["tree", "show", str(tree_path(tmp_path, 1)), "--html", str(page)])
    assert written.exit_code == 0 and page.read_text().startswith("<!doctype html>")
    stats = runner.invoke(_cli(), ["tree", "stats", str(tmp_path)])
    assert stats.exit_code == 0 and "trees_with_success_and_failure" in stats.output
    missing = runner.invoke(_cli(), ["tree", "show", str(tmp_path / "nope.json")])
    assert isinstance(missing.exception, CourseCorrectError) and "no such tree file" in str(missing.exception)
    empty = runner.invoke(_cli(), ["tree", "stats", str(tmp_path / "trees" / "..")])
    assert empty.exit_code == 0
    bad_ids = runner.invoke(_cli(), ["collect", "--task-ids", "1,x"])
    assert isinstance(bad_ids.exception, CourseCorrectError)


def test_tiny_random_lm_collects_textcraft_trees(tmp_path):
    """The real transformers backend end to end, through the CLI command (small settings)."""
    config_file = tmp_path / "collect.toml"
    config_file.write_text(
        'split = "train"\nlimit = 2\nbatch_trees = 2\n'
        '[env]\nname = "textcraft"\nmax_steps = 20\n'
        '[model]\nmodel = "tiny-random"\nmax_batch_size = 8\n'
        '[mcts]\nvariant = "paper"\niterations = 1\nn_children = 2\nrollouts = 2\nmax_depth = 1\n'
        "max_new_tokens = 8\nmax_context_tokens = 1024\n"
    )
    start = time.perf_counter()
    result = CliRunner().invoke(
        _cli(), ["collect", "--config", str(config_file), "--out", str(tmp_path / "run"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    trees = load_trees(tmp_path / "run")
    assert [t.env for t in trees] == ["textcraft", "textcraft"] and len({t.task_id for t in trees}) == 2
    for tree in trees:
        assert tree.meta["finished"] and tree.meta["completion_tokens"] > 0 and tree.meta["nodes"] > 1
        assert tree.root.visits >= 1 and all(n.depth <= 2 for n in tree.nodes())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["tokens_per_second"] > 0 and summary["model"] == "tiny-random"
    assert time.perf_counter() - start < 120


def test_tiny_random_lm_trees_do_not_depend_on_batch_trees(one_torch_thread):
    """Each request samples with its own seed: a tree is the same whether it shares the backend's calls with
    seven other trees or is searched alone (sampling at temperature 1 on the real transformers backend)."""
    env = EnvConfig(name="textcraft", max_steps=20)
    with env.make() as probe:
        tasks = probe.task_ids("train")[:8]
    config = MCTSConfig(iterations=2, n_children=2, rollouts=2, max_depth=3, max_new_tokens=16, temperature=1.0,
                        max_context_tokens=1024, seed=5)
    llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu")
    together = {t.task_id: t.to_dict() for t in search_trees(env.make, llm, tasks, config, batch_trees=8)}
    alone_llm = TransformersLLM(TINY_RANDOM, model=llm.model, tokenizer=llm.tokenizer, max_batch_size=4)
    alone = {t.task_id: t.to_dict() for t in search_trees(env.make, alone_llm, tasks[::-1], config, batch_trees=1)}
    assert together == alone
    assert len({t["root"]["children"][0]["response"] for t in together.values()}) == 8, "trees really differ"
