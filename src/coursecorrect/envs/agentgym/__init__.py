"""AgentGym's HTTP env-server protocol, both sides: ``server`` serves any coursecorrect env over it, ``client``
plays an env that such a server hosts (``coursecorrect env serve`` or one of AgentGym's own servers).

The protocol (JSON over HTTP; env ids are ints):

- ``POST /create`` (body ``{}`` or ``{"data_idx": i}``; AgentGym's TextCraft refuses none): a new env at task
  ``i`` (default 0; AgentGym's TextCraft: the env's id) -> ``{"id", "observation", "reward", "done"}``
- ``POST /reset`` ``{"id", "data_idx"}`` -> ``{"id", "observation", "reward", "done"}``
- ``POST /step`` ``{"id", "action"}`` -> ``{"observation", "reward", "done"}`` (ours adds ``terminated`` and
  ``truncated``)
- ``GET /observation?id=`` -> the latest observation (a JSON string)
- ``POST /close`` ``{"id"}`` -> ``{"closed": true}``
- AgentGym's servers answer failures with HTTP 200 and ``{"error": "..."}``, an unknown id with
  ``{"error": "The id N is not valid."}``; ours with 4xx statuses
- ``GET /info`` (ours only) -> ``{"name", "num_tasks", "instruction", "max_steps", "splits", "live_envs",
  "max_envs"}``
"""

from coursecorrect.envs.agentgym.client import AgentGymEnv

__all__ = ["AgentGymEnv"]
