"""The environment protocol every coursecorrect env follows.

An env plays one task at a time: ``reset(task_id)`` returns the first observation, ``step(action)`` returns a
``StepResult``. ``snapshot()`` / ``restore()`` let tree search jump between states: envs that can copy their
state cheaply override ``_get_state`` / ``_set_state``; every other env falls back to reset + replay of the
recorded actions, which is correct for any deterministic env, only slower.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from coursecorrect.errors import EnvError


@dataclass(frozen=True)
class StepResult:
    """What one action did. ``terminated``: the task ended (solved or failed for good); ``truncated``: the
    step limit cut the episode. A time-out is not a failure of the task, so the two are kept apart."""

    observation: str
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass(frozen=True)
class Snapshot:
    """Where an episode stands: the task, the actions taken, and (for envs that support it) a cheap copy
    of the state. Opaque to callers; only ``Env.restore`` reads it."""

    task_id: int
    actions: tuple[str, ...]
    reward: float
    done: bool
    state: Any = None


class Env(ABC):
    """Base class of text environments.

    Subclasses implement ``instruction``, ``num_tasks``, ``task_ids``, ``_reset`` and ``_step``, and may
    implement ``_get_state`` / ``_set_state`` for fast snapshots and ``expert_actions`` for a solver.
    """

    name: ClassVar[str] = "env"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, max_steps: int = 100) -> None:
        if max_steps < 1:
            raise EnvError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self.task_id: int | None = None
        self.actions: list[str] = []
        self.reward = 0.0
        self.done = False

    @property
    @abstractmethod
    def instruction(self) -> str:
        """The env's instruction prompt: how to act and what format to answer in."""

    @property
    @abstractmethod
    def num_tasks(self) -> int:
        """Task ids run from 0 to ``num_tasks - 1``."""

    @abstractmethod
    def task_ids(self, split: str) -> list[int]:
        """The task ids of a split (one of ``splits``)."""

    @abstractmethod
    def _reset(self, task_id: int) -> str:
        """Start ``task_id``; return the initial observation."""

    @abstractmethod
    def _step(self, action: str) -> StepResult:
        """Apply one action. Must never raise on any action text: bad actions get an error observation."""

    def _get_state(self) -> Any:
        """A cheap copy of the state past ``reset``, or ``None`` when the env cannot copy its state."""
        return None

    def _set_state(self, state: Any) -> None:
        raise NotImplementedError

    @property
    def supports_snapshot(self) -> bool:
        """Whether ``restore`` copies state instead of replaying actions."""
        return type(self)._get_state is not Env._get_state

    def reset(self, task_id: int) -> str:
        """Start a task and return its initial observation."""
        self.check_task_id(task_id)
        observation = self._reset(int(task_id))
        self.task_id, self.actions, self.reward, self.done = int(task_id), [], 0.0, False
        return observation

    def step(self, action: str) -> StepResult:
        """Apply ``action`` (any text). Truncates the episode once ``max_steps`` actions were taken."""
        if self.task_id is None:
            raise EnvError(f"{self.name}: call reset(task_id) before step()")
        if self.done:
            raise EnvError(f"{self.name}: the episode of task {self.task_id} is over; call reset()")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, got {type(action).__name__}")
        result = self._step(action)
        self.actions.append(action)
        self.reward = result.reward
        if not result.terminated and len(self.actions) >= self.max_steps:
            result = StepResult(result.observation, result.reward, False, True, result.info)
        self.done = result.done
        return result

    def snapshot(self) -> Snapshot:
        """Capture the current episode state."""
        if self.task_id is None:
            raise EnvError(f"{self.name}: nothing to snapshot before reset()")
        return Snapshot(self.task_id, tuple(self.actions), self.reward, self.done, self._get_state())

    def restore(self, snapshot: Snapshot) -> None:
        """Return to a snapshot: copy its state back, or reset and replay its actions."""
        if snapshot.state is not None:
            self._set_state(snapshot.state)
        else:
            self._reset(snapshot.task_id)
            for action in snapshot.actions:
                self._step(action)
        self.task_id, self.actions = snapshot.task_id, list(snapshot.actions)
        self.reward, self.done = snapshot.reward, snapshot.done

    def task_key(self, observation: str) -> str:
        """What identifies a task in its first observation, to match this env's task ids with another copy's
        (e.g. a server's that numbers the tasks differently). The whole observation unless a subclass knows better."""
        return observation

    def expert_actions(self) -> list[str] | None:
        """A successful action sequence for the current task from its state now, if the env has a solver."""
        return None

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release external resources (processes, connections)."""

    def check_task_id(self, task_id: Any) -> None:
        """Raise ``EnvError`` unless ``task_id`` is one of this env's task ids."""
        if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < self.num_tasks:
            raise EnvError(
                f"{self.name}: unknown task id {task_id!r}; valid ids are 0..{self.num_tasks - 1}"
            )

    def _check_split(self, split: str, available: Sequence[str]) -> None:
        if split not in available:
            raise EnvError(f"{self.name}: unknown split {split!r}; choose one of {', '.join(available)}")

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
