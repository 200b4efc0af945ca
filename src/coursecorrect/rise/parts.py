"""Resumable output in parts: problems are processed in chunks and each chunk's records land atomically in
``DIR/part-NNNNN.jsonl``. A re-run skips problems found in existing parts, and a crash loses only the chunk
in flight."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import read_jsonl_lines, write_jsonl
from coursecorrect.rise.records import Rollout, RolloutError, parse_rollout


def read_parts(folder: Path, strict: bool = False) -> list[Rollout]:
    """Every rollout of ``folder``'s parts (or of one JSONL file), ordered by task id. Unusable lines (not JSON,
    not a valid :class:`Rollout`) are listed with ``file:line`` in a warning and skipped, or raise with
    ``strict``."""
    folder = Path(folder)
    if not folder.exists():
        raise CourseCorrectError(f"{folder}: no such file or folder")
    files = [folder] if folder.is_file() else sorted(folder.glob("part-*.jsonl"))
    records, bad = [], []
    for path in files:
        for number, record in read_jsonl_lines(path, bad=bad):
            try:
                records.append(parse_rollout(record, where=f"{path}:{number}"))
            except RolloutError as exc:
                bad.append(str(exc))
    if bad:
        listing = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        if strict:
            raise CourseCorrectError(f"{len(bad)} unusable record(s):\n  {listing}")
        warnings.warn(f"skipped {len(bad)} unusable record(s):\n  {listing}", stacklevel=2)
    return sorted(records, key=lambda r: r.task_id)


def run_in_parts(
    folder: Path,
    task_ids: Sequence[int],
    chunk_size: int,
    work: Callable[[list[int]], list[Rollout]],
    label: str,
    progress: bool = True,
) -> int:
    """Call ``work`` on chunks of the ``task_ids`` not yet in ``folder``'s parts and write each chunk's rollouts
    as a new part; return how many problems this call processed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = {r.task_id for r in read_parts(folder, strict=True)}
    todo = [t for t in task_ids if t not in done]
    number = len(list(folder.glob("part-*.jsonl")))
    bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   disable=not progress or not todo)
    with bar:
        task = bar.add_task(label, total=len(task_ids), completed=len(task_ids) - len(todo))
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            write_jsonl(folder / f"part-{number:05d}.jsonl", (r.model_dump() for r in work(chunk)))
            number += 1
            bar.update(task, advance=len(chunk))
    return len(todo)
