"""Math word problems as a multi-turn "try again" task (RISE): GSM8K and a 1,000-problem MATH test subset.

Observation: the question; after a wrong attempt, "The answer is incorrect. Please try again. Here's the
question: {question}".
Action: a whole response, graded by its last ``\\boxed{}`` answer.
Reward: 1 when correct (terminated), else 0; ``StepResult.info["grade"]`` keeps the raw grade (GSM8K: -1 when
no boxed number could be parsed).
Episode end: terminated on a correct answer; truncated after ``max_steps`` attempts (default 5 turns).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.envs.math.grading import gsm8k_correct, last_boxed, math_correct, parse_number
from coursecorrect.errors import EnvError
from coursecorrect.io import read_jsonl

DATA_DIR = Path(__file__).parent / "data"
INSTRUCTION = "Solve the math problem. Reason step by step, then give the final answer in \\boxed{}, e.g. \\boxed{42}."
FEEDBACK = "The answer is incorrect. Please try again. Here's the question: {question}"
CORRECT = "The answer is correct."
GRADERS: dict[str, Callable[[str, str], float]] = {"gsm8k": gsm8k_correct, "math": math_correct}


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str
    split: str


def convert_gsm8k(source: Path) -> list[dict[str, str]]:
    """GSM8K train then test from ``source`` (gsm8k_{train,test}.jsonl): the answer is the number after
    ``####``, commas stripped."""
    records = []
    for split in ("train", "test"):
        path = source / f"gsm8k_{split}.jsonl"
        for line, record in enumerate(read_jsonl(path), 1):
            answer = record["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
            if "####" not in record["answer"] or parse_number(answer) is None:
                raise EnvError(f"{path}:{line}: no '#### N' answer")
            records.append({"question": record["question"], "answer": answer, "split": split})
    return records


def convert_math(source: Path) -> list[dict[str, str]]:
    """The MATH test subset from ``source``/math_test_1000.jsonl: the answer is the last boxed one of the
    solution."""
    path = source / "math_test_1000.jsonl"
    records = []
    for line, record in enumerate(read_jsonl(path), 1):
        answer = last_boxed(record["solution"])
        if answer is None:
            raise EnvError(f"{path}:{line}: the solution has no \\boxed{{}} answer")
        records.append({"question": record["problem"], "answer": answer, "split": "test"})
    return records


CONVERTERS: dict[str, Callable[[Path], list[dict[str, str]]]] = {"gsm8k": convert_gsm8k, "math": convert_math}


def data_file(dataset: str) -> Path:
    """The shipped gzip JSON of ``dataset``."""
    return DATA_DIR / f"{dataset}.json.gz"


@functools.cache
def load_problems(dataset: str) -> tuple[Problem, ...]:
    """The problems of a shipped dataset ("gsm8k" or "math"), in task-id order."""
    return tuple(Problem(**record) for record in json.loads(gzip.decompress(data_file(dataset).read_bytes())))


class MathEnv(Env):
    """One math problem per task; each step is a full answer attempt. Subclasses name the ``dataset``."""

    dataset: ClassVar[str]

    def __init__(self, max_steps: int = 5) -> None:
        super().__init__(max_steps)
        self.problems = load_problems(self.dataset)
        self.problem: Problem | None = None

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
        """The raw grade of ``response`` for the current problem (1 correct, 0 wrong, GSM8K -1 unparseable)."""
        if self.problem is None:
            raise EnvError(f"{self.name}: call reset(task_id) before grading")
        return GRADERS[self.dataset](response, self.problem.answer)

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


class GSM8KEnv(MathEnv):
    """GSM8K: 7,473 train and 1,319 test grade-school word problems with integer answers."""

    name = "gsm8k"
    dataset = "gsm8k"
    splits = ("train", "test")


class MATHEnv(MathEnv):
    """A 1,000-problem subset of the MATH test set (Hendrycks et al.), graded after answer normalisation."""

    name = "math"
    dataset = "math"
    splits = ("test",)
