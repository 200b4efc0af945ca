"""How well a critic finds the first wrong step of a bad path, measured against the TextCraft expert.

The expert's answer is :func:`expert_error_step`: the first step of the bad path that does not bring the task
one action closer to done, by the exact plan distance of :func:`plan_distance` (the fewest actions that still
finish the task from a state). :func:`critic_agreement` compares it with the step the critic named
(``critic_flagged`` of the revision data, before the clamp) over many pairs.

From the data-building stage, with the pairs and the critic's answers at hand::

    records = [pair_record(pair, found.flagged) for pair, found in zip(pairs, transitions)]
    critic_agreement(records, TextCraftEnv)

From written data, :func:`records_from_trees` joins the revision conversations' meta with the trees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from itertools import product
from statistics import mean
from typing import TYPE_CHECKING, Any

from coursecorrect.envs.base import Env
from coursecorrect.envs.textcraft.env import TextCraftEnv
from coursecorrect.envs.textcraft.recipes import RecipeBook
from coursecorrect.envs.textcraft.solver import solve
from coursecorrect.errors import EnvError

if TYPE_CHECKING:  # only annotations: build.py may import this module without an import cycle
    from coursecorrect.data.tree import Tree
    from coursecorrect.revision.pairs import Pair

Variant = tuple[int, tuple[tuple[str, int], ...]]  # (output count, concrete inputs with counts)


@cache
def _graph(book: RecipeBook, goal: str) -> tuple[tuple[str, ...], dict[str, tuple[Variant, ...]]]:
    """The concrete items that can go into ``goal`` (consumers before producers) and each item's craft
    variants: every recipe with every choice of member for each generic input (identical variants merged)."""
    members: dict[str, list[str]] = {}
    for item, tag in sorted(book.item_tag.items()):
        if book.by_item.get(item) or item in book.items:  # obtainable members, as the solver's
            members.setdefault(tag, []).append(item)
    variants: dict[str, tuple[Variant, ...]] = {}
    order: list[str] = []

    def visit(item: str) -> None:
        if item in variants:
            return
        found: dict[Variant, None] = {}
        for recipe in book.by_item.get(item, []):
            slots = [members.get(i.name, []) if i.is_tag else [i.name] for i in recipe.inputs]
            for chosen in product(*slots):
                needed: dict[str, int] = {}
                for name, ingredient in zip(chosen, recipe.inputs, strict=True):
                    needed[name] = needed.get(name, 0) + ingredient.count
                found[(recipe.count, tuple(sorted(needed.items())))] = None
        variants[item] = tuple(found)
        for _, needed in variants[item]:
            for name, _ in needed:
                visit(name)
        order.append(item)

    visit(goal)  # the recipe graph is acyclic (convert.py drops recipes that would close a cycle)
    return tuple(reversed(order)), variants


def _coverings(variants: Sequence[Variant], short: int) -> list[tuple[Variant, ...]]:
    """Every multiset of crafts (variants, in index order) that makes at least ``short`` items and needs
    each of its crafts to do so; fewest crafts first."""
    out: list[tuple[Variant, ...]] = []

    def extend(start: int, chosen: tuple[Variant, ...], made: int) -> None:
        if made >= short:
            if made - min(v[0] for v in chosen) < short:
                out.append(chosen)
            return
        for index in range(start, len(variants)):
            extend(index, (*chosen, variants[index]), made + variants[index][0])

    extend(0, (), 0)
    return sorted(out, key=len)


@lru_cache(maxsize=65536)
def _distance(book: RecipeBook, goal: str, inventory: tuple[tuple[str, int], ...]) -> int:
    order, variants = _graph(book, goal)
    have = dict(inventory)
    if have.get(goal, 0) > 0:
        return 0
    best = len(solve(book, goal))  # reachable from any inventory: having more never blocks an action
    demand = dict.fromkeys(order, 0)
    demand[goal] = 1

    def visit(index: int, cost: int) -> None:
        nonlocal best
        # Every later item still short costs at least one action of its own (its get, or a craft of it).
        if cost + sum(demand[item] > have.get(item, 0) for item in order[index:]) >= best:
            return
        if index == len(order):
            best = cost
            return
        item = order[index]
        short = demand[item] - have.get(item, 0)
        if short <= 0:
            visit(index + 1, cost)
        elif not variants[item]:
            if item in book.items:  # a base item: one get of any amount
                visit(index + 1, cost + 1)
        else:
            for crafts in _coverings(variants[item], short):
                for _, needed in crafts:
                    for name, count in needed:
                        demand[name] += count
                visit(index + 1, cost + len(crafts))
                for _, needed in crafts:
                    for name, count in needed:
                        demand[name] -= count

    visit(0, 0)
    return best


def plan_distance(book: RecipeBook, goal: str, inventory: Mapping[str, int]) -> int:
    """The fewest TextCraft actions that obtain ``goal`` from ``inventory`` (0 if it is held).

    Exact: it minimises over every way to make each item (any recipe of the book, a separate choice for
    every craft, any member of a generic input such as ``planks`` for every craft), using what the
    inventory holds first. Gets come first in some shortest plan (extra items never block an action), one
    get per base item that is short, and since the recipe graph is acyclic a set of crafts can be ordered
    whenever every item is made or held at least as often as it is used.
    """
    order, _ = _graph(book, goal)
    relevant = set(order)
    held = tuple(sorted((item, count) for item, count in inventory.items() if item in relevant and count > 0))
    return _distance(book, goal, held)


def _state_distance(env: Env) -> int:
    if not isinstance(env, TextCraftEnv):
        raise EnvError(f"{env.name}: no plan distance (only TextCraft has one)")
    return plan_distance(env.book, env.goal, env.inventory)  # 0 once solved: the goal is held


def expert_error_step(env: Env, task_id: int, actions: Sequence[str | None]) -> int | None:
    """The 1-based step at which ``actions`` first leave every shortest expert plan, or None if they never do.

    With ``d(s)`` the fewest actions that finish the task from state ``s`` (:func:`plan_distance`), step t,
    from ``s`` to ``s'``, is on a shortest plan iff ``d(s') == d(s) - 1``: some shortest plan from ``s``
    starts with it. No action lowers ``d`` by more than one, so while every step does, the path so far is
    the start of a shortest plan from the task's start, and after the first step that does not (``d`` stays
    or grows) no shortest plan fits the path any more.

    "Every expert plan" means every shortest plan, not the one plan ``env.expert_actions()`` returns (which
    is one of them, from an empty inventory only): a different recipe, a different member of a generic
    ingredient (``birch planks`` for ``planks``), gets in another order, more of an item than needed (one get
    of any amount is one action), and a craft made from items already held are all on-plan when no longer
    than the expert's way. Off-plan: an action that does not parse (``None``), a command that fails
    ("Could not ..."), a get of too few of an item (it must be got again), an unneeded or repeated get or
    craft, and ``inventory``: it only looks, so ``d`` stays the same and it costs a step no shortest plan
    spends. A path that ends still on-plan without finishing (cut off) gives None.
    """
    env.reset(task_id)
    before = _state_distance(env)
    for step, action in enumerate(actions, start=1):
        if action is None:
            return step
        result = env.step(action)
        after = _state_distance(env)
        if after != before - 1:
            return step
        if result.terminated:
            return None
        before = after
    return None


def pair_record(pair: Pair, flagged: int | None) -> dict[str, Any]:
    """What :func:`critic_agreement` needs of one pair: its task, bad-path actions, shared steps, and the
    step its critic flagged (``Transition.flagged``, before the clamp)."""
    return {
        "env": pair.tree.env, "task_id": pair.tree.task_id, "bad_node": pair.bad.id,
        "actions": pair.tree.actions(pair.bad), "divergence": pair.shared_steps, "critic_flagged": flagged,
    }


def records_from_trees(metas: Iterable[Mapping[str, Any]], trees: Iterable[Tree]) -> Iterator[dict[str, Any]]:
    """Revision conversations' meta (``kind`` "revision") joined with their trees for the bad path's actions."""
    by_task = {(tree.env, tree.task_id): tree for tree in trees}
    for meta in metas:
        if meta.get("kind", "revision") != "revision":
            continue
        tree = by_task[(meta["env"], meta["task_id"])]
        yield {**meta, "actions": tree.actions(tree.find(meta["bad_node"]))}


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def critic_agreement(records: Iterable[Mapping[str, Any]], env_factory: Callable[[], Env]) -> dict[str, Any]:
    """Compare each record's ``critic_flagged`` with :func:`expert_error_step` of its ``actions``.

    A record needs ``task_id``, ``actions`` (the bad path's, None where none was read), ``critic_flagged``
    and ``divergence`` (see :func:`pair_record`); one whose ``env`` is not the factory env's is skipped.
    ``env_factory`` makes the env once (e.g. ``TextCraftEnv``; its ``max_steps`` must cover the paths).

    Counts: ``exact`` (both name the same step), ``early`` (the critic names an earlier step, or one where
    the expert finds none), ``late`` (a later step, or none where the expert finds one), ``both_none``;
    these four add up to ``pairs``. Also ``critic_none``, ``expert_none``, ``expert_in_shared`` (the
    expert's step lies in the prefix the good path shares, so the good path left the optimal plans too),
    each count's rate over ``pairs``, and ``mean_offset`` (critic minus expert, where both name a step).
    """
    env = env_factory()
    counts = dict.fromkeys(
        ("pairs", "exact", "early", "late", "both_none", "critic_none", "expert_none", "expert_in_shared"), 0
    )
    offsets = []
    try:
        for record in records:
            if record.get("env", env.name) != env.name:
                continue
            critic = record["critic_flagged"]
            expert = expert_error_step(env, int(record["task_id"]), record["actions"])
            counts["pairs"] += 1
            counts["critic_none"] += critic is None
            counts["expert_none"] += expert is None
            counts["expert_in_shared"] += expert is not None and expert <= record["divergence"]
            if critic is None or expert is None:
                key = "both_none" if critic is None and expert is None else "late" if critic is None else "early"
            else:
                offsets.append(critic - expert)
                key = "exact" if critic == expert else "early" if critic < expert else "late"
            counts[key] += 1
    finally:
        env.close()
    rates = {f"{key}_rate": _rate(value, counts["pairs"]) for key, value in counts.items() if key != "pairs"}
    return {**counts, **rates, "mean_offset": round(mean(offsets), 3) if offsets else None}
