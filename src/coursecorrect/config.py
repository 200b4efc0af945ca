"""Configs are pydantic models, loaded from TOML or YAML with errors that name the bad field."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coursecorrect.errors import ConfigError

C = TypeVar("C", bound="Config")


# Upper bounds of the configs' size fields: far above what a run needs, low enough that a typo or a fuzzed
# 1e30 is refused at once instead of running for ever.
MAX_STEPS = 10_000
"""Actions per episode, tree depth, turns, rounds, iterations."""
MAX_TOKENS = 1 << 20
"""Tokens per response, training example or context."""
MAX_SIZE = 1 << 16
"""Rows, episodes, trees or requests handled at once; workers, threads, chunk sizes, LoRA ranks."""
MAX_SAMPLES = 1024
"""Samples per prompt, rollouts per expansion, retries and restarts."""
MAX_COUNT = 10**9
"""Tasks (a limit), pairs or trajectories kept, optimizer and logging steps."""
MAX_EPOCHS = 1000
"""Passes over the training data."""
MAX_SECONDS = 86_400.0
"""Timeouts: a day."""
MAX_SEED = 2**32 - 1
"""Seeds lie in [0, 2**32), the range numpy and transformers' ``set_seed`` take."""

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
"""A seed field: an int in [0, MAX_SEED]."""


class Config(BaseModel):
    """Base of all configs: unknown fields are errors (a typo must not silently fall back to a default), and
    floats must be finite (``inf`` or ``nan`` is never a sensible setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def validate_config(cls: type[C], data: Any, source: str = "config") -> C:
    """Build ``cls`` from plain data; raise ``ConfigError`` naming every bad field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a ``.toml``, ``.yaml`` or ``.yml`` file into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: config files must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {detail}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set ``overrides``' dotted keys (``"agent.batch_size"``) in ``data``; ``None`` values (options the user
    did not give) are skipped, so command-line flags win over a config file only where they were given."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config field {key!r} must be a table of fields to set {dotted}")
        node[leaf] = value
    return data


def parse_assignments(items: Iterable[str], option: str, prefix: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings (a repeatable command-line option) → overrides ``{"PREFIX.KEY": VALUE}`` for
    :func:`apply_overrides`: a value that parses as JSON is that value (``544``, ``true``, ``[1, 2]``), any other
    text the string itself."""

    def finite(text: str) -> float:
        if not math.isfinite(value := float(text)):
            raise ConfigError(f"{option}: {text} is not a finite number")
        return value

    result = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key.isidentifier():
            raise ConfigError(f"{option} takes KEY=VALUE with KEY a name, got {item!r}")
        try:
            result[f"{prefix}.{key}"] = json.loads(text, parse_float=finite, parse_constant=finite)
        except json.JSONDecodeError:
            result[f"{prefix}.{key}"] = text
    return result


def load_config(cls: type[C], path: Path) -> C:
    """Load and validate a config file."""
    return validate_config(cls, read_config_file(path), source=str(path))


def dump_config(config: Config) -> str:
    """YAML text of a config, for run directories."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
