"""The backend protocol: generate completions for a batch of chat conversations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from coursecorrect.text import replace_surrogates

ChatMessage = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``; extra keys are ignored."""

Chat = Sequence[ChatMessage]
"""A conversation as a backend reads it (the training schema is :class:`coursecorrect.data.Conversation`)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy decoding.

    Seeds: sample ``j`` of conversation ``i`` is drawn with seed ``s_i + j``, where ``s_i`` is ``seeds[i]``
    (one per conversation: a conversation's samples then do not depend on the other conversations of the
    call), else ``seed + i * n``, else ``base + i * n`` with a fresh random ``base`` per call.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def conversation_seeds(self, count: int, fresh: Callable[[], int]) -> list[int]:
        """``s_i`` of each of ``count`` conversations (see the class); ``fresh()`` gives an unseeded call's base."""
        if self.seeds is not None:
            if len(self.seeds) != count:
                raise ValueError(f"{len(self.seeds)} seeds for {count} conversations")
            return list(self.seeds)
        base = self.seed if self.seed is not None else fresh()
        return [base + i * self.n for i in range(count)]


@dataclass(frozen=True)
class Completion:
    """One sampled response. The text excludes the stop string and the end-of-turn token; model text is untrusted,
    so every backend's text passes :func:`replace_surrogates` here, where it enters, and can be written as UTF-8."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"] = "stop"

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", replace_surrogates(self.text))


@dataclass
class BackendStats:
    """Running totals a backend keeps, for progress bars and benchmarks."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class LLM(Protocol):
    """A chat LLM. ``generate`` returns, for each conversation, ``params.n`` completions of the next
    assistant turn, in order."""

    name: str
    stats: BackendStats

    def generate(
        self, conversations: Sequence[Chat], params: SamplingParams
    ) -> list[list[Completion]]:
        """Sample the next assistant turn of every conversation in one batched call.

        Returns one list per conversation, in the order given, of ``params.n`` completions each, seeded as
        :class:`SamplingParams` describes. Adds the call's tokens to ``stats``. Server backends raise
        :class:`~coursecorrect.errors.BackendError` when the server fails or the backend is closed.
        """

    def close(self) -> None: ...
