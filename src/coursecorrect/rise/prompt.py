"""The RISE dialogue: instruction, a one-shot demo, the question, then each attempt followed by the feedback.

    system     the env's instruction
    user       demo question          assistant  demo response
    user       question
    assistant  attempt 1              user       "The answer is incorrect. Please try again. Here's the question: ..."
    assistant  attempt 2              ...

With a sliding ``window`` of k, only the k most recent attempts (each with its feedback) stay in context.
"""

from __future__ import annotations

from collections.abc import Sequence

from coursecorrect.envs.math import FEEDBACK, MathEnv
from coursecorrect.errors import ConfigError
from coursecorrect.llm import ChatMessage


def rise_messages(
    instruction: str, demo: Sequence[str] | None, question: str, attempts: Sequence[str], window: int | None = None
) -> list[ChatMessage]:
    """The conversation that asks for the next attempt after ``attempts`` (all told they were incorrect)."""
    messages: list[ChatMessage] = [{"role": "system", "content": instruction}]
    if demo:
        messages += [{"role": "user", "content": demo[0]}, {"role": "assistant", "content": demo[1]}]
    messages.append({"role": "user", "content": question})
    kept = attempts[-window:] if window else attempts
    for attempt in kept:
        messages += [{"role": "assistant", "content": attempt},
                     {"role": "user", "content": FEEDBACK.format(question=question)}]
    return messages


def math_env(env: object) -> MathEnv:
    """``env`` if it is a math env (RISE needs whole-answer grading and a demo), else a clear error."""
    if not isinstance(env, MathEnv):
        raise ConfigError(f"RISE needs a math env (gsm8k, math, reasoning-gym), not {getattr(env, 'name', env)!r}")
    return env


def is_degenerate(text: str, n: int = 3, min_ngrams: int = 12, max_repeat_share: float = 0.5) -> bool:
    """Degenerate repetition: over ``max_repeat_share`` of the word ``n``-grams of a long response are repeats
    (a model looping on one phrase). Short responses are never degenerate."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < min_ngrams:
        return False
    return 1 - len(set(grams)) / len(grams) > max_repeat_share
