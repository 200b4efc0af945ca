"""Text environments: the protocol, the registry, and configs that name envs by string.

Register your own env with ``register_env("myenv", MyEnv)`` or ``register_env("myenv", "pkg.mod:MyEnv")``.
The name ``agentgym:<url>`` plays an env hosted by an AgentGym-style HTTP server (``coursecorrect.envs.agentgym``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from coursecorrect.config import MAX_STEPS, Config
from coursecorrect.envs.base import Env, Snapshot, StepResult
from coursecorrect.envs.registry import ENVS, construct_env, make_registered_env, register_env
from coursecorrect.errors import UnknownNameError

AGENTGYM_PREFIX = "agentgym:"


def make_env(name: str, **kwargs: Any) -> Env:
    """Instantiate the env registered as ``name`` (or served at ``agentgym:<url>``) with constructor ``kwargs``."""
    if name.startswith(AGENTGYM_PREFIX):
        from coursecorrect.envs.agentgym import AgentGymEnv

        return construct_env(name, AgentGymEnv, {"url": name.removeprefix(AGENTGYM_PREFIX), **kwargs})
    return make_registered_env(name, **kwargs)


ENV_OPTION_HELP = (
    "An env option (constructor argument) KEY=VALUE, VALUE read as JSON if it parses, else as text; repeatable: "
    "--env-option num_tasks=544 --env-option instruction='...'."
)
"""The command line's help text of ``--env-option``."""


class EnvConfig(Config):
    """Which env to play, and how."""

    name: str = Field("textcraft", description="registered env name, e.g. 'textcraft'")
    max_steps: int = Field(100, ge=1, le=MAX_STEPS, description="actions per episode before it is truncated")
    options: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments of the env")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in ENVS and not name.startswith(AGENTGYM_PREFIX):
            raise ValueError(str(UnknownNameError("env", name, ENVS.names())))
        return name

    @field_validator("options")
    @classmethod
    def _not_max_steps(cls, options: dict[str, Any]) -> dict[str, Any]:
        if "max_steps" in options:
            raise ValueError("set max_steps as a field of its own, not as an option")
        return options

    def make(self) -> Env:
        """A new env of this config (each call builds its own, e.g. one per parallel episode); close it when done,
        or use it as a context manager. Raises ``ConfigError`` when ``options`` do not fit the env's constructor."""
        return make_env(self.name, max_steps=self.max_steps, **self.options)


__all__ = ["ENVS", "ENV_OPTION_HELP", "Env", "EnvConfig", "Snapshot", "StepResult", "make_env", "register_env"]
