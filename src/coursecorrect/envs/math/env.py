"""Math problems as a multi-turn "try again" task (RISE): GSM8K, MATH, and reasoning-gym's procedural tasks.

Observation: the question; after a wrong attempt, "The answer is incorrect. Please try again. Here's the
question: {question}".
Action: a whole response, graded by its last ``\\boxed{}`` answer.
Reward: 1 when correct (terminated), else 0; ``StepResult.info["grade"]`` keeps the raw grade (-1 when the
response has no answer that could be read: GSM8K and reasoning-gym; MATH grades that 0).
Episode end: terminated on a correct answer; truncated after ``max_steps`` attempts (default 5 turns).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.envs.math.grading import gsm8k_correct, last_boxed, math_correct, normalize_math, parse_number
from coursecorrect.envs.math.problems import DATA_ENV_VAR, Problem, load_problems
from coursecorrect.errors import EnvError

INSTRUCTION = "Solve the math problem. Reason step by step, then give the final answer in \\boxed{}, e.g. \\boxed{42}."
FEEDBACK = "The answer is incorrect. Please try again. Here's the question: {question}"
CORRECT = "The answer is correct."


class MathEnv(Env):
    """One problem per task; each step is a full answer attempt. Subclasses provide the problems (loaded on
    first use, so listing envs costs nothing), the grader and a one-shot demo."""

    def __init__(self, max_steps: int = 5) -> None:
        super().__init__(max_steps)
        self._problems: list[Problem] | None = None
        self.problem: Problem | None = None
        self.skipped: list[str] = []  # "file:line: reason" of each record that could not be used

    @property
    def problems(self) -> list[Problem]:
        if self._problems is None:
            self._problems = self._load()
            if not self._problems:
                raise EnvError(f"{self.name}: no usable problems were loaded")
        return self._problems

    @abstractmethod
    def _load(self) -> list[Problem]:
        """Every problem, in task-id order."""

    @abstractmethod
    def _grade(self, response: str, problem: Problem) -> float:
        """1 correct, 0 wrong, -1 no readable answer (where the dataset tells the two apart)."""

    def answer_key(self, response: str) -> str | None:
        """The answer of ``response`` in a normal form (equal answers, equal keys; for majority votes), or
        ``None`` when it has none."""
        boxed = last_boxed(response)
        return boxed.strip() or None if boxed is not None else None

    @property
    @abstractmethod
    def demo(self) -> tuple[str, str]:
        """A one-shot example: a question and a response in the expected answer format."""

    @property
    def instruction(self) -> str:
        return INSTRUCTION

    @property
    def num_tasks(self) -> int:
        return len(self.problems)

    def task_ids(self, split: str) -> list[int]:
        self._check_split(split, [*self.splits, "all"])
        return [i for i, problem in enumerate(self.problems) if split in ("all", problem.split)]

    def grade(self, response: str) -> float:
        """The raw grade of ``response`` for the current problem."""
        if self.problem is None:
            raise EnvError(f"{self.name}: call reset(task_id) before grading")
        return self._grade(response, self.problem)

    def _reset(self, task_id: int) -> str:
        self.problem = self.problems[task_id]
        return self.problem.question

    def _step(self, action: str) -> StepResult:
        grade = self.grade(action)
        if grade == 1:
            return StepResult(CORRECT, 1.0, True, info={"grade": grade})
        return StepResult(FEEDBACK.format(question=self.problem.question), 0.0, False, info={"grade": grade})

    def _get_state(self) -> Any:
        return self.problem

    def _set_state(self, state: Any) -> None:
        self.problem = state

    def expert_actions(self) -> list[str] | None:
        if self.problem is None:
            return None
        return [f"The final answer is \\boxed{{{self.problem.answer}}}."]


class _FileMathEnv(MathEnv):
    """A math dataset read from JSONL files or the hub (see :mod:`coursecorrect.envs.math.problems`)."""

    dataset: ClassVar[str]

    def __init__(self, max_steps: int = 5, data_dir: str | Path | None = None, strict: bool = False) -> None:
        super().__init__(max_steps)
        self.data_dir = data_dir
        self.strict = strict

    @property
    def needs_download(self) -> bool:
        """Whether the problems would come from the hub (no data_dir, no ``$COURSECORRECT_MATH_DATA``)."""
        return not (self.data_dir or os.environ.get(DATA_ENV_VAR))

    def _load(self) -> list[Problem]:
        return load_problems(self.dataset, self.splits, self.data_dir, self.strict, self.skipped)


class GSM8KEnv(_FileMathEnv):
    """GSM8K grade-school word problems (7,473 train / 1,319 test); options data_dir, strict."""

    name = "gsm8k"
    dataset = "gsm8k"
    splits = ("train", "test")
    demo = (
        "A baker makes 3 trays of 12 muffins. She sells 7 muffins. How many muffins does she have left?",
        "She makes 3 * 12 = 36 muffins. After selling 7 she has 36 - 7 = 29 muffins left.\n"
        "The final answer is \\boxed{29}.",
    )

    def _grade(self, response: str, problem: Problem) -> float:
        return gsm8k_correct(response, problem.answer)

    def answer_key(self, response: str) -> str | None:
        boxed = last_boxed(response)
        value = None if boxed is None else parse_number(boxed)
        return None if value is None else str(value)


class MATHEnv(_FileMathEnv):
    """MATH competition problems (test set), normalised answers; options data_dir, strict."""

    name = "math"
    dataset = "math"
    splits = ("test",)
    demo = (
        "What is $\\frac{1}{2} + \\frac{1}{3}$?",
        "With the common denominator 6: $\\frac{3}{6} + \\frac{2}{6} = \\frac{5}{6}$.\n"
        "The final answer is \\boxed{\\frac{5}{6}}.",
    )

    def _grade(self, response: str, problem: Problem) -> float:
        return math_correct(response, problem.answer)

    def answer_key(self, response: str) -> str | None:
        boxed = last_boxed(response)
        return None if boxed is None else normalize_math(boxed) or None
