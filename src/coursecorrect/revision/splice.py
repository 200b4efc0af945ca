"""Splicing a revision trajectory: bad prefix, revision turn, good continuation (Agent-R, stage 2).

    root messages                         (instruction, "Ok.", first observation; never trained)
    bad path, steps 1..t'                 (assistant loss=False, observations)
    "Thought: {revision thought}\\nAction: wait"   (loss=True)   "ok."
    good path, steps after the shared prefix      (assistant loss=True, observations)

The shared prefix is the run of steps, from the root, that both paths take through the same tree node.
"""

from __future__ import annotations

from typing import Any

from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.revision.pairs import Pair

REVISION_THOUGHTS = (
    "I realize my approach was flawed. I need to revise it.",
    "I took the wrong actions. I need to identify the right path.",
    "My actions were incorrect. I must adjust my strategy.",
    "I see an error in my actions. I need to fix it.",
    "My decision was wrong. I should reevaluate.",
    "I recognize my mistake. Let's find a better solution.",
    "My judgment was incorrect. I need to rethink it.",
    "I made an error. I must determine how to correct it.",
    "I overlooked something important. I need to address it.",
    "I recognize my failure. I need to learn and move forward.",
)
REVISION_ACTION = "wait"
REVISION_OBSERVATION = "ok."


def splice(
    pair: Pair, t_prime: int, thought: str, critic: str = "direct", extra_meta: dict[str, Any] | None = None
) -> Conversation:
    """The revision trajectory of ``pair`` with the bad path cut after step ``t_prime`` (clamped into the
    bad path's own steps, see :meth:`Pair.clamp`). ``extra_meta`` is merged into the meta."""
    shared = pair.shared_steps
    t_prime = pair.clamp(t_prime)
    messages = [m.model_copy(update={"loss": False}) for m in pair.tree.root_messages]
    for step in pair.bad.path()[1 : t_prime + 1]:
        messages.append(Message(role="assistant", content=step.response or "", loss=False))
        messages.append(Message(role="user", content=step.observation))
    messages.append(Message(role="assistant", content=f"Thought: {thought}\nAction: {REVISION_ACTION}", loss=True))
    messages.append(Message(role="user", content=REVISION_OBSERVATION))
    for step in pair.good.path()[shared + 1 :]:
        messages.append(Message(role="assistant", content=step.response or "", loss=True))
        messages.append(Message(role="user", content=step.observation))
    meta = {
        "env": pair.tree.env, "task_id": pair.tree.task_id, "kind": "revision",
        "bad_node": pair.bad.id, "bad_score": pair.bad.score, "bad_depth": pair.bad.depth,
        "good_node": pair.good.id, "good_score": pair.good.score, "good_depth": pair.good.depth,
        "t_prime": t_prime, "divergence": shared, "critic": critic, **(extra_meta or {}),
    }
    return Conversation(messages=messages, meta=meta)
