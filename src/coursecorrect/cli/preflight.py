"""Checks of a command's arguments that run before it writes anything, so that a bad argument costs one line of
error and leaves no folder or file behind."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coursecorrect.errors import BackendError, CourseCorrectError

if TYPE_CHECKING:
    from coursecorrect.envs import EnvConfig
    from coursecorrect.llm import LLMConfig


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    return next(p for p in (path, *path.parents) if p.exists())


def output_folder(path: Path, option: str = "--out") -> Path:
    """``path`` if a command can make or reuse it as its output folder: it is a folder, or it does not exist
    and its nearest existing ancestor is a folder."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "it is a file" if existing == path else f"{existing} is a file"
        raise CourseCorrectError(f"{option} {path}: {where}; give a folder")
    return path


def output_file(path: Path, option: str) -> Path:
    """``path`` if a command can write it as a file: not a folder, and under a folder (or a path to one)."""
    if path.is_dir():
        raise CourseCorrectError(f"{option} {path}: it is a folder; give a file name")
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise CourseCorrectError(f"{option} {path}: {parent} is a file, not a folder")
    return path


def check_tasks(env: EnvConfig, split: str, task_ids: list[int] | None = None, in_split: bool = False) -> None:
    """Build the env and check the split and ``task_ids`` (each known to the env, and in ``split`` too when
    ``in_split``): an unknown env, env option, split or task id fails here."""
    with env.make() as probe:
        split_ids = set(probe.task_ids(split)) if task_ids is None or in_split else None  # an unknown split raises
        for task_id in task_ids or ():
            probe.check_task_id(task_id)
            if split_ids is not None and task_id not in split_ids:
                raise CourseCorrectError(f"task id {task_id} is not in {probe.name}'s {split} split")


def check_model(llm: LLMConfig) -> None:
    """Fail now on a local model that cannot load (a missing folder, one without ``config.json``, a near-miss
    of an alias) rather than after the command has written its output folder."""
    from coursecorrect.llm.models import ALIASES, resolve_model

    if llm.backend == "openai" or llm.model in ALIASES:
        return  # a server's model name, or an alias built or fetched when the model loads
    path = resolve_model(llm.model)
    if isinstance(path, Path) and not (path / "config.json").is_file():
        raise BackendError(f"model folder {llm.model!r} holds no model (no config.json)")
