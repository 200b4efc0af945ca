"""Text environments: the protocol, the registry, and configs that name envs by string.

Register your own env with ``register_env("myenv", MyEnv)`` or ``register_env("myenv", "pkg.mod:MyEnv")``.
The name ``agentgym:<url>`` plays an env hosted by an AgentGym-style HTTP server (``coursecorrect.envs.agentgym``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from coursecorrect.config import MAX_STEPS, Config
from coursecorrect.envs.base import Env, Snapshot, StepResult
from coursecorrect.errors import ConfigError, UnknownNameError
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


AGENTGYM_PREFIX = "agentgym:"


def make_env(name: str, **kwargs: Any) -> Env:
    """Instantiate the env registered as ``name`` (or served at ``agentgym:<url>``) with constructor ``kwargs``."""
    if name.startswith(AGENTGYM_PREFIX):
        from coursecorrect.envs.agentgym import AgentGymEnv

        cls: type[Env] = AgentGymEnv
        kwargs = {"url": name.removeprefix(AGENTGYM_PREFIX), **kwargs}
    else:
        cls = ENVS.get(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"env {name!r}: bad options {kwargs}: {exc}") from None


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
        return make_env(self.name, max_steps=self.max_steps, **self.options)


__all__ = ["ENVS", "ENV_OPTION_HELP", "Env", "EnvConfig", "Snapshot", "StepResult", "make_env", "register_env"]
