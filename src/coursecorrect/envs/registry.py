"""The env registry: the in-process envs that configs and the command line name by string.

Apart from :mod:`coursecorrect.envs`, which adds the ``agentgym:<url>`` names of remote envs on top, so that the
AgentGym client can build the in-process env its ``as_env`` option names without importing the package that
imports it.
"""

from __future__ import annotations

from typing import Any

from coursecorrect.envs.base import Env
from coursecorrect.errors import ConfigError
from coursecorrect.registry import Registry

ENVS: Registry[Env] = Registry("env", Env)
ENVS.register("textcraft", "coursecorrect.envs.textcraft.env:TextCraftEnv")
ENVS.register("gsm8k", "coursecorrect.envs.math.env:GSM8KEnv")
ENVS.register("math", "coursecorrect.envs.math.env:MATHEnv")
ENVS.register("reasoning-gym", "coursecorrect.envs.math.reasoning_gym:ReasoningGymEnv")
ENVS.register("sciworld", "coursecorrect.envs.sciworld.env:SciWorldEnv")
ENVS.register("twx", "coursecorrect.envs.twx.env:TextWorldExpressEnv")


def register_env(name: str, target: str | type[Env], overwrite: bool = False) -> None:
    """Make an env class available to configs and the CLI under ``name``."""
    ENVS.register(name, target, overwrite=overwrite)


def make_registered_env(name: str, **kwargs: Any) -> Env:
    """Instantiate the env registered as ``name`` with constructor ``kwargs``."""
    return construct_env(name, ENVS.get(name), kwargs)


def construct_env(name: str, cls: type[Env], kwargs: dict[str, Any]) -> Env:
    """``cls(**kwargs)``, with a constructor's complaint about its arguments told as a bad option of env ``name``."""
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"env {name!r}: bad options {kwargs}: {exc}") from None
