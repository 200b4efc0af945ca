"""Test doubles for the search tests: a tiny deterministic env and a policy that answers from the prompt."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.llm.base import BackendStats, Chat, Completion, SamplingParams


class WalkEnv(Env):
    """Walk along a line from 0 to the goal (2 for even task ids, 3 for odd ones).

    Observation: "You are at N." Action: ``right``, ``left`` (not below 0), ``fall`` (ends the episode with
    reward 0). Reward: 1 when the goal is reached. Episode end: goal reached, a fall, or ``max_steps``.
    """

    name = "walk"

    def __init__(self, max_steps: int = 100) -> None:
        super().__init__(max_steps)
        self.position = 0
        self.goal = 2
        self.resets = 0

    @property
    def instruction(self) -> str:
        return "Walk right to the goal. Answer 'Action: right', 'Action: left' or 'Action: fall'."

    @property
    def num_tasks(self) -> int:
        return 10

    def task_ids(self, split: str) -> list[int]:
        self._check_split(split, ["train", "test"])
        return list(range(8)) if split == "train" else [8, 9]

    def _reset(self, task_id: int) -> str:
        self.resets += 1
        self.position, self.goal = 0, 2 + task_id % 2
        return f"Task {task_id}: reach {self.goal}. You are at 0."

    def _step(self, action: str) -> StepResult:
        if action == "fall":
            return StepResult("You fell.", 0.0, terminated=True)
        if action in ("right", "left"):
            self.position = max(0, self.position + (1 if action == "right" else -1))
            if self.position == self.goal:
                return StepResult(f"You reached {self.goal}!", 1.0, terminated=True)
            return StepResult(f"You are at {self.position}.")
        return StepResult(f"Unknown action {action}.")

    def _get_state(self) -> tuple[int, int]:
        return self.position, self.goal

    def _set_state(self, state: tuple[int, int]) -> None:
        self.position, self.goal = state


class ReplayWalkEnv(WalkEnv):
    """The same env without state copies: every restore resets and replays."""

    _get_state = Env._get_state


Respond = Callable[[Chat, int], str]


def hashed_policy(choices: Sequence[str]) -> Respond:
    """A pseudo-random but deterministic policy: sample ``j`` of a prompt picks from ``choices`` by a hash of
    the prompt's last message, its length and ``j`` (so results never depend on batch composition)."""

    def respond(conversation: Chat, j: int) -> str:
        key = f"{conversation[-1]['content']}|{len(conversation)}|{conversation[2]['content']}|{j}"
        digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
        return choices[digest % len(choices)]

    return respond


class PolicyLLM:
    """An LLM double: sample ``j`` of a conversation is ``respond(conversation, j)``. Records each call's
    ``(n, number of conversations)`` and prompts; raises ``Crash`` on call number ``crash_at`` (from 1)."""

    name = "policy-double"

    def __init__(self, respond: Respond, crash_at: int | None = None) -> None:
        self.respond = respond
        self.crash_at = crash_at
        self.stats = BackendStats()
        self.calls: list[tuple[int, int]] = []
        self.prompts: list[list[dict[str, str]]] = []

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        if self.crash_at is not None and len(self.calls) + 1 >= self.crash_at:
            raise Crash(f"simulated crash at call {len(self.calls) + 1}")
        self.calls.append((params.n, len(conversations)))
        self.stats.calls += 1
        out = []
        for conversation in conversations:
            self.prompts.append([dict(m) for m in conversation])
            texts = [self.respond(conversation, j) for j in range(params.n)]
            tokens = [len(t.split()) for t in texts]
            self.stats.prompt_tokens += 10 * params.n
            self.stats.completion_tokens += sum(tokens)
            pairs = zip(texts, tokens, strict=True)
            out.append([Completion(t, prompt_tokens=10, completion_tokens=k) for t, k in pairs])
        return out

    def close(self) -> None:
        pass


class Crash(RuntimeError):
    """The simulated crash (kill -9 stand-in)."""
