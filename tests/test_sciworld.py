"""SciWorld on the real ScienceWorld simulator: numbering, gold paths, failures, snapshots, Java checks, MCTS."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec

import pytest

from coursecorrect.envs import EnvConfig, make_env
from coursecorrect.envs.checks import check_env
from coursecorrect.envs.sciworld import TASKS, SciWorldEnv, locate, task_id_of
from coursecorrect.envs.sciworld.env import NO_MATCH
from coursecorrect.errors import EnvError
from coursecorrect.llm import LLMConfig
from coursecorrect.search import CollectConfig, MCTSConfig, collect, load_trees

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_sim = pytest.mark.skipif(
    shutil.which("java") is None or find_spec("scienceworld") is None,
    reason="needs Java and the scienceworld package",
)
# Short gold paths (4-14 actions) over five topics.
QUICK_TASKS = ["find-non-living-thing", "lifespan-longest-lived", "power-component",
               "chemistry-mix-paint-secondary-color", "use-thermometer"]


@pytest.fixture(scope="module")
def env() -> Iterator[SciWorldEnv]:
    with SciWorldEnv(max_steps=100) as env:
        yield env


def _first_test_id(name: str) -> int:
    task = next(t for t in TASKS if t.name == name)
    return task.first_id + task.fold("test")[0]


def _play(env: SciWorldEnv, plan: list[str]):
    """The plan's actions until the episode ends."""
    result = None
    for action in plan:
        result = env.step(action)
        if result.done:
            break
    return result


def test_numbering_and_splits_need_no_java():
    env = SciWorldEnv()
    assert env.num_tasks == 7207 == sum(t.variations for t in TASKS)
    assert [locate(i)[0].name for i in (0, 29, 30)] == ["boil", "boil", "melt"] and locate(29)[1] == 29
    assert locate(4638)[0].name == "identify-life-stages-2" and locate(4639) == (TASKS[23], 0)
    assert TASKS[23].name == "grow-plant" and not TASKS[23].agentgym, "AgentGym's left-out tasks come last"
    assert all(locate(task_id_of(t.name, t.variations - 1)) == (t, t.variations - 1) for t in TASKS)
    splits = {split: env.task_ids(split) for split in env.splits}
    assert {k: len(v) for k, v in splits.items()} == {"train": 2312, "dev": 1156, "test": 1171}
    assert set().union(*splits.values()) == set(range(4639)), "the folds partition AgentGym's ids"
    assert len({locate(i)[0].name for i in splits["test"][:23]}) == 23, "a prefix spreads over the tasks"
    assert all(locate(i)[1] in locate(i)[0].fold("test") for i in splits["test"])
    assert env.task_ids("all") == list(range(7207)) and env._sim is None, "no JVM was started"
    with pytest.raises(EnvError, match="unknown task 'bake'"):
        task_id_of("bake", 0)


@needs_sim
@pytest.mark.parametrize("task", QUICK_TASKS)
def test_gold_path_reaches_full_score(env, task):
    env.reset(_first_test_id(task))
    result = _play(env, env.expert_actions())
    assert result.terminated and result.reward == 1.0 and result.info["score"] == 100


@needs_sim
def test_negative_score_ends_the_episode_as_a_failure(env):
    first = env.reset(task_id_of("boil", 0))
    assert first.startswith("Your task is to boil water.") and "This room is called the hallway." in first
    result = env.step("focus on picture")
    assert result.terminated and result.reward == 0.0 and result.info["score"] < 0


@needs_sim
def test_bad_actions_get_an_observation(env):
    env.reset(task_id_of("boil", 0))
    for action in ["dance wildly", "", "Ω" * 50, "look at", "x" * 5000]:
        result = env.step(action)
        assert result.observation == NO_MATCH and not result.done and result.reward == 0.0


@needs_sim
def test_snapshot_restore_replays_to_the_same_state(env):
    check_env(env, task_id_of("chemistry-mix", 0))
    env.reset(task_id_of("use-thermometer", 3))
    plan = env.expert_actions()
    for action in plan[:4]:
        env.step(action)
    snapshot = env.snapshot()
    after = [env.step(action).observation for action in [*plan[4:7], "look around"]]
    env.restore(snapshot)
    assert env.actions == plan[:4]
    assert [env.step(action).observation for action in [*plan[4:7], "look around"]] == after


@needs_sim
def test_expert_actions_mid_episode_keep_the_episode(env):
    env.reset(task_id_of("find-plant", 2))
    env.step("open door to greenhouse")
    look = env.step("look around").observation
    plan = env.expert_actions()
    assert plan and env.step("look around").observation == look, "the gold run did not reset the episode"


@needs_sim
def test_near_miss_actions_match_a_valid_action():
    with SciWorldEnv(match_valid_actions=True) as env:
        env.reset(task_id_of("boil", 0))
        result = env.step("open door to kitchn")
        assert result.observation == "The door is now open." and result.info["matched_action"] == "open door to kitchen"
        assert env.step("fly to the moon").observation == NO_MATCH, "nothing close: left unmatched"


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    env = SciWorldEnv()
    with pytest.raises(EnvError, match=r"SciWorld needs Java 17\+.*apt install openjdk-17-jre-headless"):
        env.reset(0)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "scienceworld", None)
    with pytest.raises(EnvError, match=r"pip install 'coursecorrect\[sciworld\]'"):
        SciWorldEnv().reset(0)


@needs_sim
def test_close_stops_the_jvm():
    env = make_env("sciworld")
    env.reset(0)
    process: subprocess.Popen = env.sim._gateway.java_process
    env.close()
    assert process.poll() is not None and env._sim is None


@needs_sim
def test_mcts_collection_with_the_tiny_random_model(tmp_path):
    config = CollectConfig(
        env=EnvConfig(name="sciworld", max_steps=10), model=LLMConfig(model="tiny-random"),
        mcts=MCTSConfig(iterations=2, n_children=2, max_depth=3, max_new_tokens=16, max_context_tokens=1024),
        split="test", limit=1,
    )
    start = time.perf_counter()
    summary = collect(config, tmp_path, progress=False)
    (tree,) = load_trees(tmp_path)
    assert tree.env == "sciworld" and tree.task_id == 21 and tree.meta["finished"] and tree.meta["nodes"] > 1
    assert summary["trees"] == 1 and time.perf_counter() - start < 60


def test_cli_lists_sciworld_without_java(tmp_path):
    result = subprocess.run([sys.executable, "-m", "coursecorrect.cli", "env", "list"], capture_output=True,
                            text=True, timeout=120, env={"PATH": str(tmp_path), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert re.search(r"sciworld\W+7207\W+2312\W+1171\W+replay", result.stdout), result.stdout


@needs_sim
@pytest.mark.slow
def test_gold_paths_solve_every_task():
    """One test variation of each of the 30 tasks (some gold paths run past 100 actions)."""
    with SciWorldEnv(max_steps=400) as env:
        for task in TASKS:
            env.reset(_first_test_id(task.name))
            result = _play(env, env.expert_actions())
            assert result.terminated and result.reward == 1.0, task.name
