"""Convert Minecraft recipe JSON files into TextCraft's compact recipe data, with AgentGym's semantics.

Only shaped and shapeless crafting recipes are kept. A recipe's ``group`` becomes a generic tag of its output;
single-input recipes whose input ends in ``_block`` (un-crafting) are dropped; a recipe whose output already
feeds one of its inputs is skipped (cycle); an input tag none of whose members has a recipe becomes a plain,
fetchable item. Files are read in sorted name order so every machine builds the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CRAFTING_TYPES = ("minecraft:crafting_shaped", "minecraft:crafting_shapeless")


def _ingredient(entry: dict | list) -> tuple[str, str]:
    """(name, kind) of one ingredient entry; a list of alternatives counts as its first member."""
    if isinstance(entry, list):
        entry = entry[0]
    if "item" in entry:
        return entry["item"], "item"
    if "tag" in entry:
        return entry["tag"], "tag"
    raise ValueError(f"ingredient has neither 'item' nor 'tag': {entry}")


def _inputs(recipe: dict[str, Any]) -> list[list]:
    """Inputs as ``[name, kind, count]`` in first-seen order."""
    counts: dict[tuple[str, str], int] = {}
    if recipe["type"] == "minecraft:crafting_shaped":
        for key, entry in recipe["key"].items():
            counts[_ingredient(entry)] = sum(line.count(key) for line in recipe["pattern"])
    else:
        for entry in recipe["ingredients"]:
            ingredient = _ingredient(entry)
            counts[ingredient] = counts.get(ingredient, 0) + 1
    return [[name, kind, count] for (name, kind), count in counts.items()]


def convert_recipe_dir(recipe_dir: Path) -> dict[str, Any]:
    """Read every ``*.json`` recipe in ``recipe_dir`` and return the compact data TextCraft loads."""
    items: set[str] = set()
    tags: set[str] = set()
    item_tag: dict[str, str] = {}
    recipes: list[dict[str, Any]] = []
    dependencies: dict[str, set[str]] = {}  # output -> everything it is transitively made from
    files = sorted(recipe_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no recipe files (*.json) in {recipe_dir}")
    for path in files:
        raw = json.loads(path.read_text())
        if raw.get("type") not in CRAFTING_TYPES:
            continue
        inputs = _inputs(raw)
        for name, kind, _ in inputs:
            (items if kind == "item" else tags).add(name)
        result = raw["result"]
        output, count = (result, 1) if isinstance(result, str) else (result["item"], result.get("count") or 1)
        items.add(output)
        if len(inputs) == 1 and inputs[0][0].endswith("_block"):
            continue
        tag = None
        if "group" in raw:
            tag = "minecraft:" + raw["group"]
            if tag != output:
                tags.add(tag)
                item_tag[output] = tag
        deps = dependencies.setdefault(output, set())
        if any(output in dependencies.get(name, ()) for name, _, _ in inputs):
            continue
        recipes.append({"output": output, "count": count, "tag": tag, "inputs": inputs})
        for name, _, _ in inputs:
            deps.add(name)
            deps.update(dependencies.get(name, ()))
    _untag_uncraftable_inputs(recipes, items, tags, item_tag)
    return {
        "source": f"{len(files)} Minecraft recipe files, {len(recipes)} crafting recipes kept",
        "items": sorted(items),
        "tags": sorted(tags),
        "item_tag": dict(sorted(item_tag.items())),
        "recipes": recipes,
    }


def _untag_uncraftable_inputs(
    recipes: list[dict[str, Any]], items: set[str], tags: set[str], item_tag: dict[str, str]
) -> None:
    """An input tag none of whose members has a recipe can only be fetched: make it a plain item."""
    with_recipe = {recipe["output"] for recipe in recipes}
    craftable_tags = {tag for item, tag in item_tag.items() if item in with_recipe}
    for recipe in recipes:
        for ingredient in recipe["inputs"]:
            if ingredient[1] == "tag" and ingredient[0] not in craftable_tags:
                ingredient[1] = "item"
                items.add(ingredient[0])
                tags.discard(ingredient[0])
