"""RISE's rollout records: one JSON line per problem (``part-*.jsonl`` of collection and evaluation).

A line reads ``{"task_id", "question", "answer", "env", "instruction", "demo", "turns": [{"response", "grade",
"key", "model", "samples", "correct_samples", "degenerate_samples", "finish_reason"[, "all"]}, ...], "solved",
"stop"}``. Only ``task_id``, ``question``, ``instruction`` and each turn's ``response`` and ``grade`` are
required, so a hand-made rollout file can be trained on; the other fields default as documented.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails

from coursecorrect.errors import CourseCorrectError


def _finite(value: Any) -> int | float:
    """``value`` if it is a finite number (a bool is not), unchanged so that ``1`` is written back as ``1``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


Grade = Annotated[int | float, PlainValidator(_finite)]
"""The env's raw grade of an attempt: 1 correct, 0 wrong, -1 no readable answer."""


class Sample(BaseModel):
    """One graded sample."""

    model_config = ConfigDict(strict=True)

    response: str
    grade: Grade
    key: str | None = Field(None, description="the answer in a normal form, for majority votes (None: unreadable)")


class Turn(Sample):
    """One turn of a rollout: the kept sample (the best-graded one) and how it was chosen."""

    model: str | None = Field(None, description="the model that answered")
    samples: int = Field(1, ge=1, description="samples drawn")
    correct_samples: int = Field(0, ge=0, description="samples graded correct")
    degenerate_samples: int = Field(0, ge=0, description="samples looping on a phrase")
    finish_reason: Literal["stop", "length"] = Field("stop", description="why the kept sample ended")
    all: list[Sample] = Field(
        default_factory=list, exclude_if=lambda samples: not samples,
        description="every sample, when kept (parallel evaluation); not written when empty",
    )


class Rollout(BaseModel):
    """One problem rolled out for up to T turns."""

    model_config = ConfigDict(strict=True)

    task_id: int
    question: str
    answer: str | None = Field(None, description="the gold answer")
    env: str | None = Field(None, description="the env's name")
    instruction: str
    demo: list[str] | None = Field(None, min_length=2, max_length=2, description="a question and its response")
    turns: list[Turn]
    solved: bool = Field(False, description="some turn was correct")
    stop: Literal["turns", "solved", "degenerate"] = Field(
        "turns", description="why it ended: all turns taken, a correct turn, or only degenerate samples"
    )


class RolloutError(CourseCorrectError):
    """A rollout record that cannot be used; the message says where, at which turn, and what is wrong."""


def parse_rollout(record: Rollout | Mapping[str, Any], where: str | None = None) -> Rollout:
    """``record`` as a :class:`Rollout` (one passes as it is); an unusable record raises :class:`RolloutError`
    naming ``where`` (default: its task)."""
    try:
        return Rollout.model_validate(record)
    except ValidationError as exc:
        task = record.get("task_id") if isinstance(record, Mapping) else None
        where = where or ("rollout" if task is None else f"rollout of task {task}")
        raise RolloutError(_problem(exc.errors(), where)) from None


def parse_rollouts(records: Iterable[Rollout | Mapping[str, Any]]) -> list[Rollout]:
    """:func:`parse_rollout` of each record."""
    return [parse_rollout(record) for record in records]


def _problem(errors: list[ErrorDetails], where: str) -> str:
    """``WHERE[, turn T]: WHAT`` of a record's first validation error; missing fields are named together."""
    first = errors[0]
    turn = first["loc"][:2] if first["loc"][:1] == ("turns",) and len(first["loc"]) > 1 else ()
    where += f", turn {turn[1]}" if turn else ""

    def field(error: ErrorDetails) -> str:
        return ".".join(str(part) for part in error["loc"][len(turn) :]) or "record"

    if first["type"] == "missing":
        names = [field(e) for e in errors if e["type"] == "missing" and e["loc"][: len(turn)] == turn]
        return f"{where}: missing field(s) {', '.join(names)}"
    if first["type"] == "value_error":  # _finite's message reads on from the value
        return f"{where}: {field(first)} {first['input']!r} {first['ctx']['error']}"
    return f"{where}: {field(first)}: {first['msg']}"
