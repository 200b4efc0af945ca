"""Episode metrics: success, reward, steps, and Agent-R's loop metric."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from coursecorrect.data.conversation import Conversation

LOOP_LENGTHS = (1, 2, 3, 4)


def repeated_subsequences(actions: Sequence[str | None], length: int) -> int:
    """How often the agent redid an action sub-sequence of ``length`` it had already done: over all
    windows of that length, the occurrences beyond each distinct window's first."""
    windows = Counter(tuple(actions[i:i + length]) for i in range(len(actions) - length + 1))
    return sum(count - 1 for count in windows.values())


def summarize(episodes: Sequence[Conversation]) -> dict[str, Any]:
    """Success rate, average reward and steps, average repeats by length, and token totals."""
    n = len(episodes)
    metas = [e.meta for e in episodes]
    mean = (lambda values: sum(values) / n) if n else (lambda values: 0.0)
    return {
        "episodes": n,
        "success_rate": mean([float(m["success"]) for m in metas]),
        "average_reward": mean([m["reward"] for m in metas]),
        "average_steps": mean([m["steps"] for m in metas]),
        "repeated_actions": {
            str(k): mean([repeated_subsequences(m["actions"], k) for m in metas]) for k in LOOP_LENGTHS
        },
        "invalid_format_rate": (
            sum(a is None for m in metas for a in m["actions"]) / max(1, sum(len(m["actions"]) for m in metas))
        ),
        "errors": sum(m.get("error") is not None for m in metas),
        "prompt_tokens": sum(m["prompt_tokens"] for m in metas),
        "completion_tokens": sum(m["completion_tokens"] for m in metas),
    }
