"""TextCraft: craft a Minecraft item from a list of recipes (AgentGym's semantics, deterministic).

Observation: text. The first one lists crafting commands (the goal's recipe tree plus distractors) and the
goal; later ones report what an action did.
Action: ``get N ITEM`` (base items only, any amount), ``craft N ITEM using N1 IN1, N2 IN2`` (input counts
must match a recipe exactly; a generic ingredient such as ``planks`` accepts any of its members, e.g.
``oak planks``; the output count written is ignored), or ``inventory``.
Reward: 1 when the goal item is obtained, else 0.
Episode end: terminated on success; truncated after ``max_steps`` actions.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.envs.textcraft.recipes import Recipe, RecipeBook, display_name, parse_name
from coursecorrect.envs.textcraft.solver import solve
from coursecorrect.envs.textcraft.splits import SPLITS

CRAFT = re.compile(r"craft (.*) using (.*)")
GET = re.compile(r"get ([0-9]+) (.*)")
INVENTORY = re.compile(r"inventory")
COUNT = re.compile(r"([0-9]+) (.*)")
ECHO_LIMIT = 200

INSTRUCTION = (
    "You are given few useful crafting recipes to craft items in Minecraft. Crafting commands are of the format "
    '"craft [target object] using [input ingredients]".\n'
    "Every round I will give you an observation, you have to respond an action based on the state and "
    'instruction. You can "get" an object (ingredients) from the inventory or the environment, look-up the game '
    'inventory by "inventory", or "craft" (target) using any of the crafting commands.\n'
    'Your output must strictly follow this format:"Thought:\nyour thoughts.\n\nAction:\nyour next action"\n\n'
    "Reminder: \n"
    '1. Always specify the quantity when using "get" and "craft" commands. - Example of get: get 1 lapis lazuli '
    "- Example1 of craft: craft 1 blue dye using 1 lapis lazuli - Example2 of craft: craft 1 golden carrot using "
    "8 gold nugget, 1 carrot\n"
    '2. When using "get" command, do not specify whether the item comes from the inventory or the environment.\n'
    "3. You can use ONLY crafting commands provided, do not use your own crafting commands. However, if the "
    'crafting command uses a generic ingredient like "planks", you can use special types of the same '
    'ingredient e.g. "dark oak planks" in the command instead.'
)


class ActionFailed(Exception):
    """An action the env cannot carry out; its message is the observation."""


def _echo(text: str) -> str:
    """User text repeated in an observation, cut so a runaway action cannot flood the agent's context."""
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "..."


def _count(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:  # more digits than Python converts
        raise ActionFailed(f"Could not read the number {_echo(digits)}") from None


@dataclass(frozen=True)
class TextCraftState:
    goal: str
    commands: tuple[str, ...]
    inventory: tuple[tuple[str, int], ...]


class TextCraftEnv(Env):
    """Craft a Minecraft item from a list of recipes (AgentGym's TextCraft).

    ``seed`` fixes the distractors and the order of the recipe list; ``book`` swaps in other recipes.
    """

    name = "textcraft"

    def __init__(self, max_steps: int = 100, seed: int = 42, book: RecipeBook | None = None) -> None:
        super().__init__(max_steps)
        self.seed = seed
        self.book = book or RecipeBook.default()
        self.goal = ""
        self.commands: tuple[str, ...] = ()
        self.inventory: dict[str, int] = {}

    @property
    def instruction(self) -> str:
        return INSTRUCTION

    @property
    def num_tasks(self) -> int:
        return len(self.book.goals)

    def task_ids(self, split: str) -> list[int]:
        self._check_split(split, [*SPLITS, "all"])
        return list(range(self.num_tasks)) if split == "all" else list(SPLITS[split])

    @property
    def observation(self) -> str:
        """The task's initial observation: crafting commands and goal."""
        return "Crafting commands:\n{}\n\nGoal: craft {}.".format("\n".join(self.commands), display_name(self.goal))

    def task_key(self, observation: str) -> str:
        """The goal line: AgentGym's server lists the same recipes in another order (it iterates sets)."""
        return observation.rstrip().rsplit("\n", 1)[-1]

    def _reset(self, task_id: int) -> str:
        self.goal = self.book.goals[task_id % len(self.book.goals)]
        self.commands = tuple(self.book.crafting_commands(self.goal, self.seed))
        self.inventory = {}
        return self.observation

    def _step(self, action: str) -> StepResult:
        try:
            if match := CRAFT.match(action):
                return self._craft(match[1], match[2])
            if match := GET.match(action):
                return self._get(_count(match[1]), match[2])
            if INVENTORY.match(action):
                return StepResult(self._inventory_text())
            raise ActionFailed(f"Could not execute {_echo(action)}")
        except ActionFailed as failure:
            return StepResult(str(failure))

    def _get(self, amount: int, text: str) -> StepResult:
        name = parse_name(text)
        if self.book.is_craftable(name) or name in self.book.tags or name not in self.book.items:
            raise ActionFailed(f"Could not find {_echo(text)}")
        self.inventory[name] = self.inventory.get(name, 0) + amount
        solved = name == self.goal
        return StepResult(f"Got {amount} {text}", float(solved), terminated=solved)

    def _craft(self, output_text: str, inputs_text: str) -> StepResult:
        match = COUNT.match(output_text)
        output = parse_name(match[2] if match else output_text)
        offered: list[tuple[str, int]] = []
        for part in inputs_text.split(","):
            if not (match := COUNT.match(part.strip())):
                raise ActionFailed(f"Wrong item format: {_echo(part.strip())}")
            offered.append((parse_name(match[2]), _count(match[1])))
        needed = Counter[str]()
        for name, count in offered:
            needed[name] += count
        if any(self.inventory.get(name, 0) < count for name, count in needed.items()):
            raise ActionFailed(f"Could not find enough items to craft {_echo(output)}")
        recipe = self._find_recipe(output, offered)
        if recipe is None:
            raise ActionFailed(f"Could not find a valid recipe for {_echo(output)}")
        for name, count in needed.items():
            self.inventory[name] -= count
            if not self.inventory[name]:
                del self.inventory[name]
        self.inventory[recipe.output] = self.inventory.get(recipe.output, 0) + recipe.count
        solved = recipe.output == self.goal
        return StepResult(f"Crafted {recipe.count} {recipe.output}", float(solved), terminated=solved)

    def _find_recipe(self, output: str, offered: list[tuple[str, int]]) -> Recipe | None:
        """The first recipe of ``output`` whose every input is matched, with the exact count, by one offered
        item, with nothing offered left over."""
        for recipe in self.book.by_item.get(output, []):
            left = list(offered)
            for wanted in recipe.inputs:
                found = next((o for o in left if self.book.matches(wanted, o[0])), None)
                if found is None or found[1] != wanted.count:
                    break
                left.remove(found)
            else:
                if not left:
                    return recipe
        return None

    def _inventory_text(self) -> str:
        if not self.inventory:
            return "Inventory: You are not carrying anything."
        return "Inventory: " + "".join(f"[{display_name(n)}] ({c}) " for n, c in self.inventory.items())

    def _get_state(self) -> TextCraftState:
        return TextCraftState(self.goal, self.commands, tuple(self.inventory.items()))

    def _set_state(self, state: TextCraftState) -> None:
        self.goal, self.commands, self.inventory = state.goal, state.commands, dict(state.inventory)

    def expert_actions(self) -> list[str]:
        """A shortest action sequence that crafts the current goal from an empty inventory."""
        return solve(self.book, self.goal)
