"""Load check of the AgentGym env server: concurrent HTTP clients stepping TextCraft, against in-process steps.

    python bench/env_server.py [--clients 64] [--duration 30] [--transport raw|httpx] [--url http://127.0.0.1:8000]

Without ``--url`` it starts ``coursecorrect env serve textcraft`` on a free loopback port. Each client creates
an env, plays episodes (a bad action, then the expert's plan, checked to end solved) until the time is up,
and closes its env. Reported: steps/s through HTTP and in one process, step latency, errors (failed requests
or unsolved episodes), and the envs still live on the server afterwards (must be 0). Each client has its own
connection; ``--transport httpx`` sends through ``httpx.AsyncClient``, whose CPU cost per request on the
client side is several times the server's, so the default bare HTTP/1.1 client measures the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from coursecorrect.envs.textcraft import TextCraftEnv

PLAN_TASKS = range(0, 544, 17)


def episodes() -> list[tuple[int, list[str]]]:
    """(task id, actions) pairs: one bad action, then the expert's plan."""
    env = TextCraftEnv()
    plays = []
    for task_id in PLAN_TASKS:
        env.reset(task_id)
        plays.append((task_id, ["craft 1 nothing using 1 air", *env.expert_actions()]))
    return plays


@dataclass
class LoadResult:
    clients: int
    seconds: float
    steps: int = 0
    errors: int = 0
    live_after: int = -1
    latencies: list[float] = field(default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


class LoadError(Exception):
    """A request the server did not answer with 200."""


class RawConnection:
    """A bare HTTP/1.1 keep-alive connection: a load generator far cheaper in CPU than httpx, so that the
    figures measure the server rather than the client library."""

    def __init__(self, url: str) -> None:
        self.address = httpx.URL(url)

    async def __aenter__(self) -> RawConnection:
        self.reader, self.writer = await asyncio.open_connection(self.address.host, self.address.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {self.address.host}\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        status, length = int((await self.reader.readline()).split()[1]), 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = json.loads(await self.reader.readexactly(length))
        if status != 200:
            raise LoadError(f"{path}: HTTP {status}: {answer}")
        return answer


class HttpxConnection:
    """The same calls through ``httpx.AsyncClient``, as an agent written with httpx would make them."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=60.0)

    async def __aenter__(self) -> HttpxConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(path, json=body)
        if response.status_code != 200:
            raise LoadError(f"{path}: HTTP {response.status_code}: {response.text}")
        return response.json()


TRANSPORTS = {"raw": RawConnection, "httpx": HttpxConnection}
FAILURES = (LoadError, OSError, EOFError, ValueError, httpx.HTTPError)


async def _client(
    connection: RawConnection | HttpxConnection,
    plays: list[tuple[int, list[str]]],
    start: int,
    deadline: float,
    result: LoadResult,
) -> None:
    """One client on its own connection, as a separate agent would be: create an env, play, close it."""
    async with connection as server:
        try:
            env_id = (await server.post("/create", {}))["id"]
        except FAILURES:
            result.errors += 1
            return
        turn = start
        while time.perf_counter() < deadline:
            task_id, actions = plays[turn % len(plays)]
            turn += 1
            try:
                await server.post("/reset", {"id": env_id, "data_idx": task_id})
                for action in actions:
                    sent = time.perf_counter()
                    answer = await server.post("/step", {"id": env_id, "action": action})
                    result.latencies.append(time.perf_counter() - sent)
                    result.steps += 1
                if answer["reward"] != 1.0:
                    result.errors += 1
            except FAILURES:
                result.errors += 1
        try:
            await server.post("/close", {"id": env_id})
        except FAILURES:
            result.errors += 1


async def _load(url: str, clients: int, duration: float, transport: str) -> LoadResult:
    plays = episodes()
    start = time.perf_counter()
    result = LoadResult(clients, duration)
    connect = TRANSPORTS[transport]
    await asyncio.gather(*(_client(connect(url), plays, i, start + duration, result) for i in range(clients)))
    result.seconds = time.perf_counter() - start
    async with httpx.AsyncClient(base_url=url) as http:
        result.live_after = (await http.get("/info")).json()["live_envs"]
    return result


def run_load(url: str, clients: int = 64, duration: float = 30.0, transport: str = "raw") -> LoadResult:
    """Drive the server at ``url`` with ``clients`` concurrent clients for ``duration`` seconds."""
    return asyncio.run(_load(url, clients, duration, transport))


def in_process_steps_per_s(seconds: float) -> float:
    """Steps per second of the same episodes played on one in-process env."""
    plays, env, steps = episodes(), TextCraftEnv(), 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for task_id, actions in plays:
            env.reset(task_id)
            for action in actions:
                env.step(action)
            steps += len(actions)
    return steps / (time.perf_counter() - start)


@contextlib.contextmanager
def served_textcraft(max_envs: int) -> Iterator[str]:
    """``coursecorrect env serve textcraft`` in a subprocess on a free loopback port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from coursecorrect.cli import main; main()",
        "env",
        "serve",
        "textcraft",
        "--port",
        str(port),
        "--max-envs",
        str(max_envs),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/").status_code == 200:
                    break
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--transport", choices=TRANSPORTS, default="raw", help="raw HTTP/1.1 or httpx.AsyncClient")
    parser.add_argument("--url", help="an already running server of textcraft (default: start one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(served_textcraft(max_envs=args.clients))
        result = run_load(url, args.clients, args.duration, args.transport)
    local = in_process_steps_per_s(min(args.duration, 5.0))
    quantiles = statistics.quantiles(result.latencies, n=100) if len(result.latencies) > 1 else [0.0] * 99
    print(f"cpus: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    print(
        f"HTTP ({args.transport}): {result.clients} clients x {result.seconds:.1f} s: {result.steps:,} steps, "
        f"{result.steps_per_s:,.0f} steps/s; step latency p50 {quantiles[49] * 1e3:.1f} ms, "
        f"p99 {quantiles[98] * 1e3:.1f} ms"
    )
    print(f"in-process: {local:,.0f} steps/s (one env, one thread); HTTP is {local / result.steps_per_s:,.0f}x slower")
    print(f"errors: {result.errors}; live envs after: {result.live_after}")
    if result.errors or result.live_after:
        sys.exit(1)


if __name__ == "__main__":
    main()
