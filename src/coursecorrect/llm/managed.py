"""Managed inference servers: coursecorrect starts vLLM's or llama.cpp's OpenAI-compatible server on
127.0.0.1 with a given model, talks to it through :class:`OpenAICompatibleLLM`, and stops it.

A new model means a new server (``close`` the old backend, make a new one): what it serves is then the
weights it was started with, recorded in :meth:`ManagedServerLLM.served` with their digest. The server runs
in its own process group, is stopped on ``close``, at interpreter exit, and — through ``PR_SET_PDEATHSIG``
on Linux — also when this process is killed. A server that dies is restarted (at most ``engine.max_restarts``
times) and the call sent again; a call that fails twice, or one restart too many, is an error that says where
the server's log is.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from coursecorrect.errors import BackendError
from coursecorrect.llm.base import Chat, Completion, SamplingParams
from coursecorrect.llm.gguf import to_gguf, weights_digest
from coursecorrect.llm.models import resolve_model
from coursecorrect.llm.openai_backend import OpenAICompatibleLLM

if TYPE_CHECKING:
    from coursecorrect.llm.engine import EngineConfig

SERVED_NAME = "coursecorrect-model"
_HOST = "127.0.0.1"


_SERVER_MODULES = {"llama-cpp": "llama_cpp.server", "vllm-server": "vllm.entrypoints.openai.api_server"}


def default_command(backend: str) -> list[str]:
    """The program that starts ``backend``'s server when ``engine.command`` is not set: this Python's module."""
    return [sys.executable, "-m", _SERVER_MODULES[backend]]


def server_arguments(backend: str, model: Path, port: int, config: EngineConfig, dtype: str) -> list[str]:
    """The command-line arguments of ``backend``'s server for ``model`` on ``port``, then ``config.args``."""
    if backend == "llama-cpp":
        threads = str(config.threads or os.cpu_count() or 1)
        args = ["--model", str(model), "--model_alias", SERVED_NAME, "--host", _HOST, "--port", str(port),
                "--n_ctx", str(config.context_length), "--n_threads", threads, "--n_threads_batch", threads,
                "--verbose", "false"]  # fmt: skip
    else:
        args = ["--model", str(model), "--served-model-name", SERVED_NAME, "--host", _HOST, "--port", str(port),
                "--max-model-len", str(config.context_length), "--enable-prefix-caching"]  # fmt: skip
        if dtype != "auto":
            args += ["--dtype", dtype]
    return args + list(config.args)


class ManagedServerLLM:
    """The :class:`~coursecorrect.llm.base.LLM` protocol over a server this object starts and stops.

    ``backend`` is ``"llama-cpp"`` (the model is converted to GGUF first, see :mod:`coursecorrect.llm.gguf`)
    or ``"vllm-server"`` (served from its Hugging Face folder). ``model`` is an alias or a local folder.
    """

    def __init__(self, backend: str, model: str, config: EngineConfig, *, dtype: str = "auto",
                 max_concurrency: int = 16, timeout: float = 300.0, max_retries: int = 5) -> None:
        if backend not in _SERVER_MODULES:
            raise BackendError(f"unknown managed engine {backend!r}; expected 'llama-cpp' or 'vllm-server'")
        self.backend, self.config, self.dtype = backend, config, dtype
        folder = resolve_model(model)
        if not isinstance(folder, Path):
            raise BackendError(f"{backend} serves local models: {model!r} is neither an alias nor a folder")
        self.folder = folder
        self.command = list(config.command) if config.command else default_command(backend)
        _check_command(backend, self.command, explicit=bool(config.command))
        self.digest = weights_digest(folder)
        self.weights = to_gguf(folder, self.digest, config.gguf_type) if backend == "llama-cpp" else folder
        self.name = f"{backend}:{model}"
        self._client_options = {"max_concurrency": max_concurrency, "timeout": timeout, "max_retries": max_retries}
        self._log_dir = Path(tempfile.mkdtemp(prefix="coursecorrect-engine-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = config.port or free_port()  # kept across restarts, so the client's URL stays right
        self._client: OpenAICompatibleLLM | None = None
        self._keep_log = False  # set once an error message names the log
        self.restarts = 0
        self._start()
        self._client = OpenAICompatibleLLM(SERVED_NAME, self.base_url, name=self.name, **self._client_options)
        self.stats = self._client.stats
        atexit.register(self.close)

    @property
    def log_path(self) -> Path:
        return self._log_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self._port}/v1"

    def served(self) -> dict[str, Any]:
        """What this server serves: the backend, the model folder, the file it loaded and the weights' digest."""
        return {"backend": self.backend, "weights": str(self.folder), "file": str(self.weights),
                "weights_sha256": self.digest}

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions per conversation; a server that died is restarted once and asked again."""
        if self._client is None:
            raise BackendError(f"{self.name} is closed")
        if not self._alive():
            self._restart("it had exited")
        try:
            return self._client.generate(conversations, params)
        except BackendError:
            if self._alive():
                raise
        self._restart("it died during a request")
        try:
            return self._client.generate(conversations, params)
        except BackendError as exc:
            self._keep_log = True
            raise BackendError(f"{exc}; the {self.backend} server died again (its log: {self.log_path}). "
                               "Re-run the command to resume") from exc

    def close(self) -> None:
        """Stop the server (its whole process group); calling it again does nothing."""
        atexit.unregister(self.close)
        if self._client is not None:
            self._client.close()
            self._client = None
        self._stop()
        if not self._keep_log:
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> ManagedServerLLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the process -----------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> None:
        if not port_is_free(self._port):
            raise BackendError(f"port {self._port} on {_HOST} is in use: stop what listens there, or choose "
                               "another model.engine.port (unset, a free port is picked)")
        command = self.command + server_arguments(self.backend, self.weights, self._port, self.config, self.dtype)
        env = {**os.environ, **self.config.env}
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            except OSError as exc:
                raise BackendError(f"cannot start the {self.backend} server ({shlex.join(command[:3])}): {exc}; "
                                   "set model.engine.command to the program that starts it") from exc
        try:
            wait_until_ready(self._proc, self.base_url, self.log_path, self.config.startup_timeout,
                             f"the {self.backend} server", hint=" (raise engine.startup_timeout)")
        except BaseException:  # not ready, or Ctrl-C while waiting: leave no server behind
            self._keep_log = True
            self._stop()
            raise

    def _restart(self, why: str) -> None:
        self.restarts += 1
        if self.restarts > self.config.max_restarts:
            self._keep_log = True
            raise BackendError(f"the {self.backend} server stopped ({why}) {self.restarts} times; its log: "
                               f"{self.log_path}. Re-run the command to resume")
        print(f"[coursecorrect] the {self.backend} server stopped ({why}); restarting it", file=sys.stderr)
        self._stop()
        self._start()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def wait_until_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float,
                     what: str = "the server", hint: str = "") -> None:
    """Poll ``GET base_url/models`` until the server answers; a ``BackendError`` quoting the end of its ``log``
    if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BackendError(f"{what} exited with code {proc.returncode} before it was ready: {log_tail(log)} "
                               f"(full log: {log})")
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise BackendError(f"{what} was not ready after {timeout:.0f} s{hint}: {log_tail(log)} (full log: {log})")


def log_tail(log: Path, lines: int = 3) -> str:
    """The last non-blank ``lines`` of a server's log, on one line."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(empty log)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` of 127.0.0.1 (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _check_command(backend: str, command: list[str], explicit: bool) -> None:
    """Fail early, in one line, when the engine's program or Python module is missing."""
    if not explicit:
        module = _SERVER_MODULES[backend].split(".")[0]
        if importlib.util.find_spec(module) is None:
            extra = "pip install -e '.[server]'" if backend == "llama-cpp" else "see docs/engines.md"
            raise BackendError(f"the {backend} engine needs the {module!r} package in this Python ({extra}), or "
                               "set model.engine.command to a program that starts the server")
        return
    program = command[0]
    if os.sep not in program and shutil.which(program) is None:
        raise BackendError(f"engine command {program!r} not found on PATH (model.engine.command)")
    if os.sep in program and not os.access(program, os.X_OK):
        raise BackendError(f"engine command {program!r} does not exist or is not executable (model.engine.command)")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
