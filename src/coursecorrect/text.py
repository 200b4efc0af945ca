"""Untrusted text (a model's output, a remote server's observations) made safe to store."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (``"\\ud800"`` from a JSON escape, ``"\\udcff"`` from surrogate-escaped
    bytes), which UTF-8 cannot encode, replaced by U+FFFD; use it on untrusted text where it enters."""
    return _SURROGATE.sub("\ufffd", text)
