"""The TextCraft expert: a planner over the recipe tree that finds a shortest successful action sequence.

A plan fixes one recipe per crafted item and one member per generic tag. Given those choices, demand flows
from the goal down the (acyclic) recipe graph; the plan costs one ``get`` per distinct base item plus
ceil(demand / output count) ``craft`` actions per crafted item. Using one consistent choice for every
occurrence of an item or tag is never worse (fetches merge, and ceil is subadditive), so the planner
searches consistent choices exhaustively and keeps the cheapest (ties: the first in recipe-file order).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from math import ceil

from coursecorrect.envs.textcraft.recipes import Recipe, RecipeBook, display_name

Choice = dict[str, "Recipe | str | None"]  # item -> recipe (crafted) or None (fetched); tag -> member item


def _choices(book: RecipeBook, pending: tuple[str, ...], choice: Choice) -> Iterator[Choice]:
    """Every consistent way to decide how to obtain each name reachable from ``pending``."""
    todo = [name for name in pending if name not in choice]
    if not todo:
        yield choice
        return
    name, rest = todo[0], tuple(todo[1:])
    if name in book.tags:
        for member in sorted(item for item, tag in book.item_tag.items() if tag == name):
            if book.by_item.get(member) or member in book.items:
                yield from _choices(book, (member, *rest), {**choice, name: member})
    elif recipes := book.by_item.get(name):
        for recipe in recipes:
            inputs = tuple(i.name for i in recipe.inputs)
            yield from _choices(book, (*inputs, *rest), {**choice, name: recipe})
    else:
        yield from _choices(book, rest, {**choice, name: None})


def _resolve(choice: Choice, name: str) -> str:
    """The concrete item used for ``name`` (a tag's chosen member, else the item itself)."""
    target = choice.get(name)
    return target if isinstance(target, str) else name


def _plan(choice: Choice, goal: str) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Topological order of crafted items (goal first), base-item demand, and crafts per item."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(item: str) -> None:
        if item in seen:
            return
        seen.add(item)
        recipe = choice.get(item)
        if isinstance(recipe, Recipe):
            for ingredient in recipe.inputs:
                visit(_resolve(choice, ingredient.name))
        order.append(item)

    visit(goal)
    order.reverse()  # consumers before producers
    demand = {goal: 1}
    crafts: dict[str, int] = {}
    for item in order:
        recipe = choice.get(item)
        if isinstance(recipe, Recipe):
            crafts[item] = ceil(demand[item] / recipe.count)
            for ingredient in recipe.inputs:
                used = _resolve(choice, ingredient.name)
                demand[used] = demand.get(used, 0) + crafts[item] * ingredient.count
    fetched = {item: demand[item] for item in reversed(order) if item not in crafts}
    return order, fetched, crafts


def _actions(choice: Choice, goal: str) -> list[str]:
    order, fetched, crafts = _plan(choice, goal)
    actions = [f"get {count} {display_name(item)}" for item, count in fetched.items()]
    for item in reversed(order):
        recipe = choice.get(item)
        if isinstance(recipe, Recipe):
            used = ", ".join(f"{i.count} {display_name(_resolve(choice, i.name))}" for i in recipe.inputs)
            actions += [f"craft {recipe.count} {display_name(item)} using {used}"] * crafts[item]
    return actions


def plan_cost(choice: Choice, goal: str) -> int:
    _, fetched, crafts = _plan(choice, goal)
    return len(fetched) + sum(crafts.values())


@cache
def _solve(book: RecipeBook, goal: str) -> tuple[str, ...]:
    best = min(_choices(book, (goal,), {}), key=lambda choice: plan_cost(choice, goal))
    return tuple(_actions(best, goal))


def solve(book: RecipeBook, goal: str) -> list[str]:
    """A shortest list of actions that obtains ``goal`` from an empty inventory."""
    if not book.by_item.get(goal):
        raise ValueError(f"{goal!r} has no recipe, so it is not a TextCraft goal")
    return list(_solve(book, goal))
