"""Atomic file writes and JSONL reading with file:line errors — so a crash never leaves half a file.

Temporaries (a file being written, a folder being filled) are named ``.NAME.XXXXXXXX.tmp`` beside their
target; a process killed mid-write leaves one behind, which :func:`remove_temporaries` cleans up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from coursecorrect.errors import CourseCorrectError

_UMASK = os.umask(0)
os.umask(_UMASK)
_RANDOM_TAIL = r"[a-z0-9_]{8}\.tmp"  # tempfile's random part: 8 of [a-z0-9_]
_TEMPORARY = re.compile(r"\..+\." + _RANDOM_TAIL)
_TAIL_CHUNK = 1 << 16


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


def temp_dir_beside(path: Path, tag: str = "") -> Path:
    """A new private folder ``.NAME.TAGXXXXXXXX.tmp`` beside ``path``, to fill and then rename into place."""
    path = Path(path)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{tag}", suffix=".tmp", dir=path.parent))


def remove_temporaries_of(path: Path) -> list[Path]:
    """Delete the temporaries that killed writers of ``path`` itself left beside it (``.NAME.XXXXXXXX.tmp``
    and ``.NAME.stale.XXXXXXXX.tmp``, never links): for a writer whose folder is not its own to sweep, such as
    a user's ``--out``; return what was removed."""
    path = Path(path)
    own = re.compile(re.escape(f".{path.name}.") + r"(stale\.)?" + _RANDOM_TAIL)
    removed = []
    for candidate in path.parent.iterdir() if path.parent.is_dir() else ():
        if own.fullmatch(candidate.name) and not candidate.is_symlink():
            removed.append(_delete(candidate))
    return removed


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries that killed writers left anywhere under ``folder`` (only names of the form
    ``.NAME.XXXXXXXX.tmp``, never links); return what was removed."""
    removed = []
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            if not _TEMPORARY.fullmatch(name) or path.is_symlink():
                continue
            if path.is_dir():
                dirs.remove(name)
            removed.append(_delete(path))
    return removed


def _delete(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return path


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Atomically write ``data`` as JSON (UTF-8, non-ASCII kept)."""
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    """Atomically write one JSON document per line."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def append_jsonl(path: Path, record: Any) -> None:
    """Append one record and flush it to disk, for logs that a resumed run reads back. A last line left
    without its newline (a crash mid-append) is first completed if it is whole JSON, else cut away."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "a+b") as handle:
        _repair_tail(handle)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _repair_tail(handle: BinaryIO) -> None:
    """Make an open JSONL file end with a newline: finish a whole last line, or truncate a torn one."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return
    handle.seek(end - 1)
    if handle.read(1) == b"\n":
        return
    start = _last_line_start(handle, end)
    handle.seek(start)
    try:
        json.loads(handle.read())
    except ValueError:  # not JSON, or not UTF-8: the line was torn
        handle.truncate(start)
    else:
        handle.write(b"\n")


def _last_line_start(handle: BinaryIO, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 if there is none), read backwards in chunks."""
    position = end
    while position > 0:
        size = min(_TAIL_CHUNK, position)
        position -= size
        handle.seek(position)
        newline = handle.read(size).rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    return 0


class JSONLError(CourseCorrectError):
    """A JSONL line that is not valid JSON; the message names the file and line."""


def read_jsonl(path: Path, skip_bad: bool = False) -> Iterator[Any]:
    """Yield the records of a JSONL file. A bad line raises ``JSONLError`` naming ``file:line``; with
    ``skip_bad`` it is skipped, and a torn last line (from a crash mid-append) is always skipped."""
    return (record for _, record in read_jsonl_lines(path, skip_bad))


def read_jsonl_lines(
    path: Path, skip_bad: bool = False, bad: list[str] | None = None
) -> Iterator[tuple[int, Any]]:
    """Like :func:`read_jsonl`, with each record's line number (from 1). With ``bad``, every unreadable line,
    a torn last one too, is skipped and described there as ``file:line: why``."""
    path = Path(path)
    # split at "\n" only: JSON strings may hold other line breaks (U+2028, U+0085) unescaped
    lines = path.read_bytes().split(b"\n")  # the last item is what follows the last newline
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError: a line that is not UTF-8 text
            message = f"{path}:{number}: not valid JSON ({getattr(exc, 'msg', 'not UTF-8 text')})"
            if bad is not None:
                bad.append(message)
            elif not skip_bad and number < len(lines):  # the last item has no newline: torn by a crash mid-append
                raise JSONLError(message) from None
