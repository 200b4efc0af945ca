"""The critic's accuracy against the TextCraft expert: exact plan distance, first off-plan step, agreement."""

from __future__ import annotations

import pytest

from coursecorrect.agent import episode_start
from coursecorrect.envs.textcraft import RecipeBook, TextCraftEnv
from coursecorrect.errors import EnvError
from coursecorrect.eval.critic_accuracy import (
    critic_agreement,
    expert_error_step,
    pair_record,
    plan_distance,
    records_from_trees,
)
from coursecorrect.revision.pairs import Pair
from coursecorrect.search import Node, Tree
from search_doubles import WalkEnv

BOOK = RecipeBook.default()
PURPLE_DYE = [  # the expert's plan
    "get 1 lapis lazuli",
    "get 1 beetroot",
    "craft 1 blue dye using 1 lapis lazuli",
    "craft 1 red dye using 1 beetroot",
    "craft 2 purple dye using 1 blue dye, 1 red dye",
]
WRONG_GET = "get 1 dirt"  # a real base item that no purple-dye plan uses


def task(goal: str) -> int:
    return BOOK.goals.index(f"minecraft:{goal}")


def error_step(goal: str, actions: list[str | None]) -> int | None:
    return expert_error_step(TextCraftEnv(), task(goal), actions)


@pytest.fixture(scope="module")
def env() -> TextCraftEnv:
    return TextCraftEnv()


def test_expert_plans_never_leave_the_optimal_plans(env: TextCraftEnv) -> None:
    for task_id in env.task_ids("test"):
        env.reset(task_id)
        assert expert_error_step(env, task_id, env.expert_actions()) is None
    env.reset(task("purple_dye"))
    assert env.expert_actions() == PURPLE_DYE


def test_plan_distance_is_exact_from_any_inventory() -> None:
    ladder = "minecraft:ladder"  # 7 sticks: two "craft 4 stick using 2 planks"
    assert plan_distance(BOOK, ladder, {}) == 5
    assert plan_distance(BOOK, ladder, {"minecraft:acacia_planks": 4}) == 3
    # Each craft may take its own kind of planks: two sticks crafts from two half stocks, then the ladder.
    assert plan_distance(BOOK, ladder, {"minecraft:acacia_planks": 2, "minecraft:birch_planks": 2}) == 3
    # A single craft cannot mix them: the chest wants 8 planks of one kind.
    chest = "minecraft:chest"
    assert plan_distance(BOOK, chest, {"minecraft:acacia_planks": 4, "minecraft:birch_planks": 4}) == 3
    assert plan_distance(BOOK, chest, {"minecraft:acacia_planks": 4, "minecraft:acacia_logs": 1}) == 2
    assert plan_distance(BOOK, chest, {"minecraft:chest": 1}) == 0
    assert plan_distance(BOOK, chest, {"minecraft:dirt": 64}) == plan_distance(BOOK, chest, {})


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_a_wrong_get_inserted_at_step_k_is_found_at_k(k: int) -> None:
    actions = PURPLE_DYE[: k - 1] + [WRONG_GET] + PURPLE_DYE[k - 1 :]
    assert error_step("purple_dye", actions) == k
    failing_get = PURPLE_DYE[: k - 1] + ["get 1 stick"] + PURPLE_DYE[k - 1 :]  # craftable: "Could not find"
    assert error_step("purple_dye", failing_get) == k


@pytest.mark.parametrize("k", [1, 3, 5])
def test_unread_actions_and_inventory_are_off_plan(k: int) -> None:
    assert error_step("purple_dye", PURPLE_DYE[: k - 1] + [None] + PURPLE_DYE[k - 1 :]) == k
    assert error_step("purple_dye", PURPLE_DYE[: k - 1] + ["inventory"] + PURPLE_DYE[k - 1 :]) == k


def test_equally_short_alternatives_stay_on_plan() -> None:
    swapped_gets = [PURPLE_DYE[1], PURPLE_DYE[0], *PURPLE_DYE[2:]]
    swapped_crafts = [*PURPLE_DYE[:2], PURPLE_DYE[3], PURPLE_DYE[2], PURPLE_DYE[4]]
    interleaved = [PURPLE_DYE[0], PURPLE_DYE[2], PURPLE_DYE[1], PURPLE_DYE[3], PURPLE_DYE[4]]
    other_recipe = ["get 1 poppy", PURPLE_DYE[0], "craft 1 red dye using 1 poppy", *PURPLE_DYE[2:3], PURPLE_DYE[4]]
    for actions in (swapped_gets, swapped_crafts, interleaved, other_recipe):
        assert error_step("purple_dye", actions) is None
    birch = ["get 1 birch logs", "craft 4 birch planks using 1 birch logs", "craft 4 stick using 2 birch planks",
             "craft 1 wooden sword using 1 stick, 2 birch planks"]  # the expert uses acacia planks
    assert error_step("wooden_sword", birch) is None
    plenty = ["get 64 acacia logs", *["craft 4 acacia planks using 1 acacia logs"] * 2,
              "craft 1 chest using 8 acacia planks"]  # more than needed costs nothing
    assert error_step("chest", plenty) is None
    assert error_step("purple_dye", PURPLE_DYE[:3]) is None  # cut off while still on-plan


def test_failed_and_wasteful_steps_are_found() -> None:
    early_craft = PURPLE_DYE[:2] + [PURPLE_DYE[4]] + PURPLE_DYE[2:]  # "Could not find enough items"
    assert error_step("purple_dye", early_craft) == 3
    wrong_count = PURPLE_DYE[:2] + ["craft 1 blue dye using 2 lapis lazuli"] + PURPLE_DYE[2:]  # no such recipe
    assert error_step("purple_dye", wrong_count) == 3
    repeated = PURPLE_DYE[:3] + [PURPLE_DYE[2]] + PURPLE_DYE[3:]  # a second blue dye is not needed
    assert error_step("purple_dye", repeated) == 4
    too_few = ["get 1 acacia logs", "get 1 acacia logs"]  # the chest needs 2: got again, one step lost
    assert error_step("chest", too_few) == 1
    two_kinds = ["get 2 acacia logs", "get 1 birch logs"]  # the chest takes one kind of planks
    assert error_step("chest", two_kinds) == 2
    longer_way = ["get 1 acacia logs", "get 1 coal"]  # planks for the stick: longer than 2 bamboo
    assert error_step("torch", longer_way) == 1


def test_only_textcraft_has_a_plan_distance() -> None:
    with pytest.raises(EnvError, match="no plan distance"):
        expert_error_step(WalkEnv(), 0, ["right"])


def test_agreement_counts() -> None:
    wrong_at_2 = [PURPLE_DYE[0], WRONG_GET, *PURPLE_DYE[1:]]
    fails_at_3 = PURPLE_DYE[:2] + [PURPLE_DYE[4]]
    purple = task("purple_dye")

    def record(actions: list[str], critic: int | None, divergence: int = 0, env: str = "textcraft") -> dict:
        return {"env": env, "task_id": purple, "actions": actions, "critic_flagged": critic, "divergence": divergence}

    records = [
        record(wrong_at_2, 2),  # exact
        record(wrong_at_2, 1),  # early
        record(wrong_at_2, None),  # late, critic none
        record(PURPLE_DYE, None),  # both none
        record(PURPLE_DYE, 3),  # early, expert none
        record(fails_at_3, 5, divergence=3),  # late; the good path shares the failed step
        record(fails_at_3, 1, env="walk"),  # another env's: skipped
    ]
    result = critic_agreement(records, TextCraftEnv)
    assert {k: result[k] for k in ("pairs", "exact", "early", "late", "both_none")} == {
        "pairs": 6, "exact": 1, "early": 2, "late": 2, "both_none": 1}
    assert (result["critic_none"], result["expert_none"], result["expert_in_shared"]) == (2, 2, 1)
    assert result["exact_rate"] == round(1 / 6, 4) and result["early_rate"] == round(2 / 6, 4)
    assert result["mean_offset"] == round((0 - 1 + 2) / 3, 3)
    empty = critic_agreement([], TextCraftEnv)
    assert empty["pairs"] == 0 and empty["exact_rate"] is None and empty["mean_offset"] is None


def _tree() -> tuple[Tree, Node, Node]:
    """The purple-dye expert path (good, nodes 1-5) and a bad branch after two shared steps (6, 7)."""
    env = TextCraftEnv()
    first = env.reset(task("purple_dye"))
    tree = Tree.new("textcraft", task("purple_dye"), episode_start(env.instruction, first))

    def add(parent: Node, node_id: int, action: str | None, score: float | None = None) -> Node:
        node = Node(node_id, f"Thought: t\nAction: {action}", action, f"obs {node_id}", parent.depth + 1)
        if score is not None:
            node.score, node.terminal, node.done = score, True, True
        return parent.add(node)

    node = tree.root
    for node_id, action in enumerate(PURPLE_DYE, start=1):
        node = add(node, node_id, action, 1.0 if node_id == 5 else None)
    good = node
    bad = add(add(tree.root.children[0].children[0], 6, "inventory"), 7, WRONG_GET, 0.0)
    return tree, bad, good


def test_records_from_pairs_and_from_written_data() -> None:
    tree, bad, good = _tree()
    record = pair_record(Pair(tree, bad, good), 4)
    assert record["actions"] == [*PURPLE_DYE[:2], "inventory", WRONG_GET]
    assert record["divergence"] == 2 and record["bad_node"] == 7
    result = critic_agreement([record], TextCraftEnv)
    assert (result["pairs"], result["late"], result["mean_offset"]) == (1, 1, 1)
    metas = [
        {"env": "textcraft", "task_id": tree.task_id, "kind": "revision", "bad_node": 7, "critic_flagged": 3,
         "divergence": 2},
        {"env": "textcraft", "task_id": tree.task_id, "kind": "good", "node": 5},
    ]
    joined = list(records_from_trees(metas, [tree]))
    assert [r["actions"] for r in joined] == [record["actions"]]
    assert critic_agreement(joined, TextCraftEnv)["exact"] == 1
