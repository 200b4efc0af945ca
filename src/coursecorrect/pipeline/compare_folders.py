"""Where a ``compare`` folder keeps each method's run and the stages its methods share (the layout is drawn in
:mod:`coursecorrect.pipeline.compare`); read by the runs and by the report.

Besides the stages every method shares, a method may repeat an earlier method's training exactly: the same
training settings and, iteration by iteration, the same training data (``good``, ``optimal`` and
``optimal+good`` on an env whose rewards are only 0 or 1). From its first iteration on, such a *twin* takes the
earlier method's models, evaluations and next trees instead of remaking them; it still builds its own data,
which is how the match is found (and checked again every iteration).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from coursecorrect.data.conversation import read_conversations
from coursecorrect.pipeline.run import PREFERENCES_FILE, RunConfig
from coursecorrect.revision.build import DATA_FILE
from coursecorrect.rundir import RunDir, StageDir

TWIN_STAGES = ("train", "eval", "revision")  # of each matched iteration; and the next iteration's collect


def method_dir(root: Path, seed: int, method: str) -> Path:
    return Path(root) / f"seed_{seed}" / method


def shared_stages(root: Path, seed: int) -> dict[str, Path]:
    """The stages every method of ``seed`` takes from the shared folders."""
    root = Path(root)
    return {"warm_start": root / "warm_start", "eval": root / "eval",
            "iter_1/collect": root / f"seed_{seed}" / "iter_1" / "collect"}


def method_stages(root: Path, seed: int, method: str, methods: Sequence[str]) -> dict[str, Path]:
    """Every stage ``method`` of ``seed`` takes from elsewhere: the shared ones, and its twin's (those it has
    not already made itself). ``methods`` is the compare config's list, in its order."""
    stages = shared_stages(root, seed)
    twin = twin_of(root, seed, method, methods)
    if twin is None:
        return stages
    other, iterations = twin
    source = RunDir(method_dir(root, seed, other), method_stages(root, seed, other, methods))
    own = method_dir(root, seed, method)
    last = saved_config(own).iterations
    for i in iterations:
        keys = [(stage, i) for stage in TWIN_STAGES] + ([("collect", i + 1)] if i < last else [])
        for stage, j in keys:
            key = f"iter_{j}/{stage}"
            if not StageDir(own / key).is_done():
                stages[key] = source.path_of(stage, j)
    return stages


def twin_of(root: Path, seed: int, method: str, methods: Sequence[str]) -> tuple[str, list[int]] | None:
    """The first method before ``method`` in ``methods`` whose training it repeats, and the iterations where it
    does (1, 2, ... up to the first whose data differ, or are not built yet); None if there is none."""
    own = method_dir(root, seed, method)
    mine = saved_config(own)
    if mine is None or mine.data.mode == "gold":
        return None
    for other in methods[: list(methods).index(method)]:
        folder = method_dir(root, seed, other)
        theirs = saved_config(folder)
        if theirs is None or theirs.data.mode == "gold" or _training_settings(theirs) != _training_settings(mine):
            continue
        same = []
        for i in range(1, mine.iterations + 1):
            if not _same_data(own / f"iter_{i}" / "data", folder / f"iter_{i}" / "data"):
                break
            same.append(i)
        if same:
            return other, same
    return None


def saved_config(folder: Path) -> RunConfig | None:
    """The run config saved in a method's folder; None if the method has not started."""
    saved = folder / "config.yaml"
    return _read_config(saved, saved.stat().st_mtime_ns) if saved.is_file() else None


@lru_cache(maxsize=256)
def _read_config(path: Path, stamp: int) -> RunConfig:
    """A saved run config (``stamp``, its file's time, keys the cache)."""
    return RunConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _training_settings(config: RunConfig) -> dict[str, Any]:
    """Every setting a run's stages read, except those only its data stage reads (the data show their effect)."""
    return config.model_dump(mode="json", exclude={"data"}) | {"accumulate": config.data.accumulate}


def _same_data(a: Path, b: Path) -> bool:
    """Whether two finished data stages hold the same training examples and preference pairs (labels aside)."""
    digests = [_data_digest(folder) for folder in (a, b)]
    return digests[0] is not None and digests[0] == digests[1]


def _data_digest(folder: Path) -> str | None:
    stage = StageDir(folder)
    if not stage.is_done():
        return None
    data = (folder / DATA_FILE).stat()
    return _digest(folder, (stage.done_file.stat().st_mtime_ns, data.st_mtime_ns, data.st_size))


@lru_cache(maxsize=256)
def _digest(folder: Path, stamp: tuple[int, ...]) -> str:
    """SHA-256 of a data stage's examples (messages and weights) and preference pairs; ``stamp`` (its files'
    times and size) keys the cache, so a remade stage is read again."""
    digest = hashlib.sha256()
    for conversation in read_conversations(folder / DATA_FILE):
        record = conversation.model_dump(mode="json", include={"messages", "weight"})
        digest.update(json.dumps(record, sort_keys=True).encode() + b"\n")
    preferences = folder / PREFERENCES_FILE
    digest.update(preferences.read_bytes() if preferences.is_file() else b"no preferences")
    return digest.hexdigest()
