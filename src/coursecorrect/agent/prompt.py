"""ReAct prompts: the instruction turn, "Ok.", the task's first observation, then Thought/Action turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coursecorrect.data.conversation import Message

ACK = "Ok."
TASK_MESSAGES = 3  # instruction, ack, first observation: never truncated


def episode_start(instruction: str, first_observation: str) -> list[Message]:
    """The messages every episode starts with."""
    return [
        Message(role="user", content=instruction),
        Message(role="assistant", content=ACK),
        Message(role="user", content=first_observation),
    ]


def approx_tokens(text: str) -> int:
    """A tokenizer-free length estimate (about 4 characters a token for English BPE vocabularies)."""
    return len(text) // 4 + 1


def truncate_context(
    messages: Sequence[Message], max_tokens: int, count_tokens: Callable[[str], int] = approx_tokens
) -> list[Message]:
    """Keep the instruction and task, drop the oldest (assistant, observation) pairs after them until the
    rest fits in ``max_tokens``; the newest turns are never dropped, even if they alone exceed it."""
    head, turns = list(messages[:TASK_MESSAGES]), list(messages[TASK_MESSAGES:])
    sizes = [count_tokens(m.content) for m in turns]
    budget = max_tokens - sum(count_tokens(m.content) for m in head)
    start = 0
    while sum(sizes[start:]) > budget and len(turns) - start > 2:
        start += 2
    return head + turns[start:]
