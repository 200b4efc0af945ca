"""TextCraft env speed: steps per second on one core, and snapshot+restore vs reset+replay.

    python bench/textcraft_env.py [--seconds 3]

Targets: >= 20,000 steps/s; snapshot+restore >= 10x faster than reset + replay of a 10-step prefix.
"""

from __future__ import annotations

import argparse
import os
import time

from coursecorrect.envs.textcraft import TextCraftEnv


def rate(fn, seconds: float) -> tuple[float, int]:
    """Calls per second of ``fn`` over about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        calls += 100
    return calls / elapsed, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    env = TextCraftEnv(max_steps=10**9)
    env.reset(300)
    plan = env.expert_actions()
    mix = [*plan[:-1], "inventory", "get 1 stick", "craft 4 stick using 3 oak planks", "jump"]
    position = 0

    def one_step() -> None:
        nonlocal position
        env.step(mix[position % len(mix)])
        position += 1

    steps_per_s, steps = rate(one_step, args.seconds)
    print(f"goal {env.goal}: {steps_per_s:,.0f} steps/s ({steps:,} steps of a {len(mix)}-action mix; target 20,000)")

    env = TextCraftEnv(max_steps=100)
    env.reset(300)
    prefix = (mix * 3)[:10]
    for action in prefix:
        env.step(action)

    def replay() -> None:
        env.reset(300)
        for action in prefix:
            env.step(action)

    replay_per_s, _ = rate(replay, args.seconds)
    restore_per_s, _ = rate(lambda: env.restore(env.snapshot()), args.seconds)
    print(f"reset + replay of 10 steps: {replay_per_s:,.0f}/s;  snapshot + restore: {restore_per_s:,.0f}/s;  "
          f"ratio {restore_per_s / replay_per_s:.1f}x (target 10x)")


if __name__ == "__main__":
    main()
