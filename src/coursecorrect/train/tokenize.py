"""Conversations → token ids and loss labels: only assistant messages flagged ``loss=True`` are supervised.

A supervised message contributes its content tokens and its end-of-turn token (``<|im_end|>``), never its
role header (``<|im_start|>assistant\\n``) nor the newline after the end of turn.

Spans come from the chat template's ``{% generation %}`` markers (``return_assistant_tokens_mask``): the
k-th marked run of tokens is the k-th assistant message. When a template has no markers (most hub models'
templates) or its runs do not pair one-to-one with the assistant messages, each assistant message is found
by rendering prefixes instead: it spans from the end of ``messages[:i]`` rendered with the generation prompt
to the end of ``messages[:i+1]`` rendered, trailing whitespace excluded — content plus end-of-turn token for
ChatML, Llama-3 and Gemma templates alike. A template that does not render prefixes consistently raises
:class:`~coursecorrect.errors.CourseCorrectError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from coursecorrect.data.conversation import Conversation
from coursecorrect.errors import CourseCorrectError

IGNORE_INDEX = -100
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
_CHUNK = 256  # conversations rendered and tokenized per batched call


@dataclass
class TokenStats:
    """Counts of one tokenization pass (kept examples only in the token totals)."""

    examples: int = 0
    dropped: int = 0  # no supervised token (none flagged, or all cut by truncation)
    truncated: int = 0  # longer than max_length, cut on the right (dropped ones included)
    supervised_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of ones in a 0/1 array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _prefix_spans(tokenizer: Any, chat: list[dict[str, str]]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``chat`` and the token span of each assistant message, found by rendering prefixes."""
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = np.array([start for start, _ in encoding["offset_mapping"]], dtype=np.int64)
    spans = []
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False).rstrip()
        if not (upto.startswith(before) and text.startswith(upto)):
            raise CourseCorrectError(
                "the chat template neither marks assistant turns with {% generation %} nor renders a conversation's "
                "prefixes as prefixes of its full text; set tokenizer.chat_template to one with generation markers "
                "(e.g. coursecorrect.llm.models.CHATML_GENERATION_TEMPLATE)"
            )
        first, end = np.searchsorted(starts, [len(before), len(upto)]).tolist()
        spans.append((first, end))
    return encoding["input_ids"], spans


def _label(
    ids: list[int], spans: list[tuple[int, int]], conversation: Conversation, max_length: int
) -> tuple[dict[str, Any] | None, bool, int]:
    """(example or None when nothing is supervised, whether it was truncated, supervised tokens)."""
    trained = [m.loss for m in conversation.messages if m.role == "assistant"]
    ids_array = np.asarray(ids, dtype=np.int64)
    labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    for (start, end), loss in zip(spans, trained, strict=True):
        if loss:
            labels[start:end] = ids_array[start:end]
    labels[:1] = IGNORE_INDEX  # nothing precedes the first token to predict it from
    truncated = len(ids) > max_length
    labels = labels[:max_length]
    supervised = int((labels != IGNORE_INDEX).sum())
    if not supervised:
        return None, truncated, 0
    example = {"input_ids": list(ids[:max_length]), "labels": labels.tolist(), "weight": conversation.weight}
    return example, truncated, supervised


def tokenize_conversations(
    tokenizer: Any, conversations: Sequence[Conversation], max_length: int
) -> tuple[list[dict[str, Any]], TokenStats]:
    """Tokenize many conversations (batched through the fast tokenizer) into training examples
    ``{"input_ids", "labels", "weight"}``, and count what was kept, dropped and truncated."""
    if max_length < 2:
        raise CourseCorrectError(f"max_length must be >= 2, got {max_length}")
    try:
        marked = bool(_GENERATION_TAG.search(tokenizer.get_chat_template()))
    except ValueError as exc:  # no chat template at all
        raise CourseCorrectError(f"cannot tokenize conversations: {exc}") from None
    examples, stats = [], TokenStats()
    for offset in range(0, len(conversations), _CHUNK):
        chunk = conversations[offset : offset + _CHUNK]
        chats = [c.chat() for c in chunk]
        rendered = None
        if marked:
            rendered = tokenizer.apply_chat_template(
                chats, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
        for row, (conversation, chat) in enumerate(zip(chunk, chats, strict=True)):
            n_assistant = sum(m["role"] == "assistant" for m in chat)
            spans = _runs(np.asarray(rendered["assistant_masks"][row])) if rendered is not None else []
            if rendered is not None and len(spans) == n_assistant:
                ids = rendered["input_ids"][row]
            else:
                ids, spans = _prefix_spans(tokenizer, chat)
            example, truncated, supervised = _label(ids, spans, conversation, max_length)
            stats.truncated += truncated
            if example is None:
                stats.dropped += 1
                continue
            examples.append(example)
            stats.examples += 1
            stats.total_tokens += len(example["input_ids"])
            stats.supervised_tokens += supervised
    return examples, stats


def tokenize_conversation(tokenizer: Any, conversation: Conversation, max_length: int) -> dict[str, Any] | None:
    """One training example ``{"input_ids", "labels", "weight"}`` (right-truncated to ``max_length``), or
    ``None`` when no supervised token is left."""
    examples, _ = tokenize_conversations(tokenizer, [conversation], max_length)
    return examples[0] if examples else None
