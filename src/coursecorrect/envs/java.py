"""Envs backed by a Java simulator over Py4J (SciWorld, TextWorld-Express): the Java check, a lazy start on
first use, and a clean stop on ``close``."""

from __future__ import annotations

import shutil
import subprocess
from abc import abstractmethod
from typing import Any

from coursecorrect.envs.base import Env
from coursecorrect.errors import EnvError

JAVA_INSTALL = "install a Java runtime, e.g. `apt install openjdk-17-jre-headless`, so that `java` is on PATH"
STOP_TIMEOUT = 10.0


def require_java(label: str) -> None:
    """Raise ``EnvError`` when no ``java`` command is on PATH."""
    if shutil.which("java") is None:
        raise EnvError(f"{label} needs Java 17+ and no `java` command was found: {JAVA_INSTALL}")


def stop_jvm(sim: Any) -> None:
    """Shut a simulator wrapper's Py4J gateway down and wait for its Java process to exit (killed if it hangs)."""
    process: subprocess.Popen[bytes] | None = getattr(sim._gateway, "java_process", None)
    sim.close()
    if process is None:
        return
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class JavaSimEnv(Env):
    """An env whose simulator (a Java process) starts on first use and stops on ``close``; it caches each task's
    gold plan in ``_gold``."""

    def __init__(self, max_steps: int = 100) -> None:
        super().__init__(max_steps)
        self._sim: Any = None
        self._gold: dict[int, list[str]] = {}

    @abstractmethod
    def _start_simulator(self) -> Any:
        """A running simulator."""

    @property
    def sim(self) -> Any:
        """The simulator, started on first use."""
        if self._sim is None:
            self._sim = self._start_simulator()
        return self._sim

    def close(self) -> None:
        """Stop the Java simulator (a later ``reset`` starts a new one)."""
        if self._sim is not None:
            sim, self._sim = self._sim, None
            stop_jvm(sim)
