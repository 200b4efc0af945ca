"""RISE training data: reward-weighted regression over the collected rollouts.

Each kept turn of a rollout becomes one example: the dialogue up to that turn (earlier attempts in context,
loss off) and the turn's response (loss on). Its weight is ``exp(r / τ)`` (τ = 0.4: correct ≈ 12.2,
wrong 1.0, unparseable ≈ 0.08 when penalised), or with ``weighting="advantage"`` ``exp((r - mean r) / τ)``
where the mean runs over the rollout's turns (the paper's centred variant).

The shared trainer normalises by supervised tokens (``Σ w·NLL / N``), so an example's share of the loss is
its weight times its summed token loss — RISE's released code instead averages each example's token loss
before weighting; both give a correct turn exp(1/τ) times the pull of a wrong one per token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from coursecorrect.config import MAX_STEPS, Config
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.errors import CourseCorrectError
from coursecorrect.rise.prompt import rise_messages
from coursecorrect.rise.records import Rollout, parse_rollouts


class RiseDataConfig(Config):
    """Which turns become examples and how they are weighted."""

    criterion: Literal["all", "better", "best", "success"] = Field(
        "all", description="all turns; better: turns beating the previous one (turn 1: a correct one); "
        "best: the highest-reward turn of each rollout; success: correct turns only"
    )
    tau: float = Field(0.4, gt=0, description="temperature τ of the weights exp(r / τ)")
    weighting: Literal["exp", "advantage", "uniform"] = Field(
        "exp", description="exp(r/τ); advantage: exp((r - mean over the rollout's turns)/τ); uniform: 1"
    )
    penalize_unparseable: bool = Field(False, description="reward -1 (not 0) for attempts with no readable answer")
    dedup: bool = Field(True, description="drop examples repeating an earlier (context, response) pair")
    window: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="keep only the last k attempts in context (as at collection)"
    )


def reward(grade: float, penalize_unparseable: bool) -> float:
    """The reward of a graded attempt: 1 correct, 0 wrong, -1 or 0 unreadable."""
    return grade if penalize_unparseable else max(grade, 0.0)


def kept_turns(rewards: list[float], criterion: str) -> list[int]:
    """The indices of the turns that ``criterion`` keeps."""
    if criterion == "all":
        return list(range(len(rewards)))
    if criterion == "success":
        return [t for t, r in enumerate(rewards) if r >= 1]
    if criterion == "best":
        return [max(range(len(rewards)), key=lambda t: rewards[t])] if rewards else []
    return [t for t, r in enumerate(rewards) if r > (rewards[t - 1] if t else 0.0)]


def weight(r: float, rewards: list[float], config: RiseDataConfig) -> float:
    if config.weighting == "uniform":
        return 1.0
    centre = sum(rewards) / len(rewards) if config.weighting == "advantage" else 0.0
    return math.exp((r - centre) / config.tau)


def _weight_of(rollout: Rollout, turn: int, rewards: list[float], config: RiseDataConfig) -> float:
    """:func:`weight` of a turn; one that overflows (it would make the training loss inf) is an error."""
    try:
        return weight(rewards[turn], rewards, config)
    except OverflowError:
        raise CourseCorrectError(
            f"rollout of task {rollout.task_id}, turn {turn}: its weight exp(r / tau) overflows with "
            f"tau = {config.tau:g}; raise tau"
        ) from None


def rise_examples(
    records: Sequence[Rollout | Mapping[str, Any]], config: RiseDataConfig
) -> tuple[list[Conversation], dict]:
    """The weighted examples of the rollouts (or their JSON records; an unusable one, e.g. with a grade that is
    not a finite number, is an error) and counts of what was kept."""
    rollouts = parse_rollouts(records)
    examples: list[Conversation] = []
    seen: set[tuple[str, ...]] = set()
    duplicates = 0
    for rollout in rollouts:
        turns = rollout.turns
        rewards = [reward(turn.grade, config.penalize_unparseable) for turn in turns]
        for t in kept_turns(rewards, config.criterion):
            attempts = [turn.response for turn in turns[:t]]
            context = rise_messages(rollout.instruction, rollout.demo, rollout.question, attempts, config.window)
            key = tuple(m["content"] for m in context) + (turns[t].response,)
            if config.dedup and key in seen:
                duplicates += 1
                continue
            seen.add(key)
            messages = [Message(role=m["role"], content=m["content"]) for m in context]
            messages.append(Message(role="assistant", content=turns[t].response, loss=True))
            examples.append(Conversation(
                messages=messages, weight=_weight_of(rollout, t, rewards, config),
                meta={"env": rollout.env, "task_id": rollout.task_id, "turn": t, "reward": rewards[t],
                      "model": turns[t].model},
            ))
    rewards_kept = [e.meta["reward"] for e in examples]
    counts = {
        "rollouts": len(rollouts), "examples": len(examples), "duplicates_dropped": duplicates,
        "correct_examples": sum(r >= 1 for r in rewards_kept),
        "examples_per_turn": [sum(e.meta["turn"] == t for e in examples)
                              for t in range(max((len(r.turns) for r in rollouts), default=0))],
        "mean_weight": round(sum(e.weight for e in examples) / max(len(examples), 1), 4),
    }
    return examples, counts
