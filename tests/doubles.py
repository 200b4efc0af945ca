"""Test doubles: a scripted LLM that answers from a function of the prompt (never a product path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coursecorrect.llm.base import BackendStats, Chat, Completion, SamplingParams


class ScriptedLLM:
    """Answers each conversation with ``respond(conversation)``; records every call's batch size."""

    name = "scripted"

    def __init__(self, respond: Callable[[Chat], str]) -> None:
        self.respond = respond
        self.stats = BackendStats()
        self.batch_sizes: list[int] = []

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        self.batch_sizes.append(len(conversations))
        self.stats.calls += 1
        out = []
        for conversation in conversations:
            text = self.respond(conversation)
            self.stats.completion_tokens += len(text.split())
            out.append([Completion(text, prompt_tokens=10, completion_tokens=len(text.split()))] * params.n)
        return out

    def close(self) -> None:
        pass
