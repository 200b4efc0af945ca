"""Where a ``compare`` folder keeps each method's run and the stages its methods share (the layout is drawn in
:mod:`coursecorrect.pipeline.compare`); read by the runs and by the report."""

from __future__ import annotations

from pathlib import Path


def method_dir(root: Path, seed: int, method: str) -> Path:
    return Path(root) / f"seed_{seed}" / method


def shared_stages(root: Path, seed: int) -> dict[str, Path]:
    """The stages every method of ``seed`` takes from the shared folders."""
    root = Path(root)
    return {"warm_start": root / "warm_start", "eval": root / "eval",
            "iter_1/collect": root / f"seed_{seed}" / "iter_1" / "collect"}
