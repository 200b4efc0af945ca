"""TextCraft's recipe book: recipes, generic tags, item depths, the goal list and each goal's recipe set."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any


def display_name(name: str) -> str:
    """``minecraft:oak_planks`` → ``oak planks``, as the env prints names."""
    return name.replace("minecraft:", "").replace("_", " ")


def parse_name(text: str) -> str:
    """``oak planks`` → ``minecraft:oak_planks``, as the env reads names."""
    return "minecraft:" + text.replace(" ", "_")


@dataclass(frozen=True)
class Ingredient:
    """``count`` of an item, or of any member of a generic tag when ``is_tag``."""

    name: str
    is_tag: bool
    count: int


@dataclass(frozen=True)
class Recipe:
    """Crafting ``inputs`` yields ``count`` of ``output``; ``tag`` is the output's generic group, if any."""

    output: str
    count: int
    tag: str | None
    inputs: tuple[Ingredient, ...]

    @property
    def command(self) -> str:
        """The line shown to the agent, e.g. ``craft 4 stick using 2 planks``."""
        used = ", ".join(f"{i.count} {display_name(i.name)}" for i in self.inputs)
        return f"craft {self.count} {display_name(self.output)} using {used}"


class RecipeBook:
    """All recipes, indexed as TextCraft needs them. Build one with ``RecipeBook.default()``."""

    max_distractors = 10
    distractors_per_ingredient = 10

    def __init__(self, data: dict[str, Any]) -> None:
        self.items: frozenset[str] = frozenset(data["items"])
        self.tags: frozenset[str] = frozenset(data["tags"])
        self.item_tag: dict[str, str] = dict(data["item_tag"])
        self.recipes: tuple[Recipe, ...] = tuple(
            Recipe(r["output"], r["count"], r["tag"], tuple(Ingredient(n, k == "tag", c) for n, k, c in r["inputs"]))
            for r in data["recipes"]
        )
        self.by_item: dict[str, list[Recipe]] = {}
        self.by_tag: dict[str, list[Recipe]] = {}
        for recipe in self.recipes:
            self.by_item.setdefault(recipe.output, []).append(recipe)
            if recipe.tag is not None:
                self.by_tag.setdefault(recipe.tag, []).append(recipe)

    @staticmethod
    @cache
    def default() -> RecipeBook:
        """The recipe book built from Minecraft 1.16's recipes, shipped with the package (loaded once)."""
        text = resources.files(__package__).joinpath("data/recipes.json").read_text(encoding="utf-8")
        return RecipeBook(json.loads(text))

    def recipes_for(self, name: str) -> list[Recipe]:
        """Recipes that make the item ``name``, else those that make a member of the tag ``name``."""
        return self.by_item.get(name) or self.by_tag.get(name) or []

    def is_craftable(self, name: str) -> bool:
        return name in self.by_item or name in self.by_tag

    def matches(self, wanted: Ingredient, item: str) -> bool:
        """Whether ``item`` satisfies the recipe input ``wanted`` (a tag accepts any of its members)."""
        return item == wanted.name if not wanted.is_tag else self.item_tag.get(item) == wanted.name

    @cached_property
    def depth(self) -> dict[str, int]:
        """Minimum recipe-tree depth of every item and tag: 0 for base items, else the best recipe's
        (deepest input + 1)."""
        depths: dict[str, int] = {}

        def visit(name: str) -> int:
            if name not in depths:
                recipes = self.recipes_for(name)
                depths[name] = min(max(visit(i.name) + 1 for i in r.inputs) for r in recipes) if recipes else 0
            return depths[name]

        for name in [*self.by_item, *self.by_tag]:
            visit(name)
        return depths

    @cached_property
    def goals(self) -> tuple[str, ...]:
        """Every craftable item of depth >= 1, stably sorted by depth: task id k plays goal k % len."""
        return tuple(sorted(self.by_item, key=self.depth.__getitem__))

    def recipe_tree(self, name: str, seen: frozenset[str] = frozenset()) -> list[Recipe]:
        """The recipes of ``name`` followed by those of all its inputs, recursively (repeats kept)."""
        if name in seen:
            return []
        recipes = self.recipes_for(name)
        tree = list(recipes)
        for recipe in recipes:
            for ingredient in recipe.inputs:
                tree.extend(self.recipe_tree(ingredient.name, seen | {name}))
        return tree

    @cached_property
    def uses(self) -> dict[str, list[Recipe]]:
        """For every ingredient name, the recipes that take it (a tagged recipe is listed twice, as in
        AgentGym, which indexes recipes by item and by tag)."""
        uses: dict[str, list[Recipe]] = {}
        for recipe in [*self.recipes, *(r for rs in self.by_tag.values() for r in rs)]:
            for ingredient in recipe.inputs:
                uses.setdefault(ingredient.name, []).append(recipe)
        return uses

    def crafting_commands(self, goal: str, seed: int) -> list[str]:
        """The recipe lines the agent sees for ``goal``: its whole recipe tree plus up to ten distractors
        (recipes sharing an ingredient with the tree), shuffled with ``seed``. Never depends on hash order."""
        rng = random.Random(seed)
        tree = self.recipe_tree(goal)
        candidates: list[Recipe] = []
        for recipe in tree:
            for ingredient in recipe.inputs:
                users = self.uses.get(ingredient.name, [])
                candidates.extend(rng.sample(users, min(len(users), self.distractors_per_ingredient)))
        needed = list(dict.fromkeys(r.command for r in tree))
        distractors = [c for c in dict.fromkeys(r.command for r in candidates) if c not in set(needed)]
        lines = needed + rng.sample(distractors, min(len(distractors), self.max_distractors))
        rng.shuffle(lines)
        return lines
