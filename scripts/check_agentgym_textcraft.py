"""Play every TextCraft goal's expert plan through the client env against an AgentGym TextCraft server and in
process, and count where they differ.

    python -m uvicorn agentenv_textcraft.server:app --port 36001   # in AgentGym's agentenv-textcraft folder
    python scripts/check_agentgym_textcraft.py http://127.0.0.1:36001
"""

from __future__ import annotations

import argparse
import time

from coursecorrect.envs.agentgym import AgentGymEnv
from coursecorrect.envs.textcraft import TextCraftEnv

HUGE_COUNT = "get " + "9" * 5000 + " oak log"  # AgentGym answers {"error": ...}; the client shows it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the server's base URL")
    args = parser.parse_args()
    local = TextCraftEnv()
    started = time.monotonic()
    steps = equal = same_goal = renumbered = 0
    with AgentGymEnv(args.url, as_env="textcraft") as remote:
        for task_id in range(local.num_tasks):
            first, native_first = remote.reset(task_id), local.reset(task_id)
            same_goal += local.task_key(first) == local.task_key(native_first)
            renumbered += remote._server_ids()[task_id] != task_id
            for action in ["jump", HUGE_COUNT, *local.expert_actions()]:
                steps += 1
                equal += remote.step(action) == local.step(action)
            assert remote.done and remote.reward == 1.0, f"task {task_id} not solved through the server"
    print(f"{local.num_tasks} goals, {renumbered} with another id on the server; same goal after mapping: {same_goal}")
    print(f"{steps} steps, {equal} with equal results ({local.num_tasks} of them the huge count, which differs)")
    print(f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
