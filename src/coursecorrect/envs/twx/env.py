"""TextWorld-Express: eight fast text games (Jansen & Côté, 2022) through the ``textworld-express`` package.

Games: cookingworld (read a recipe, gather, cut and cook ingredients, eat the meal), twc (put objects where
they belong), coin (find a coin), mapreader (carry a coin to a box with a map), arithmetic (solve a problem, put
the item with the answer's quantity in a box), sorting (box objects by quantity), simonsays (do what Simon
says), peckingorder (follow an instruction book). One game per env instance (``game``; ``game_params`` such
as ``"numLocations=5,includeDoors=1"`` tune its generator).
Task ids: 0..2999, three blocks of 1,000 that follow the package's own seed folds: ids 0-999 are the train
seeds 0-999, 1000-1999 the dev seeds 10000-10999, 2000-2999 the test seeds 20000-20999 (the table ships in
``data/seeds.json``). Splits: ``train``, ``dev``, ``test`` (those blocks) and ``all``.
Observation: first the task description and the starting room; then the game's reply to each action.
Action: one game command, e.g. ``move north``, ``open fridge``, ``take coin``; unknown commands get
"Unknown action: I'm not sure what you mean." and change nothing.
Reward: the game's score clipped to [0, 1]; 0 once the task failed. ``StepResult.info["score"]`` keeps the
raw score. Episode end: terminated on success (reward 1) or failure; truncated after ``max_steps`` actions.
The Java simulator starts on the first ``reset`` and stops on ``close``; snapshots replay the actions.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from coursecorrect.envs.base import StepResult
from coursecorrect.envs.java import JavaSimEnv, require_java
from coursecorrect.errors import EnvError

SPLITS = ("train", "dev", "test")
INSTALL = "pip install 'coursecorrect[twx]'"
SEEDS: dict[str, dict[str, tuple[int, int]]] = {
    game: {fold: (start, count) for fold, (start, count) in folds.items()}
    for game, folds in json.loads(
        resources.files(__package__).joinpath("data/seeds.json").read_text(encoding="utf-8")
    )["games"].items()
}
GAMES = tuple(SEEDS)

INSTRUCTION = (
    "You are playing a text game. Every round I will give you an observation, you have to respond an action "
    "based on the observation to finish the given task.\n"
    "Commands (OBJ is an object; not every game has every command):\n"
    "- look around: describe the room; inventory: list what you carry; task: repeat the task\n"
    "- move DIRECTION: go north, south, east or west; open OBJ / close OBJ: open or close a container or a "
    "door (e.g. open door to north)\n"
    "- take OBJ: pick an object up; put OBJ in OBJ: place it in or on something\n"
    "- read OBJ, examine OBJ, smell OBJ, touch OBJ, eat OBJ\n"
    "- slice OBJ / dice OBJ / chop OBJ: cut food (needs a knife); cook OBJ in OBJ: cook food in the stove or "
    "the oven; prepare meal: combine the ingredients of a recipe\n"
    'Your output must strictly follow this format:"Thought:\nyour thoughts.\n\nAction:\nyour next action"'
)


def start_simulator() -> Any:
    """A running TextWorld-Express simulator (a Java process behind Py4J)."""
    try:
        from textworld_express import TextWorldExpressEnv as Simulator
    except ImportError:
        raise EnvError(f"TextWorld-Express needs the textworld-express package: {INSTALL}") from None
    require_java("TextWorld-Express")
    try:
        return Simulator()
    except Exception as exc:  # noqa: BLE001 - Py4J and subprocess errors alike mean the JVM did not start
        raise EnvError(f"TextWorld-Express: the simulator (Java) did not start: {exc}") from exc


class TextWorldExpressEnv(JavaSimEnv):
    """TextWorld-Express's 8 text games, one per env (needs Java); options game (default cookingworld), game_params."""

    name = "twx"
    splits = SPLITS

    def __init__(self, max_steps: int = 100, game: str = "cookingworld", game_params: str = "") -> None:
        super().__init__(max_steps)
        if game not in SEEDS:
            raise EnvError(f"twx: unknown game {game!r}; choose one of {', '.join(GAMES)}")
        self.game = game
        self.game_params = game_params

    def _start_simulator(self) -> Any:
        return start_simulator()

    @property
    def instruction(self) -> str:
        return INSTRUCTION

    @property
    def num_tasks(self) -> int:
        return sum(count for _, _, count in self._blocks.values())

    @property
    def _blocks(self) -> dict[str, tuple[int, int, int]]:
        """Per seed fold: its first task id, first seed and number of seeds."""
        blocks, first = {}, 0
        for fold in SPLITS:
            seed, count = SEEDS[self.game][fold]
            blocks[fold] = (first, seed, count)
            first += count
        return blocks

    def task_ids(self, split: str) -> list[int]:
        self._check_split(split, [*SPLITS, "all"])
        if split == "all":
            return list(range(self.num_tasks))
        first, _, count = self._blocks[split]
        return list(range(first, first + count))

    def seed_of(self, task_id: int) -> tuple[str, int]:
        """The seed fold and the seed of a task id."""
        self.check_task_id(task_id)
        return next(
            (fold, seed + task_id - first)
            for fold, (first, seed, count) in self._blocks.items()
            if first <= task_id < first + count
        )

    def _load(self, task_id: int, gold: bool = False) -> str:
        fold, seed = self.seed_of(task_id)
        try:
            observation, infos = self.sim.reset(
                seed=seed, gameFold=fold, gameName=self.game, gameParams=self.game_params, generateGoldPath=gold
            )
        except ValueError as exc:  # the generator rejects game_params
            raise EnvError(f"twx: game {self.game!r} with params {self.game_params!r}: {exc}") from None
        return f"{infos['taskDescription']}\n{observation}"

    def _reset(self, task_id: int) -> str:
        return self._load(task_id)

    def _step(self, action: str) -> StepResult:
        observation, _, _, infos = self.sim.step(action)
        score = float(infos["score"])
        failed = bool(infos["taskfailure"])
        terminated = failed or bool(infos["tasksuccess"]) or score >= 1
        reward = 0.0 if failed else min(max(score, 0.0), 1.0)
        return StepResult(observation, reward, terminated, info={"score": score})

    def expert_actions(self) -> list[str]:
        """The game's gold action sequence for the current task from the task's start, cut at the action that
        ends the task."""
        if self.task_id is None:
            raise EnvError("twx: call reset(task_id) before expert_actions()")
        if self.task_id not in self._gold:
            self._load(self.task_id, gold=True)
            plan = list(self.sim.getGoldActionSequence())
            self._reset(self.task_id)
            ends = (n for n, action in enumerate(plan, 1) if self._step(action).terminated)
            self._gold[self.task_id] = plan[: next(ends, len(plan))]
            self.restore(self.snapshot())  # back to where the episode stood
        return list(self._gold[self.task_id])
