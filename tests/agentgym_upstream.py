"""A server that speaks AgentGym's TextCraft protocol the way AgentGym's own server does, for the client's tests.

Behaviour observed on AgentGym's ``agentenv-textcraft`` server (FastAPI, run with uvicorn), reproduced here over
coursecorrect's TextCraft game:

- ``POST /create`` requires a JSON body (``{}`` will do; none is a 422) and starts env ``id`` at task ``id``.
- Failures are HTTP 200 with ``{"error": "..."}``: an unknown id is ``"The id N is not valid."``, a count of
  thousands of digits fails Python's ``int`` ("Exceeds the limit (4300 digits) ...").
- Steps after the goal is crafted go on being played.
- ``/close`` answers ``true`` or ``false``; there is no ``/info``.
- Task ids follow the order ``os.listdir`` gave the recipe files, so server task k is another goal than ours:
  here a fixed shuffle of our numbering.
- A restart forgets every env and numbers new ones from 0 again.
"""

from __future__ import annotations

import random
import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from coursecorrect.envs.base import StepResult
from coursecorrect.envs.textcraft import TextCraftEnv

GET_COUNT = re.compile(r"get ([0-9]+) ")


class CreateBody(BaseModel):
    commands: str | None = None
    goal: str | None = None


class StepBody(BaseModel):
    id: int
    action: str


class ResetBody(BaseModel):
    id: int
    data_idx: int | None = 0


class CloseBody(BaseModel):
    id: int


def server_order(num_tasks: int, seed: int = 7) -> list[int]:
    """Our task id of each server task id."""
    order = list(range(num_tasks))
    random.Random(seed).shuffle(order)
    return order


class UpstreamTextCraft:
    """The server's envs; ``app`` serves them."""

    def __init__(self) -> None:
        self.envs: dict[int, TextCraftEnv] = {}
        self.last: dict[int, str] = {}  # each env's latest observation
        self.next_id = 0
        self.order = server_order(TextCraftEnv().num_tasks)
        self.app = FastAPI()
        self.app.post("/create")(self.create)
        self.app.post("/step")(self.step)
        self.app.post("/reset")(self.reset)
        self.app.get("/observation")(self.observation)
        self.app.post("/close")(self.close)

    def restart(self) -> None:
        """What a restarted server knows: nothing."""
        self.envs, self.last, self.next_id = {}, {}, 0

    def _play(self, env_id: int, data_idx: int) -> dict[str, Any]:
        self.last[env_id] = self.envs[env_id].reset(self.order[data_idx % len(self.order)])
        return {"id": env_id, "observation": self.last[env_id], "done": False, "reward": 0}

    def create(self, body: CreateBody) -> dict[str, Any]:
        env_id, self.next_id = self.next_id, self.next_id + 1
        self.envs[env_id] = TextCraftEnv(max_steps=10**9)
        return self._play(env_id, env_id)

    def _env(self, env_id: int) -> TextCraftEnv:
        if env_id not in self.envs:
            raise NameError(f"The id {env_id} is not valid.")
        return self.envs[env_id]

    def step(self, body: StepBody) -> dict[str, Any]:
        try:
            env = self._env(body.id)
            if match := GET_COUNT.match(body.action):
                int(match.group(1))  # AgentGym's parser: fails beyond 4,300 digits
            result: StepResult = env._step(body.action)  # no episode end: AgentGym steps on after success
        except Exception as exc:
            return {"error": str(exc)}
        self.last[body.id] = result.observation
        return {"observation": result.observation, "reward": result.reward, "done": result.terminated}

    def reset(self, body: ResetBody) -> dict[str, Any]:
        try:
            self._env(body.id)
            return self._play(body.id, body.data_idx or 0)
        except Exception as exc:
            return {"error": str(exc)}

    def observation(self, id: int) -> Any:  # noqa: A002 - AgentGym's parameter name
        try:
            self._env(id)
            return self.last[id]
        except Exception as exc:
            return {"error": str(exc)}

    def close(self, body: CloseBody) -> bool:
        self.last.pop(body.id, None)
        return self.envs.pop(body.id, None) is not None
