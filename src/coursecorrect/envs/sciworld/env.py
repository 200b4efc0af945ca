"""SciWorld: ScienceWorld's elementary-science tasks (Wang et al., 2022) through the ``scienceworld`` package.

Task ids and splits: see :mod:`coursecorrect.envs.sciworld.tasks` (AgentGym's numbering; ScienceWorld's
train/dev/test variation folds).
Observation: first the task description and what "look around" shows (as AgentGym's server); then the
simulator's reply to each action.
Action: one ScienceWorld command, e.g. ``open door to kitchen``, ``pick up thermometer``, ``focus on water``.
Unknown commands get "No known action matches that input." and change nothing. With
``match_valid_actions``, such a command is replaced by the closest valid command (difflib) when one is close.
Reward: the task score (0-100) / 100; a negative score (failure, e.g. focusing on the wrong object) gives 0.
``StepResult.info["score"]`` keeps the raw score.
Episode end: terminated when the task is completed (score 100, reward 1) or failed (negative score);
truncated after ``max_steps`` actions.
The Java simulator starts on the first ``reset`` (so constructing the env, listing tasks and splits cost
nothing) and stops on ``close``. Snapshots replay the actions (a reset ~0.2 s, then ~10 ms a step).
"""

from __future__ import annotations

import difflib
from typing import Any

from coursecorrect.envs.base import StepResult
from coursecorrect.envs.java import JavaSimEnv, require_java
from coursecorrect.envs.sciworld.tasks import NUM_IDS, SPLITS, locate, split_ids
from coursecorrect.errors import EnvError

NO_MATCH = "No known action matches that input."
INSTALL = "pip install 'coursecorrect[sciworld]'"

INSTRUCTION = (
    "You are an agent in ScienceWorld, a text-based world of elementary science experiments. Every round I will "
    "give you an observation, you have to respond an action based on the observation to finish the given task.\n"
    "Actions (OBJ is an object, LOC a location):\n"
    "- open OBJ / close OBJ: open or close a container or a door\n"
    "- activate OBJ / deactivate OBJ: switch a device on or off\n"
    "- connect OBJ to OBJ / disconnect OBJ: wire electrical components\n"
    "- use OBJ [on OBJ]: use a device or an item\n"
    "- look around: describe the current room; look at OBJ: describe an object; look in OBJ: list a container\n"
    "- read OBJ: read a note or a book\n"
    "- move OBJ to OBJ: put an object in a container; pick up OBJ: take it into the inventory; "
    "put down OBJ: drop it\n"
    "- pour OBJ in OBJ: pour a liquid; dunk OBJ in OBJ: dunk a container into a liquid; mix OBJ: mix a "
    "container's contents chemically\n"
    "- go to LOC: walk to a location (its door must be open)\n"
    "- eat OBJ, flush OBJ\n"
    "- focus on OBJ: signal that OBJ is the object of the task (focusing on a wrong object fails the task)\n"
    "- wait: let 10 time steps pass; wait1: let 1 time step pass\n"
    "- task: repeat the task; inventory: list what you carry\n"
    "When the game asks which of several objects you mean, answer with the number of your choice.\n"
    'Your output must strictly follow this format:"Thought:\nyour thoughts.\n\nAction:\nyour next action"'
)


def start_simulator() -> Any:
    """A running ScienceWorld simulator (a Java process behind Py4J)."""
    try:
        from scienceworld import ScienceWorldEnv
    except ImportError:
        raise EnvError(f"SciWorld needs the scienceworld package: {INSTALL}") from None
    require_java("SciWorld")
    try:
        return ScienceWorldEnv("")
    except Exception as exc:  # noqa: BLE001 - Py4J and subprocess errors alike mean the JVM did not start
        raise EnvError(f"SciWorld: the ScienceWorld simulator (Java) did not start: {exc}") from exc


class SciWorldEnv(JavaSimEnv):
    """ScienceWorld's 30 science tasks, AgentGym's numbering (needs Java); options match_valid_actions, match_cutoff.

    ``match_valid_actions`` maps an unknown command to the closest valid one (similarity >= ``match_cutoff``).
    """

    name = "sciworld"
    splits = SPLITS

    def __init__(self, max_steps: int = 100, match_valid_actions: bool = False, match_cutoff: float = 0.8) -> None:
        super().__init__(max_steps)
        if not 0 < match_cutoff <= 1:
            raise EnvError(f"sciworld: match_cutoff must be in (0, 1], got {match_cutoff}")
        self.match_valid_actions = match_valid_actions
        self.match_cutoff = match_cutoff

    def _start_simulator(self) -> Any:
        return start_simulator()

    @property
    def instruction(self) -> str:
        return INSTRUCTION

    @property
    def num_tasks(self) -> int:
        return NUM_IDS

    def task_ids(self, split: str) -> list[int]:
        self._check_split(split, [*SPLITS, "all"])
        return list(split_ids(split))

    def _load(self, task_id: int, gold: bool = False) -> None:
        task, variation = locate(task_id)
        self.sim.load(task.name, variation, "", generateGoldPath=gold)

    def _reset(self, task_id: int) -> str:
        self._load(task_id)
        description = self.sim.get_task_description()
        return f"{description}\n{self.sim.server.step('look around')}"

    def _step(self, action: str) -> StepResult:
        server = self.sim.server
        info: dict[str, Any] = {}
        observation = server.step(action)
        if observation == NO_MATCH and self.match_valid_actions and (matched := self._closest_valid(action)):
            observation = server.step(matched)
            info["matched_action"] = matched
        score = round(100 * server.getScore())
        info["score"] = score
        terminated = score < 0 or score >= 100 or bool(server.getCompleted())
        return StepResult(observation, max(score, 0) / 100, terminated, info=info)

    def _closest_valid(self, action: str) -> str | None:
        valid = self.sim.get_valid_action_object_combinations()
        close = difflib.get_close_matches(action.strip().lower(), valid, n=1, cutoff=self.match_cutoff)
        return close[0] if close else None

    def expert_actions(self) -> list[str]:
        """ScienceWorld's gold action sequence for the current task, from the task's start. The task often ends
        a few actions before the sequence does (stop at ``done``); it is not cut to fit, since in some tasks
        (electrical ones) the step at which the score reaches 100 varies from run to run."""
        if self.task_id is None:
            raise EnvError("sciworld: call reset(task_id) before expert_actions()")
        if self.task_id not in self._gold:
            self._load(self.task_id, gold=True)
            self._gold[self.task_id] = list(self.sim.get_gold_action_sequence())
            self.restore(self.snapshot())  # the gold run loaded the task afresh: replay the episode so far
        return list(self._gold[self.task_id])
