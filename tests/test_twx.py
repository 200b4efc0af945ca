"""TextWorld-Express on the real simulator: seed folds, gold paths of every game, failures, snapshots, MCTS."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec

import pytest

from coursecorrect.envs import EnvConfig, make_env
from coursecorrect.envs.checks import check_env
from coursecorrect.envs.twx import GAMES, TextWorldExpressEnv
from coursecorrect.errors import ConfigError, EnvError
from coursecorrect.llm import LLMConfig
from coursecorrect.search import CollectConfig, MCTSConfig, collect, load_trees

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_sim = pytest.mark.skipif(
    shutil.which("java") is None or find_spec("textworld_express") is None,
    reason="needs Java and the textworld-express package",
)
UNKNOWN = "Unknown action: I'm not sure what you mean."


@pytest.fixture(scope="module")
def env() -> Iterator[TextWorldExpressEnv]:
    with TextWorldExpressEnv() as env:
        yield env


def _solve(env: TextWorldExpressEnv, task_id: int):
    """Every action of the expert's plan; only the last may end the episode."""
    env.reset(task_id)
    results = [env.step(action) for action in env.expert_actions()]
    assert not any(r.done for r in results[:-1])
    return results[-1]


def test_ids_follow_the_seed_folds_without_java():
    env = TextWorldExpressEnv(game="coin")
    assert set(GAMES) == {"cookingworld", "twc", "coin", "mapreader", "arithmetic", "sorting", "simonsays",
                          "peckingorder"}
    assert env.num_tasks == 3000 and env.task_ids("test") == list(range(2000, 3000))
    assert [env.seed_of(i) for i in (0, 999, 1000, 2000, 2999)] == [
        ("train", 0), ("train", 999), ("dev", 10000), ("test", 20000), ("test", 20999)]
    assert env._sim is None, "no JVM was started"
    with pytest.raises(EnvError, match="unknown game 'chess'"):
        TextWorldExpressEnv(game="chess")
    with pytest.raises(ConfigError):
        make_env("twx", level=3)


@needs_sim
@pytest.mark.parametrize("game", GAMES)
def test_gold_paths_reach_full_score_in_every_game(game):
    with TextWorldExpressEnv(game=game) as env:
        for task_id in [*env.task_ids("test")[:5], *env.task_ids("train")[:2]]:
            result = _solve(env, task_id)
            assert result.terminated and result.reward == 1.0, (game, task_id)
        check_env(env)


@needs_sim
def test_failure_ends_the_episode_with_reward_zero(env):
    first = env.reset(0)
    assert first.startswith("You are hungry!") and "You are in the kitchen." in first
    for action in ["take knife", "open fridge", "take block of cheese"]:
        partial = env.step(action)
    assert 0 < partial.reward < 1 and not partial.done
    result = env.step("eat block of cheese")
    assert result.terminated and result.reward == 0.0


@needs_sim
def test_bad_actions_get_an_observation(env):
    env.reset(5)
    for action in ["dance wildly", "", "Ω" * 50, "x" * 5000]:
        result = env.step(action)
        assert result.observation == UNKNOWN and not result.done


@needs_sim
def test_snapshot_restore_replays_to_the_same_state(env):
    env.reset(2001)
    plan = env.expert_actions()
    for action in plan[:5]:
        env.step(action)
    snapshot = env.snapshot()
    after = [env.step(action).observation for action in [*plan[5:9], "inventory", "look around"]]
    env.restore(snapshot)
    assert [env.step(action).observation for action in [*plan[5:9], "inventory", "look around"]] == after


@needs_sim
def test_bad_game_params_are_an_env_error():
    with TextWorldExpressEnv(game="coin", game_params="numLocations=99") as env, \
            pytest.raises(EnvError, match="Number of locations"):
        env.reset(0)


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvError, match=r"TextWorld-Express needs Java 17\+.*apt install openjdk-17-jre-headless"):
        TextWorldExpressEnv().reset(0)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "textworld_express", None)
    with pytest.raises(EnvError, match=r"pip install 'coursecorrect\[twx\]'"):
        TextWorldExpressEnv().reset(0)


@needs_sim
def test_close_stops_the_jvm():
    env = make_env("twx")
    env.reset(0)
    process: subprocess.Popen = env.sim._gateway.java_process
    env.close()
    assert process.poll() is not None and env._sim is None


@needs_sim
def test_mcts_collection_with_the_tiny_random_model(tmp_path):
    config = CollectConfig(
        env=EnvConfig(name="twx", max_steps=10, options={"game": "coin"}), model=LLMConfig(model="tiny-random"),
        mcts=MCTSConfig(iterations=2, n_children=2, max_depth=3, max_new_tokens=16, max_context_tokens=1024),
        split="test", limit=2,
    )
    summary = collect(config, tmp_path, progress=False)
    trees = load_trees(tmp_path)
    assert summary["trees"] == 2 and sorted(t.task_id for t in trees) == [2000, 2001]
    assert all(t.env == "twx" and t.meta["finished"] and t.meta["nodes"] > 1 for t in trees)


def test_cli_lists_twx_without_java(tmp_path):
    result = subprocess.run([sys.executable, "-m", "coursecorrect.cli", "env", "list"], capture_output=True,
                            text=True, timeout=120, env={"PATH": str(tmp_path), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert re.search(r"twx\W+3000\W+1000\W+1000\W+replay", result.stdout), result.stdout


@needs_sim
@pytest.mark.slow
@pytest.mark.parametrize("game", GAMES)
def test_gold_paths_solve_the_whole_test_split(game):
    """Every test seed of every game; cookingworld's gold paths run up to 130 actions."""
    with TextWorldExpressEnv(max_steps=1000, game=game) as env:
        unsolved = [i for i in env.task_ids("test") if _solve(env, i).reward < 1.0]
        assert not unsolved
