"""``check_env``: the contract every env must keep, checked on a live instance."""

from __future__ import annotations

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.errors import EnvError

PROBE_ACTIONS = ("", "inventory", "look", "get 1 x", "Ω" * 50)


def check_env(env: Env, task_id: int | None = None) -> None:
    """Raise ``EnvError`` describing the first broken rule: typed results, deterministic resets, bad
    actions answered with an observation, snapshot/restore reproducing what follows, valid split ids."""
    for split in env.splits:
        ids = env.task_ids(split)
        if not all(isinstance(i, int) and 0 <= i < env.num_tasks for i in ids):
            raise EnvError(f"{env.name}: split {split!r} holds ids outside 0..{env.num_tasks - 1}")
    if not isinstance(env.instruction, str) or not env.instruction:
        raise EnvError(f"{env.name}: instruction must be a non-empty str")
    task_id = env.task_ids(env.splits[0])[0] if task_id is None else task_id
    first = env.reset(task_id)
    if not isinstance(first, str) or first != env.reset(task_id):
        raise EnvError(f"{env.name}: reset({task_id}) must return the same str every time")
    results = []
    for action in PROBE_ACTIONS[:2]:
        results.append(_checked_step(env, action))
    snapshot = env.snapshot()
    after = [_checked_step(env, a).observation for a in PROBE_ACTIONS[2:] if not env.done]
    env.restore(snapshot)
    again = [_checked_step(env, a).observation for a in PROBE_ACTIONS[2:] if not env.done]
    if after != again:
        raise EnvError(f"{env.name}: observations after restore() differ from those after snapshot()")


def _checked_step(env: Env, action: str) -> StepResult:
    try:
        result = env.step(action)
    except Exception as exc:  # noqa: BLE001 - the point is to report any crash as a broken rule
        raise EnvError(f"{env.name}: step({action[:20]!r}) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, StepResult) or not isinstance(result.observation, str):
        raise EnvError(f"{env.name}: step() must return a StepResult with a str observation")
    return result
