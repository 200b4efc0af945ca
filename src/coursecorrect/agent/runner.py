"""The episode runner: many episodes advance in lock-step, one batched backend call per step.

Each step renders every active episode's conversation, asks the backend for all next turns in one
``generate`` call, parses each action and steps each episode's env. Finished episodes free their slot for
the next task. Prompts grow by one turn a step, so a backend with prefix caching prefills only the new turn.
Each turn samples with a seed of its own (:func:`turn_seed`), so an episode does not depend on which episodes
share its calls: a resumed evaluation samples exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from coursecorrect.agent.parsing import NO_ACTION_OBSERVATION, parse_action
from coursecorrect.agent.prompt import approx_tokens, episode_start, truncate_context
from coursecorrect.config import MAX_SIZE, MAX_TOKENS, Config, Seed
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.envs.base import Env
from coursecorrect.errors import EnvError
from coursecorrect.llm.base import LLM, SamplingParams


class AgentConfig(Config):
    """How the agent samples and how much context it keeps."""

    batch_size: int = Field(8, ge=1, le=MAX_SIZE, description="episodes advanced together (one backend call per step)")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling (1 = the whole distribution)")
    max_new_tokens: int = Field(128, ge=1, le=MAX_TOKENS, description="tokens per turn (Thought + Action)")
    stop: list[str] = Field(default_factory=lambda: ["\nObservation"], description="cut a turn at these")
    max_context_tokens: int = Field(3500, ge=256, le=MAX_TOKENS, description="older turns are dropped beyond this")
    seed: Seed = Field(0, description="sampling seed")


@dataclass
class Episode:
    """One played task. ``messages`` are the whole conversation (agent turns carry ``loss=True``)."""

    env: str
    task_id: int
    messages: list[Message]
    actions: list[str | None] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    start_step: int = 0  # actions replayed from a given prefix (see EpisodeStart), not played by the model

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated or self.error is not None

    @property
    def success(self) -> bool:
        return self.reward >= 1.0

    def to_conversation(self) -> Conversation:
        meta = {
            "env": self.env, "task_id": self.task_id, "reward": self.reward, "success": self.success,
            "steps": len(self.actions), "actions": self.actions, "terminated": self.terminated,
            "truncated": self.truncated, "error": self.error, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
        if self.start_step:
            meta["start_step"] = self.start_step
        return Conversation(messages=self.messages, meta=meta)


@dataclass(frozen=True)
class EpisodeStart:
    """A task to continue from a recorded prefix: the env replays ``actions`` (None = a turn without an
    action) and the agent sees ``messages`` (the prefix's whole conversation) before its next turn."""

    task_id: int
    messages: tuple[Message, ...]
    actions: tuple[str | None, ...]


@dataclass
class _Slot:
    env: Env
    episode: Episode | None = None


def run_episodes(
    make_env: Callable[[], Env],
    llm: LLM,
    task_ids: Sequence[int | EpisodeStart],
    config: AgentConfig,
    max_rounds: int | None = None,
) -> Iterator[Episode]:
    """Play every task in ``task_ids`` with ``llm``; yield each episode as soon as it ends. At most
    ``config.batch_size`` envs are alive at once and are reused across tasks. An :class:`EpisodeStart`
    continues a recorded prefix; ``max_rounds`` caps the model's own turns (default: the env's step limit)."""
    queue: deque[int | EpisodeStart] = deque(task_ids)
    slots: list[_Slot] = []
    count_tokens = getattr(llm, "count_tokens", approx_tokens)
    try:
        while queue or any(s.episode for s in slots):
            _fill(slots, queue, make_env, config.batch_size)
            active = [s for s in slots if s.episode is not None]
            prompts = [
                [{"role": m.role, "content": m.content}
                 for m in truncate_context(s.episode.messages, config.max_context_tokens, count_tokens)]
                for s in active
            ]
            params = SamplingParams(
                temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens,
                stop=tuple(config.stop), seeds=tuple(turn_seed(config.seed, s.episode) for s in active),
            )
            for slot, samples in zip(active, llm.generate(prompts, params), strict=True):
                _advance(slot, samples[0].text, samples[0].prompt_tokens, samples[0].completion_tokens, max_rounds)
                if slot.episode.done:
                    yield slot.episode
                    slot.episode = None
    finally:
        for slot in slots:
            slot.env.close()


def turn_seed(seed: int, episode: Episode) -> int:
    """The sampling seed of ``episode``'s next turn: a hash of ``seed``, its task, the step it started from
    and the turn, below 2**30 (so ``seed + j`` stays a 31-bit integer for any server)."""
    key = f"coursecorrect-episode:{seed}:{episode.task_id}:{episode.start_step}:{len(episode.actions)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> 2


def _fill(
    slots: list[_Slot], queue: deque[int | EpisodeStart], make_env: Callable[[], Env], batch_size: int
) -> None:
    """Start queued tasks in free slots (creating envs up to ``batch_size``)."""
    while queue:
        slot = next((s for s in slots if s.episode is None), None)
        if slot is None:
            if len(slots) >= batch_size:
                return
            slot = _Slot(make_env())
            slots.append(slot)
        task = queue.popleft()
        if isinstance(task, EpisodeStart):
            slot.episode = _replay(slot.env, task)
        else:
            first = slot.env.reset(task)
            slot.episode = Episode(slot.env.name, task, episode_start(slot.env.instruction, first))


def _replay(env: Env, start: EpisodeStart) -> Episode:
    """Reset ``env`` to ``start.task_id`` and replay the prefix's actions; the episode continues after them."""
    env.reset(start.task_id)
    for action in start.actions:
        if action is not None:
            env.step(action)
    actions = list(start.actions)
    return Episode(env.name, start.task_id, list(start.messages), actions, start_step=len(actions))


def _advance(
    slot: _Slot, response: str, prompt_tokens: int, completion_tokens: int, max_rounds: int | None = None
) -> None:
    """Record the agent's turn, act on it, and record the observation."""
    episode, env = slot.episode, slot.env
    episode.messages.append(Message(role="assistant", content=response, loss=True))
    episode.prompt_tokens += prompt_tokens
    episode.completion_tokens += completion_tokens
    action = parse_action(response)
    episode.actions.append(action)
    if action is None:
        observation = NO_ACTION_OBSERVATION
    else:
        try:
            result = env.step(action)
        except EnvError as failure:  # the env broke (e.g. a server died): end this episode, keep the rest
            episode.error = str(failure)
            return
        observation, episode.reward = result.observation, result.reward
        episode.terminated, episode.truncated = result.terminated, result.truncated
    episode.messages.append(Message(role="user", content=observation))
    rounds = len(episode.actions) - episode.start_step
    if not episode.done and (len(episode.actions) >= env.max_steps or (max_rounds and rounds >= max_rounds)):
        episode.truncated = True
