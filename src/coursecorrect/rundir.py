"""The run directory every stage writes into.

    runs/NAME/
      config.yaml            the run's config, written once; a re-run with another config is refused
      iter_1/collect/        one folder per stage of an iteration (collect, data, train, eval, ...)
      iter_1/eval/DONE.json  a stage is finished when its DONE.json exists (written last, atomically)
      eval/                  stages outside the iteration loop sit at the top level

A re-run of the same command skips every stage with a DONE.json and resumes the first one without.
A run may take some stages from elsewhere (``shared``): ``compare`` gives every method one warm start, one
iteration-0 evaluation and one set of iteration-1 trees.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coursecorrect.config import Config, dump_config
from coursecorrect.console import console
from coursecorrect.errors import ConfigError
from coursecorrect.io import atomic_write_json, atomic_write_text, remove_temporaries

STAGE_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class StageDir:
    """One stage's folder."""

    path: Path

    @property
    def done_file(self) -> Path:
        return self.path / "DONE.json"

    def is_done(self) -> bool:
        return self.done_file.is_file()

    def summary(self) -> dict[str, Any]:
        """What the finished stage reported in ``mark_done``."""
        return json.loads(self.done_file.read_text(encoding="utf-8"))

    def mark_done(self, summary: dict[str, Any] | None = None) -> None:
        """Record the stage as finished; call it after every artefact is written."""
        atomic_write_json(self.done_file, summary or {})


@dataclass(frozen=True)
class RunDir:
    """A run's root folder; ``shared`` maps stage keys (``"eval"``, ``"iter_1/collect"``) to folders elsewhere
    (``compare`` adds to it as a run goes, when a method turns out to repeat an earlier one's training)."""

    root: Path
    shared: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, config: Config | None = None, shared: Mapping[str, Path] | None = None) -> RunDir:
        """Create or reopen a run directory. With ``config``, a new run saves it and a reopened run must
        have been started with the same config (resuming under changed settings would mix results)."""
        run = cls(Path(root), dict(shared or {}))
        run.root.mkdir(parents=True, exist_ok=True)
        if config is not None:
            text = dump_config(config)
            saved = run.root / "config.yaml"
            if not saved.exists():
                atomic_write_text(saved, text)
            elif saved.read_text(encoding="utf-8") != text and not _same_config(saved, config):
                raise ConfigError(
                    f"{run.root} was started with a different config ({saved}); "
                    "use a new run directory, or restore that config to resume"
                )
        return run

    def stage(self, name: str, iteration: int | None = None) -> StageDir:
        """The folder of stage ``name`` (of ``iteration``, counted from 1, if given), created on demand."""
        if not STAGE_NAME.fullmatch(name):
            raise ValueError(f"stage names are lowercase words, got {name!r}")
        if iteration is not None and iteration < 1:
            raise ValueError(f"iterations count from 1, got {iteration}")
        path = self.path_of(name, iteration)
        path.mkdir(parents=True, exist_ok=True)
        return StageDir(path)

    def path_of(self, name: str, iteration: int | None = None) -> Path:
        """Where stage ``name`` (of ``iteration``) lives, without creating it."""
        key = f"iter_{iteration}/{name}" if iteration is not None else name
        return Path(self.shared.get(key, self.root / key))

    def iterations(self) -> list[int]:
        """The iterations that have a folder, here or among the shared stages."""
        keys = [p.name for p in self.root.glob("iter_*")] + [k.split("/")[0] for k in self.shared]
        return sorted({int(k.split("_")[1]) for k in keys if re.fullmatch(r"iter_[0-9]+", k)})


def run_stage(
    run: RunDir, name: str, iteration: int | None, work: Callable[[Path], dict[str, Any]],
    kept: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Run one stage unless its DONE.json exists; record its summary and wall time. ``kept(summary)`` tells
    whether a finished stage's artefacts that later stages need are still there (models and trees are not
    kept in git, so a run folder carried to another machine lacks them); if not, the stage runs again.
    A stage that runs first deletes the temporaries that an earlier, killed attempt left in its folder."""
    stage = run.stage(name, iteration)
    label = f"iteration {iteration} · {name}" if iteration else name
    if stage.is_done():
        summary = stage.summary()
        if kept is None or kept(summary):
            console.print(f"[dim]{label}: done (skipped)[/dim]")
            return summary
        console.print(f"[yellow]{label}: done, but what it made is gone (another machine?): running it again")
    console.rule(f"[bold]{label}")
    if removed := remove_temporaries(stage.path):
        console.print(f"[dim]removed {len(removed)} temporaries left by an interrupted attempt[/dim]")
    start = time.perf_counter()
    summary = work(stage.path)
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    stage.mark_done(summary)
    return summary


def _same_config(saved: Path, config: Config) -> bool:
    """Whether a run's saved config means ``config``: it may predate fields added since, with their defaults."""
    try:
        return type(config).model_validate(yaml.safe_load(saved.read_text(encoding="utf-8"))) == config
    except (ValueError, yaml.YAMLError):  # pydantic's ValidationError is a ValueError
        return False
