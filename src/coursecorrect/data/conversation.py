"""The conversation schema shared by trajectories, revision data and RISE data.

A JSONL line: ``{"messages": [{"role": "user", "content": "...", "loss": false}, ...], "weight": 1.0,
"meta": {...}}``. ``loss`` marks the assistant messages a trainer learns from; ``weight`` scales the whole
example's loss (RISE's reward weighting); ``meta`` carries provenance (env, task id, reward, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import read_jsonl_lines, write_jsonl


class Message(BaseModel):
    """One chat message. Only assistant messages may carry ``loss=True``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str
    loss: bool = False

    @model_validator(mode="after")
    def _only_assistant_trains(self) -> Message:
        if self.loss and self.role != "assistant":
            raise ValueError(f"only assistant messages can have loss=True, not {self.role}")
        return self


class Conversation(BaseModel):
    """A training or evaluation example."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    meta: dict[str, Any] = Field(default_factory=dict)

    def chat(self) -> list[dict[str, str]]:
        """The messages as plain ``{"role", "content"}`` dicts, for chat templates and backends."""
        return [{"role": m.role, "content": m.content} for m in self.messages]


def write_conversations(path: Path, conversations: Iterable[Conversation]) -> None:
    """Atomically write conversations as JSONL."""
    write_jsonl(path, (c.model_dump(mode="json") for c in conversations))


def read_conversations(path: Path, skip_bad: bool = False) -> Iterator[Conversation]:
    """Read conversations from JSONL; a malformed line (e.g. a weight that is negative or not finite) raises
    an error naming ``file:line`` (or is skipped with ``skip_bad``)."""
    for number, record in read_jsonl_lines(path, skip_bad=skip_bad):
        try:
            yield Conversation.model_validate(record)
        except ValidationError as exc:
            if not skip_bad:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"]) or "(record)"
                raise CourseCorrectError(f"{path}:{number}: {where}: {problem['msg']}") from None
