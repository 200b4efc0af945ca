"""Atomic file writes and JSONL reading with file:line errors — so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from coursecorrect.errors import CourseCorrectError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Atomically write ``data`` as JSON (UTF-8, non-ASCII kept)."""
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    """Atomically write one JSON document per line."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def append_jsonl(path: Path, record: Any) -> None:
    """Append one record and flush it to disk, for logs that a resumed run reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class JSONLError(CourseCorrectError):
    """A JSONL line that is not valid JSON; the message names the file and line."""


def read_jsonl(path: Path, skip_bad: bool = False) -> Iterator[Any]:
    """Yield the records of a JSONL file. A bad line raises ``JSONLError`` naming ``file:line``; with
    ``skip_bad`` it is skipped, and a torn last line (from a crash mid-append) is always skipped."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            torn_tail = number == len(lines) and not line.endswith("\n")
            if skip_bad or torn_tail:
                continue
            raise JSONLError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
