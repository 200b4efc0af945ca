"""The error hierarchy: every error a user can cause is a ``CourseCorrectError`` with a readable message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CourseCorrectError(Exception):
    """Base class for errors caused by user input or the outside world; the CLI prints them in one line."""


class ConfigError(CourseCorrectError):
    """A config file or value is malformed."""


class UnknownNameError(CourseCorrectError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or 'none'}.")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class EnvError(CourseCorrectError):
    """An environment could not do what was asked (bad task id, stepping a finished episode, a dead server)."""


class BackendError(CourseCorrectError):
    """An LLM backend failed (model not found, server unreachable after retries)."""
