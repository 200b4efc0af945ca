"""The AgentGym HTTP protocol: the env server over real loopback, and the client env playing it — against
coursecorrect's server and against a server that behaves like AgentGym's own (``agentgym_upstream``)."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from agentgym_upstream import UpstreamTextCraft, server_order
from coursecorrect.envs import EnvConfig, make_env
from coursecorrect.envs.agentgym import AgentGymEnv
from coursecorrect.envs.agentgym.server import create_app
from coursecorrect.envs.checks import check_env
from coursecorrect.envs.textcraft import TextCraftEnv
from coursecorrect.errors import ConfigError, EnvError
from coursecorrect.llm.managed import free_port

BAD_ACTIONS = ["jump", "get 1 nothing", "craft 1 stick using 9 air", "", "inventory"]


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Served:
    """A TextCraft server under test: its URL, the client options it needs, and how many envs it holds."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    upstream: UpstreamTextCraft | None = None

    def client(self, **kwargs: Any) -> AgentGymEnv:
        return AgentGymEnv(self.url, **self.options, **kwargs)

    def live_envs(self) -> int:
        return len(self.upstream.envs) if self.upstream else live_envs(self.url)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running(create_app("textcraft", max_envs=16)) as base:
        yield base


@pytest.fixture(scope="module")
def upstream() -> Iterator[Served]:
    server = UpstreamTextCraft()
    with running(server.app) as base:
        yield Served(base, {"as_env": "textcraft"}, server)


@pytest.fixture(params=["coursecorrect", "agentgym"])
def served(request: pytest.FixtureRequest, url: str) -> Served:
    """Each test that takes this runs against both servers."""
    return Served(url) if request.param == "coursecorrect" else request.getfixturevalue("upstream")


def live_envs(base: str) -> int:
    return httpx.get(base + "/info").json()["live_envs"]


@pytest.mark.parametrize("task_id", [0, 123, 300, 543])
def test_client_plays_like_the_in_process_env(served: Served, task_id: int) -> None:
    local = TextCraftEnv()
    with served.client() as remote:
        assert remote.reset(task_id) == local.reset(task_id)
        for action in [*BAD_ACTIONS, *local.expert_actions()]:
            assert remote.step(action) == local.step(action)
        assert remote.done and remote.reward == 1.0
        with pytest.raises(EnvError, match="is over; call reset"):
            remote.step("inventory")
    assert served.live_envs() == 0


def test_client_reads_the_env_description_from_the_server(served: Served) -> None:
    local = TextCraftEnv()
    with served.client() as remote:
        assert (remote.instruction, remote.num_tasks) == (local.instruction, local.num_tasks)
        assert remote.splits == local.splits
        assert remote.task_ids("test") == local.task_ids("test")
        assert remote.task_ids("all") == list(range(local.num_tasks))
        with pytest.raises(EnvError, match="unknown split"):
            remote.task_ids("dev")
        with pytest.raises(EnvError, match="unknown task id"):
            remote.reset(local.num_tasks)


def test_client_keeps_the_env_contract(served: Served) -> None:
    with served.client() as remote:
        check_env(remote)


def test_snapshot_by_replay_and_client_side_truncation(served: Served) -> None:
    local = TextCraftEnv(max_steps=4)
    with served.client(max_steps=4) as remote:
        assert not remote.supports_snapshot
        remote.reset(300)
        local.reset(300)
        plan = local.expert_actions()
        for action in plan[:2]:
            remote.step(action)
            local.step(action)
        snapshot = remote.snapshot()
        after = [remote.step(a) for a in ["inventory", "jump"]]
        assert after[-1].truncated and remote.done
        remote.restore(snapshot)
        assert (
            [remote.step(a) for a in ["inventory", "jump"]] == after == [local.step(a) for a in ["inventory", "jump"]]
        )


def test_upstream_needs_a_create_body_and_numbers_tasks_its_own_way(upstream: Served) -> None:
    with httpx.Client(base_url=upstream.url) as http:
        assert http.post("/create").status_code == 422  # what the client used to send
        assert http.post("/info").status_code == 404
    order, local = server_order(544), TextCraftEnv()
    server_id = next(j for j, ours in enumerate(order) if ours != j)
    with AgentGymEnv(upstream.url, num_tasks=544, instruction="Craft.") as remote:
        assert remote.reset(server_id) == local.reset(order[server_id]) != local.reset(server_id)
        with pytest.raises(EnvError, match=r"unknown split 'test'; choose one of all; the server reports none"):
            remote.task_ids("test")
    with upstream.client() as remote:  # as_env="textcraft": our numbering, instruction and splits
        assert remote.reset(server_id) == local.reset(server_id)
        assert remote.task_ids("test") == local.task_ids("test") and remote.instruction == local.instruction
    assert upstream.live_envs() == 0


def test_error_answers_become_observations(upstream: Served) -> None:
    local = TextCraftEnv()
    with upstream.client() as remote:
        remote.reset(7)
        local.reset(7)
        result = remote.step("get " + "9" * 5000 + " oak log")
        assert "Exceeds the limit (4300 digits)" in result.observation
        assert (result.reward, result.done, remote.actions[-1][:4]) == (0.0, False, "get ")
        for action in local.expert_actions():
            assert remote.step(action) == local.step(action)
        assert remote.reward == 1.0


def test_a_restarted_upstream_server_gets_the_episode_replayed(upstream: Served) -> None:
    local = TextCraftEnv()
    with upstream.client() as remote:
        remote.reset(300)
        local.reset(300)
        plan = local.expert_actions()
        for action in ["jump", *plan[:-1]]:
            assert remote.step(action) == local.step(action)
        upstream.upstream.restart()  # type: ignore[union-attr]
        with httpx.Client(base_url=upstream.url) as http:
            assert "is not valid" in http.get("/observation", params={"id": remote._env_id}).json()["error"]
        assert remote.step(plan[-1]) == local.step(plan[-1])  # re-created and replayed
        assert remote.reward == 1.0 and upstream.live_envs() == 1


def test_agentgym_env_names(url: str) -> None:
    config = EnvConfig(name=f"agentgym:{url}", max_steps=7)
    with config.make() as env:
        assert isinstance(env, AgentGymEnv) and env.max_steps == 7 and env.url == url
    with make_env(f"agentgym:{url}/", num_tasks=3) as env:
        assert env.num_tasks == 3 and env.url == url
    with pytest.raises(EnvError, match="must start with http"):
        make_env("agentgym:localhost:8000")
    with pytest.raises(ConfigError, match="bad options"):
        make_env(f"agentgym:{url}", colour="red")
    with pytest.raises(ValueError, match="unknown env"):
        EnvConfig(name="agentgym")


def test_malformed_requests_are_refused(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        created = http.post("/create", json={"minecraft_dir": "x/", "commands": None, "goal": None})  # AgentGym's
        assert created.status_code == 200 and created.json()["done"] is False
        env_id = created.json()["id"]
        assert http.get("/observation", params={"id": env_id}).json() == created.json()["observation"]
        raw = {"content": b'{"id": 0, "action": ', "headers": {"content-type": "application/json"}}
        assert http.post("/step", **raw).status_code == 422
        assert http.post("/step", json={"id": env_id}).status_code == 422
        assert http.post("/step", json={"id": str(env_id), "action": "inventory"}).status_code == 422
        assert http.post("/step", json={"id": env_id, "action": 5}).status_code == 422
        assert http.post("/step", json=[env_id, "inventory"]).status_code == 422
        assert http.post("/reset", json={"id": env_id, "data_idx": 10**6}).status_code == 422
        assert http.post("/reset", json={"id": env_id, "data_idx": -1}).status_code == 422
        assert http.post("/create", json={"data_idx": 10**6}).status_code == 422
        assert http.post("/step", json={"id": 10**9, "action": "inventory"}).status_code == 404
        assert http.get("/observation", params={"id": 10**9}).status_code == 404
        huge = http.post("/step", json={"id": env_id, "action": "x" * 70_000})
        assert huge.status_code == 413
        chunked = http.post("/step", content=iter([b'{"id": 0, "action": "', b"x" * 70_000, b'"}']))
        assert chunked.status_code == 413
        assert http.post("/step", json={"id": env_id, "action": "x" * 60_000}).status_code == 200
        plan = _plan(0)
        answers = [http.post("/step", json={"id": env_id, "action": a}).json() for a in plan]
        assert answers[-1] == {
            "observation": answers[-1]["observation"],
            "reward": 1.0,
            "done": True,
            "terminated": True,
            "truncated": False,
        }
        assert http.post("/step", json={"id": env_id, "action": "inventory"}).status_code == 409
        assert http.post("/close", json={"id": env_id}).json() == {"closed": True}
        assert http.post("/close", json={"id": env_id}).status_code == 404
    assert live_envs(url) == 0


def _plan(task_id: int) -> list[str]:
    env = TextCraftEnv()
    env.reset(task_id)
    return env.expert_actions()


def test_env_limit_refuses_and_frees() -> None:
    with running(create_app("textcraft", max_envs=2)) as base, httpx.Client(base_url=base) as http:
        ids = [http.post("/create").json()["id"] for _ in range(2)]
        full = http.post("/create")
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        with pytest.raises(EnvError, match=r"after 2 tries: HTTP 503: .*maximum of 2 live envs"):
            AgentGymEnv(base, retries=2, backoff=0.01).reset(0)
        http.post("/close", json={"id": ids[0]})
        with AgentGymEnv(base) as env:
            assert env.reset(1) == TextCraftEnv().reset(1)


def test_idle_envs_are_closed_and_the_client_replays_its_episode() -> None:
    local = TextCraftEnv()
    with running(create_app("textcraft", idle_timeout=0.2)) as base, AgentGymEnv(base) as remote:
        remote.reset(300)
        local.reset(300)
        plan = local.expert_actions()
        for action in ["jump", *plan[:-1]]:
            assert remote.step(action) == local.step(action)
        deadline = time.monotonic() + 10
        while live_envs(base) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_envs(base) == 0
        assert remote.step(plan[-1]) == local.step(plan[-1])  # re-created on the server and replayed
        assert remote.reward == 1.0 and live_envs(base) == 1


def test_shutdown_closes_every_env(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []
    monkeypatch.setattr(TextCraftEnv, "close", lambda self: closed.append(id(self)))
    app = create_app("textcraft")
    assert len(closed) == 1  # the probe that read the env's description
    with running(app) as base, httpx.Client(base_url=base) as http:
        for _ in range(3):
            http.post("/create")
        assert live_envs(base) == 3
    assert len(closed) == 4 and len(app.state.pool) == 0


def test_server_down_gives_a_clear_error() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    env = AgentGymEnv(base, num_tasks=5, retries=3, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(EnvError, match=rf"cannot reach AgentGym server at {base} after 3 tries: ConnectError"):
        env.reset(0)
    assert time.monotonic() - started < 5
    with pytest.raises(EnvError, match="cannot reach AgentGym server"):
        AgentGymEnv(base, retries=2, backoff=0.01).num_tasks  # noqa: B018 - the property asks the server
    env.close()


def webshop_like_app() -> FastAPI:
    """A server speaking WebShop's dialect of the protocol (``env_idx``, ``session_id``, ``state``)."""
    app = FastAPI()
    pages: dict[int, str] = {}

    @app.post("/create")
    def create() -> int:
        pages[len(pages)] = ""
        return len(pages) - 1

    @app.post("/reset")
    def reset(body: dict[str, Any]) -> list[Any]:
        pages[body["env_idx"]] = f"session {body['session_id']}: search"
        return [pages[body["env_idx"]], None]

    @app.get("/observation")
    def observation(env_idx: int) -> str:
        return pages[env_idx]

    @app.post("/step")
    def step(body: dict[str, Any]) -> dict[str, Any]:
        pages[body["env_idx"]] += f" > {body['action']}"
        done = body["action"] == "click[buy now]"
        return {"state": pages[body["env_idx"]], "reward": 0.5 if done else 0.0, "done": done, "info": None}

    return app


def test_client_speaks_webshop_dialect() -> None:
    with running(webshop_like_app()) as base:
        with pytest.raises(EnvError, match="does not report num_tasks"):
            AgentGymEnv(base, protocol="webshop").reset(0)
        with AgentGymEnv(base, protocol="webshop", num_tasks=10, instruction="Shop.") as env:
            assert env.instruction == "Shop." and env.task_ids("all") == list(range(10))
            assert env.reset(3) == "session 3: search"
            assert env.step("search[shoes]").observation == "session 3: search > search[shoes]"
            result = env.step("click[buy now]")
            assert (result.reward, result.terminated) == (0.5, True)
    with pytest.raises(EnvError, match="unknown AgentGym protocol"):
        AgentGymEnv(base, protocol="sqlgym")


def test_64_clients_load_the_served_cli_without_errors_or_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("env_server_bench", Path(__file__).parents[1] / "bench/env_server.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)
    with bench.served_textcraft(max_envs=64) as base:
        result = bench.run_load(base, clients=64, duration=3.0)
    assert result.errors == 0 and result.live_after == 0 and result.steps > 64
