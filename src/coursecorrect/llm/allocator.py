"""Keep freed memory in the process on CPU: glibc's default allocator returns every large block to the OS.

glibc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB, growing to at most 32 MiB) with ``mmap`` and unmaps
them on ``free``, so each new activation, KV buffer or cache entry of that size is faulted in again, page by
page. On the 2-core VMs this project is measured on, that fault traffic cost more than the matmuls of a
batched prefill (SmolLM2-135M, fp32, 16 prompts of 1,050 tokens: 63.9 s with the default, 37.5 s with the
heap kept; ``bench/engines.py`` prints the figures of the machine it runs on). PyTorch's own advice for CPU
inference is an allocator that keeps memory (jemalloc or tcmalloc through ``LD_PRELOAD``); this does the same
with glibc's ``mallopt``, without a preload: serve every block from the heap and never trim it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB of free heap before returning any of it

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse (once per process); return whether it is in effect.

    A no-op, returning False, off Linux/glibc or when ``COURSECORRECT_MALLOC=default`` is set.
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("COURSECORRECT_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
