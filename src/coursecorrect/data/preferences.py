"""Preference pairs: the DPO data that :mod:`coursecorrect.revision.preferences` makes from search trees and
:mod:`coursecorrect.train.dpo` trains on.

    prompt     root messages + the steps both paths share     (never trained: loss=False everywhere)
    chosen     the good leaf's steps after the shared prefix  (assistant loss=True, observations)
    rejected   the bad leaf's steps after the shared prefix   (assistant loss=True, observations)

The prompt always ends with a user message (the first observation, or the observation of the last shared
step) and both continuations start with an assistant message, which is what TRL's conversational preference
format expects. A JSONL line is one pair, ``{"prompt": [...], "chosen": [...], "rejected": [...], "meta": {...}}``,
its messages in the :class:`~coursecorrect.data.Message` schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coursecorrect.data.conversation import Message
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import read_jsonl, write_jsonl


def trl_messages(messages: list[Message]) -> list[dict[str, str]]:
    """Messages as TRL's ``{"role", "content"}`` dicts (loss flags dropped)."""
    return [{"role": m.role, "content": m.content} for m in messages]


class PreferencePair(BaseModel):
    """One DPO example: the shared prefix of two paths and their continuations, the good one preferred."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[Message] = Field(description="messages both paths share: root messages and the shared steps")
    chosen: list[Message] = Field(description="the good leaf's continuation: its own steps (assistant, observation)")
    rejected: list[Message] = Field(description="the bad leaf's continuation: its own steps (assistant, observation)")
    meta: dict[str, Any] = Field(default_factory=dict, description="env, task id, the leaves' ids, scores, depths")

    @model_validator(mode="after")
    def _well_formed(self) -> PreferencePair:
        if not self.prompt or self.prompt[-1].role == "assistant":
            raise ValueError("the prompt must be non-empty and end with a user (or system) message")
        for side in ("chosen", "rejected"):
            messages = getattr(self, side)
            if not messages or messages[0].role != "assistant":
                raise ValueError(f"{side} must be non-empty and start with an assistant message")
        return self

    def trl_record(self) -> dict[str, list[dict[str, str]]]:
        """TRL's conversational preference record: ``prompt`` / ``chosen`` / ``rejected`` as lists of
        ``{"role", "content"}`` messages (loss flags dropped; TRL applies the chat template)."""
        return {
            "prompt": trl_messages(self.prompt), "chosen": trl_messages(self.chosen),
            "rejected": trl_messages(self.rejected),
        }


def write_preferences(path: Path, pairs: Iterable[PreferencePair]) -> None:
    """Atomically write preference pairs as JSONL."""
    write_jsonl(path, (p.model_dump(mode="json") for p in pairs))


def read_preferences(path: Path, skip_bad: bool = False) -> list[PreferencePair]:
    """Read preference pairs from JSONL; a malformed record raises an error naming ``file: record N: field``
    (or is skipped with ``skip_bad``)."""
    path = Path(path)
    if not path.is_file():
        raise CourseCorrectError(f"preference pairs {path}: no such file")
    pairs = []
    for number, record in enumerate(read_jsonl(path, skip_bad=skip_bad), start=1):
        try:
            pairs.append(PreferencePair.model_validate(record))
        except ValidationError as exc:
            if not skip_bad:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"]) or "(record)"
                raise CourseCorrectError(f"{path}: record {number}: {where}: {problem['msg']}") from None
    return pairs
