"""Starting and stopping the Java simulators behind SciWorld and TextWorld-Express (both talk over Py4J)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

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
