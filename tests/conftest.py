"""Fixtures shared by test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from coursecorrect.envs.math.problems import DATA_ENV_VAR


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's tiny-model tests on one torch thread: the tiny model gains nothing from threads, and
    oversubscribed OpenMP threads on a shared 2-core machine made generation ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHARED_MATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "math"


@pytest.fixture(autouse=True)
def math_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """GSM8K and MATH load from the shared JSONL files (as a user's local data folder), never the hub."""
    monkeypatch.setenv(DATA_ENV_VAR, str(SHARED_MATH))
    return SHARED_MATH
