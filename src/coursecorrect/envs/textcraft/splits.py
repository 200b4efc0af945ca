"""The TextCraft train/test task ids used by Agent-R (AgentGym numbering), shipped with the package."""

from __future__ import annotations

import json
from importlib import resources

_DATA = json.loads(resources.files(__package__).joinpath("data/splits.json").read_text(encoding="utf-8"))
SPLITS: dict[str, tuple[int, ...]] = {name: tuple(_DATA[name]) for name in ("train", "test")}
