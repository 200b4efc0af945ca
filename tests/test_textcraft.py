"""TextCraft: data, goals, every action and failure observation, snapshots, the expert, bad input."""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coursecorrect.envs.textcraft import RecipeBook, TextCraftEnv
from coursecorrect.envs.textcraft.convert import convert_recipe_dir
from coursecorrect.envs.textcraft.solver import _choices, plan_cost, solve
from coursecorrect.errors import EnvError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "textcraft"
STICK = 0  # any task will do for action tests; the goal does not matter until it is crafted


@pytest.fixture
def env() -> TextCraftEnv:
    env = TextCraftEnv()
    env.reset(STICK)
    return env


def obs(env: TextCraftEnv, action: str) -> str:
    return env.step(action).observation


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/textcraft beside the checkout")
def test_shipped_data_is_the_conversion_of_the_recipe_files():
    import json

    shipped = json.loads(_data_file().read_text())
    assert shipped == json.loads(json.dumps(convert_recipe_dir(SHARED / "minecraft-recipes")))
    splits = json.loads((SHARED / "splits.json").read_text())
    env = TextCraftEnv()
    assert env.task_ids("train") == splits["train"] and env.task_ids("test") == splits["test"]


def _data_file() -> Path:
    import coursecorrect.envs.textcraft as package

    return Path(package.__file__).parent / "data" / "recipes.json"


def test_goal_list_matches_agentgym():
    book = RecipeBook.default()
    assert len(book.goals) == 544
    assert collections.Counter(book.depth[g] for g in book.goals) == {1: 125, 2: 291, 3: 117, 4: 11}
    depths = [book.depth[g] for g in book.goals]
    assert depths == sorted(depths)
    assert TextCraftEnv().num_tasks == 544
    assert len(TextCraftEnv().task_ids("test")) == 100


def test_initial_observation_format():
    env = TextCraftEnv()
    first = env.reset(12)
    head, goal = first.split("\n\nGoal: ")
    assert head.startswith("Crafting commands:\n") and goal == f"craft {env.goal.split(':')[1].replace('_', ' ')}."
    lines = head.splitlines()[1:]
    book = env.book
    tree = {r.command for r in book.recipe_tree(env.goal)}
    assert tree <= set(lines), "every recipe of the goal's tree is listed"
    assert len(lines) - len(tree) <= 10, "at most ten distractors"
    assert all(line.startswith("craft ") and " using " in line for line in lines)


def test_get_craft_inventory(env):
    assert obs(env, "inventory") == "Inventory: You are not carrying anything."
    assert obs(env, "get 2 oak logs") == "Got 2 oak logs"
    assert obs(env, "craft 4 oak planks using 1 oak logs") == "Crafted 4 minecraft:oak_planks"
    assert obs(env, "craft 4 stick using 2 oak planks") == "Crafted 4 minecraft:stick"
    assert obs(env, "inventory") == "Inventory: [oak logs] (1) [oak planks] (2) [stick] (4) "


def test_generic_ingredient_accepts_any_member(env):
    obs(env, "get 1 birch logs")
    obs(env, "craft 4 birch planks using 1 birch logs")
    assert obs(env, "craft 4 stick using 2 birch planks") == "Crafted 4 minecraft:stick"
    assert obs(env, "craft 4 stick using 2 planks") == "Could not find enough items to craft minecraft:stick"


def test_exact_input_counts_and_ignored_output_count(env):
    obs(env, "get 2 oak logs")
    obs(env, "craft 4 oak planks using 2 oak logs")  # the recipe takes exactly 1
    assert env.inventory == {"minecraft:oak_logs": 2}
    obs(env, "craft 4 oak planks using 1 oak logs")
    assert obs(env, "craft 4 stick using 3 oak planks") == "Could not find a valid recipe for minecraft:stick"
    assert env.inventory == {"minecraft:oak_logs": 1, "minecraft:oak_planks": 4}, "a failed craft takes nothing"
    assert obs(env, "craft 99 stick using 2 oak planks") == "Crafted 4 minecraft:stick"


def test_failure_observations(env):
    assert obs(env, "get 1 stick") == "Could not find stick", "craftable items cannot be fetched"
    assert obs(env, "get 1 unobtainium") == "Could not find unobtainium"
    assert obs(env, "get 1 planks") == "Could not find planks", "generic tags cannot be fetched"
    assert obs(env, "craft 4 stick using 2 oak planks") == "Could not find enough items to craft minecraft:stick"
    assert obs(env, "craft 4 stick using planks") == "Wrong item format: planks"
    assert obs(env, "jump") == "Could not execute jump"
    obs(env, "get 1 oak logs")
    assert obs(env, "craft 1 unobtainium using 1 oak logs") == "Could not find a valid recipe for minecraft:unobtainium"
    listed_twice = "craft 1 stick using 1 oak logs, 1 oak logs"
    assert obs(env, listed_twice) == "Could not find enough items to craft minecraft:stick", "counts add up"
    obs(env, "get 1 oak logs")
    assert obs(env, listed_twice) == "Could not find a valid recipe for minecraft:stick"


def test_reward_and_termination_on_goal():
    env = TextCraftEnv()
    env.reset(12)
    assert env.goal == "minecraft:bread"
    assert env.step("get 3 wheat").reward == 0
    result = env.step("craft 1 bread using 3 wheat")
    assert (result.reward, result.terminated, result.truncated) == (1.0, True, False)
    with pytest.raises(EnvError, match="over"):
        env.step("inventory")


def test_step_limit_truncates():
    env = TextCraftEnv(max_steps=3)
    env.reset(5)
    assert not env.step("inventory").done
    assert not env.step("inventory").done
    last = env.step("inventory")
    assert last.truncated and not last.terminated and last.reward == 0


def test_snapshot_restore_round_trip(env):
    obs(env, "get 3 oak logs")
    obs(env, "craft 4 oak planks using 1 oak logs")
    snap = env.snapshot()
    before = obs(env, "inventory")
    obs(env, "craft 4 stick using 2 oak planks")
    obs(env, "get 5 wheat")
    env.restore(snap)
    assert env.actions == ["get 3 oak logs", "craft 4 oak planks using 1 oak logs", "inventory"][:2]
    assert obs(env, "inventory") == before
    other = TextCraftEnv()
    other.reset(300)
    other.restore(snap)  # a snapshot moves across env instances and tasks
    assert other.goal == env.goal and other.observation == env.observation
    assert other.inventory == {"minecraft:oak_logs": 2, "minecraft:oak_planks": 4}


def test_expert_solves_every_goal_in_the_env():
    env = TextCraftEnv()
    for task_id in range(env.num_tasks):
        env.reset(task_id)
        plan = env.expert_actions()
        results = [env.step(action) for action in plan]
        assert results[-1].reward == 1 and results[-1].terminated, (task_id, env.goal, plan)
        assert all(r.reward == 0 and not r.done for r in results[:-1])


@pytest.mark.parametrize("goal", ["minecraft:bread", "minecraft:stick", "minecraft:crafting_table",
                                  "minecraft:chest", "minecraft:wooden_axe", "minecraft:painting"])
def test_expert_plan_is_shortest_over_all_choices(goal):
    book = RecipeBook.default()
    costs = [plan_cost(choice, goal) for choice in _choices(book, (goal,), {})]
    assert len(solve(book, goal)) == min(costs)


def test_expert_merges_shared_ingredients():
    """A chest needs 8 planks: two crafts of 4 from one kind of log, fetched once."""
    plan = solve(RecipeBook.default(), "minecraft:chest")
    assert len(plan) == 4 and plan[0].startswith("get 2 ") and plan.count(plan[1]) == 2


@pytest.mark.parametrize(
    "action",
    ["", " ", "\n", "获取 1 木头", "craft 🪵 using 💎", "get 1 " + "x" * 100_000, "craft " + "y" * 100_000,
     "get " + "9" * 10_000 + " oak logs", "craft 1 stick using " + "9" * 10_000 + " oak planks", "\x00\x1b[2J",
     "craft 1 stick using ,,,", "get -1 oak logs"],
)
def test_bad_actions_never_crash(env, action):
    result = env.step(action)
    assert isinstance(result.observation, str) and result.observation
    assert len(result.observation) < 500, "huge actions are not echoed back in full"
    assert result.reward == 0 and not result.terminated


@pytest.mark.parametrize("task_id", [-1, 544, 10**9, "3", 2.0, True, None])
def test_unknown_task_ids(task_id):
    with pytest.raises(EnvError, match="unknown task id"):
        TextCraftEnv().reset(task_id)


def test_unknown_split():
    with pytest.raises(EnvError, match="unknown split 'dev'"):
        TextCraftEnv().task_ids("dev")


def _observations_in_subprocess(hash_seed: str) -> str:
    code = (
        "from coursecorrect.envs.textcraft import TextCraftEnv\n"
        "env = TextCraftEnv()\n"
        "print('\\n'.join(env.reset(k) for k in (0, 12, 140, 300, 543)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_initial_observation_is_deterministic_across_processes():
    digests = {hashlib.sha256(_observations_in_subprocess(s).encode()).hexdigest() for s in ("0", "1", "4242")}
    assert len(digests) == 1
    env = TextCraftEnv()
    assert _observations_in_subprocess("7").rstrip("\n") == "\n".join(env.reset(k) for k in (0, 12, 140, 300, 543))


def test_seed_changes_distractors_only():
    a, b = TextCraftEnv(seed=1), TextCraftEnv(seed=2)
    first_a, first_b = a.reset(400), b.reset(400)
    assert a.goal == b.goal
    tree = {r.command for r in a.book.recipe_tree(a.goal)}
    assert tree <= set(first_a.splitlines()) and tree <= set(first_b.splitlines())
