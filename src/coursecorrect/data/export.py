"""Conversations in trainers' formats, with the per-message loss flags kept.

- ``hf``: a ``datasets.Dataset`` with columns ``messages`` (role, content, loss), ``weight`` and ``meta``
  (a JSON string), saved with ``save_to_disk``. Lossless.
- ``xtuner``: ``{"conversation": [{"system", "input", "output", "output_with_loss"}, ...]}``, one item per
  (user, assistant) turn; ``output_with_loss`` is the assistant message's loss flag. xtuner still trains the
  EOS token that closes an untrained output (its ``encode_fn`` adds EOS "with loss" either way).
- ``sharegpt`` (LLaMA-Factory): released LLaMA-Factory trains *every* assistant turn (or, with
  ``mask_history: true``, only the last one) and has no per-turn flag, so the default ``split`` style writes
  one record per trained assistant turn, cut right after it; train it with ``mask_history: true`` and each
  trained turn is learned exactly once, with exactly its original context, while untrained turns (the bad
  prefix of a revision, the "Ok." of the prompt) stay context only. The ``loss_mask`` style writes one
  record per conversation with a ``loss_mask`` list (1 = trained, one entry per ``conversations`` item), for
  LLaMA-Factory builds that read it (hiyouga/LlamaFactory pull request #9630, not merged when this was
  written); a release without it would silently train the bad prefix. dataset_info.json entry::

      "NAME": {"file_name": "FILE.json", "formatting": "sharegpt",
               "columns": {"messages": "conversations", "system": "system"}}

In ``xtuner`` and ``sharegpt`` the trailing observation (a user message after the last assistant turn, which
no loss reads) is dropped; they cannot carry per-example weights, so a weight other than 1 is an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import atomic_write_json, write_jsonl

if TYPE_CHECKING:
    import datasets

Format = Literal["hf", "sharegpt", "xtuner"]
ShareGPTStyle = Literal["split", "loss_mask"]
FORMATS: tuple[str, ...] = ("hf", "sharegpt", "xtuner")


def to_hf_dataset(conversations: Sequence[Conversation]) -> datasets.Dataset:
    """A ``datasets.Dataset``: messages with their loss flags, weight, and meta as a JSON string."""
    import datasets

    message = {"role": datasets.Value("string"), "content": datasets.Value("string"), "loss": datasets.Value("bool")}
    features = datasets.Features(
        {"messages": datasets.List(message), "weight": datasets.Value("float64"), "meta": datasets.Value("string")}
    )
    rows = {
        "messages": [[m.model_dump() for m in c.messages] for c in conversations],
        "weight": [c.weight for c in conversations],
        "meta": [json.dumps(c.meta, ensure_ascii=False) for c in conversations],
    }
    return datasets.Dataset.from_dict(rows, features=features)


def _turns(conversation: Conversation, number: int) -> tuple[str, list[tuple[str, Message]]]:
    """The system text and the (user text, assistant message) turns of a conversation that alternates
    user / assistant from a user message (after an optional system message); a trailing user message is
    dropped. Weights other than 1 cannot be exported."""
    if conversation.weight != 1.0:
        raise CourseCorrectError(
            f"conversation {number}: weight {conversation.weight:g} cannot be kept in this format; use hf"
        )
    messages = list(conversation.messages)
    system = messages.pop(0).content if messages and messages[0].role == "system" else ""
    if messages and len(messages) % 2:
        messages = messages[:-1]
    turns = []
    for user, assistant in zip(messages[::2], messages[1::2], strict=True):
        if user.role != "user" or assistant.role != "assistant":
            raise CourseCorrectError(f"conversation {number}: messages must alternate user / assistant "
                                     f"from a user message, got {user.role} then {assistant.role}")
        turns.append((user.content, assistant))
    if not turns:
        raise CourseCorrectError(f"conversation {number}: no assistant message to train on")
    return system, turns


def to_xtuner(conversations: Sequence[Conversation]) -> list[dict[str, Any]]:
    """xtuner's multi-turn format; each turn's ``output_with_loss`` is its assistant message's flag."""
    records = []
    for number, conversation in enumerate(conversations, start=1):
        system, turns = _turns(conversation, number)
        records.append({"conversation": [
            {"system": system if i == 0 else "", "input": user, "output": reply.content, "output_with_loss": reply.loss}
            for i, (user, reply) in enumerate(turns)
        ]})
    return records


def _sharegpt_record(system: str, turns: list[tuple[str, Message]]) -> dict[str, Any]:
    messages = []
    for user, reply in turns:
        messages += [{"from": "human", "value": user}, {"from": "gpt", "value": reply.content}]
    record: dict[str, Any] = {"conversations": messages}
    if system:
        record["system"] = system
    return record


def to_sharegpt(conversations: Sequence[Conversation], style: ShareGPTStyle = "split") -> list[dict[str, Any]]:
    """LLaMA-Factory ShareGPT records. ``split``: one record per trained assistant turn, ending with it (train
    with ``mask_history: true``); ``loss_mask``: one record per conversation with a ``loss_mask`` list."""
    records = []
    for number, conversation in enumerate(conversations, start=1):
        system, turns = _turns(conversation, number)
        if style == "loss_mask":
            record = _sharegpt_record(system, turns)
            record["loss_mask"] = [flag for _, reply in turns for flag in (0, int(reply.loss))]
            records.append(record)
        else:
            records += [_sharegpt_record(system, turns[: i + 1]) for i, (_, reply) in enumerate(turns) if reply.loss]
    return records


def export(
    conversations: Sequence[Conversation], fmt: Format, path: Path, sharegpt_style: ShareGPTStyle = "split"
) -> int:
    """Write ``conversations`` as ``fmt`` to ``path`` (hf: a ``save_to_disk`` folder; sharegpt / xtuner: a
    JSON array, or JSON lines when the name ends in ``.jsonl``). Returns the number of records written."""
    path = Path(path)
    if fmt == "hf":
        dataset = to_hf_dataset(conversations)
        dataset.save_to_disk(str(path))
        return len(dataset)
    if fmt == "sharegpt":
        records = to_sharegpt(conversations, sharegpt_style)
    elif fmt == "xtuner":
        records = to_xtuner(conversations)
    else:
        raise CourseCorrectError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if path.suffix == ".jsonl":
        write_jsonl(path, records)
    else:
        atomic_write_json(path, records, indent=None)
    return len(records)
