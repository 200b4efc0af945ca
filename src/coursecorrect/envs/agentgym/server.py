"""Serve any registered coursecorrect env over AgentGym's HTTP protocol (see ``coursecorrect.envs.agentgym``).

    coursecorrect env serve textcraft --port 8000

Requests are validated (422, with a one-line ``detail``, on malformed JSON or fields, NaN or Infinity for an
integer and lone surrogates in an action; 404 on an unknown env id, 413 on bodies over ``max_body`` bytes, 503
when ``max_envs`` envs are live). Env calls block, so they run in the threadpool, and a per-env lock keeps one
env from being stepped by two requests at once. Envs idle for ``idle_timeout`` seconds are closed, and every
env is closed on shutdown.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, StrictInt, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursecorrect.envs import make_env
from coursecorrect.envs.base import Env
from coursecorrect.errors import EnvError

MAX_BODY = 64 * 1024


def _unicode(text: str) -> str:
    """``text`` if UTF-8 can encode it, else a ``ValueError`` naming its first lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = f"U+{ord(text[exc.start]):04X}"
        raise ValueError(f"not valid Unicode: lone surrogate {surrogate} at index {exc.start}") from None
    return text


UnicodeStr = Annotated[StrictStr, AfterValidator(_unicode)]
"""A string field that refuses lone surrogates (``"\\ud800"`` in JSON), which no env should see or echo."""


class _JSONRequest(Request):
    """A request whose unreadable JSON body is always a decode error (FastAPI's 422), never a bare 400: invalid
    UTF-8, nesting deeper than Python's recursion limit, or a number over Python's 4,300 digits."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(str(exc).split(";")[0], "", 0) from exc


class _JSONRoute(APIRoute):
    """A route that reads its body as a ``_JSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return handle


class CreateBody(BaseModel):
    """``/create``: the task to start (AgentGym clients may send other fields; they are ignored)."""

    data_idx: StrictInt = 0


class ResetBody(BaseModel):
    id: StrictInt
    data_idx: StrictInt = 0


class StepBody(BaseModel):
    id: StrictInt
    action: UnicodeStr


class CloseBody(BaseModel):
    id: StrictInt


@dataclass
class _Slot:
    """One live env, its lock, its latest observation and when it was last used (monotonic seconds)."""

    env: Env
    observation: str
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class PoolFull(Exception):
    """No room for another live env."""


class UnknownEnv(Exception):
    """No live env has this id."""


class EnvPool:
    """The live envs of a server, by id: at most ``max_envs``, closed after ``idle_timeout`` idle seconds."""

    def __init__(self, factory: Callable[[], Env], max_envs: int, idle_timeout: float) -> None:
        self.factory = factory
        self.max_envs = max_envs
        self.idle_timeout = idle_timeout
        self._slots: dict[int, _Slot] = {}
        self._reserved = 0
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def create(self, task_id: int) -> tuple[int, str]:
        """Start a new env at ``task_id``; return its id and first observation."""
        with self._lock:
            if len(self._slots) + self._reserved >= self.max_envs:
                raise PoolFull(f"the server holds its maximum of {self.max_envs} live envs; close one first")
            self._reserved += 1
        try:
            env = self.factory()
            try:
                observation = env.reset(task_id)
            except BaseException:
                env.close()
                raise
            with self._lock:
                env_id = next(self._ids)
                self._slots[env_id] = _Slot(env, observation)
            return env_id, observation
        finally:
            with self._lock:
                self._reserved -= 1

    @contextmanager
    def use(self, env_id: int) -> Iterator[_Slot]:
        """Hold env ``env_id`` for one call; ``UnknownEnv`` if no such env is live."""
        with self._lock:
            slot = self._slots.get(env_id)
        if slot is None:
            raise UnknownEnv(env_id)
        with slot.lock:
            if slot.closed:
                raise UnknownEnv(env_id)
            slot.used = time.monotonic()
            try:
                yield slot
            finally:
                slot.used = time.monotonic()

    def close(self, env_id: int) -> bool:
        """Close env ``env_id``; ``False`` if it was not live."""
        with self._lock:
            slot = self._slots.pop(env_id, None)
        if slot is None:
            return False
        with slot.lock:
            self._close(slot)
        return True

    def reap(self) -> int:
        """Close the envs idle for longer than ``idle_timeout``; return how many."""
        deadline = time.monotonic() - self.idle_timeout
        idle = []
        with self._lock:
            for env_id, slot in list(self._slots.items()):
                if slot.used < deadline and slot.lock.acquire(blocking=False):
                    del self._slots[env_id]
                    idle.append(slot)
        for slot in idle:
            try:
                self._close(slot)
            finally:
                slot.lock.release()
        return len(idle)

    def close_all(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            with slot.lock:
                self._close(slot)

    @staticmethod
    def _close(slot: _Slot) -> None:
        slot.closed = True
        slot.env.close()


class BodyLimit:
    """ASGI middleware: answer 413 to request bodies over ``max_bytes`` without handing them on."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            await JSONResponse({"detail": "malformed Content-Length"}, 400)(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.max_bytes} bytes"
        await JSONResponse({"detail": detail}, 413, headers={"Connection": "close"})(scope, receive, send)


router = APIRouter(route_class=_JSONRoute)
"""AgentGym's routes. Each app keeps its env pool in ``app.state.pool`` and the env's fixed facts (``/info``'s
name, tasks, instruction, step limit and splits) in ``app.state.info``."""


def create_app(
    env_name: str,
    *,
    max_envs: int = 256,
    idle_timeout: float = 600.0,
    max_steps: int = 100,
    max_body: int = MAX_BODY,
    env_options: dict[str, Any] | None = None,
) -> FastAPI:
    """An app serving env ``env_name`` (built with ``max_steps`` and ``env_options``) over AgentGym's protocol."""
    if max_envs < 1 or idle_timeout <= 0 or max_body < 1:
        raise EnvError("max_envs, idle_timeout and max_body must be positive")

    def factory() -> Env:
        return make_env(env_name, max_steps=max_steps, **(env_options or {}))

    info = _env_info(env_name, factory, max_steps)
    app = FastAPI(
        title=f"coursecorrect {env_name} env server",
        lifespan=_lifespan,
        exception_handlers={RequestValidationError: _invalid_request},
    )
    app.state.info = info
    app.state.pool = EnvPool(factory, max_envs, idle_timeout)
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app


def _env_info(env_name: str, factory: Callable[[], Env], max_steps: int) -> dict[str, Any]:
    """What ``/info`` tells of the env besides its live envs: read once, from a probe env."""
    with factory() as probe:
        return {
            "name": env_name,
            "num_tasks": probe.num_tasks,
            "instruction": probe.instruction,
            "max_steps": max_steps,
            "splits": {split: probe.task_ids(split) for split in probe.splits},
        }


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Reap idle envs while the app runs; close every env on shutdown."""
    pool: EnvPool = app.state.pool
    reaper = asyncio.create_task(_reap_forever(pool))
    try:
        yield
    finally:
        reaper.cancel()
        await run_in_threadpool(pool.close_all)


def _pool(request: Request) -> EnvPool:
    return request.app.state.pool


def _check_task(request: Request, task_id: int) -> None:
    """422 unless ``task_id`` is one of the env's tasks."""
    num_tasks = request.app.state.info["num_tasks"]
    if not 0 <= task_id < num_tasks:
        raise HTTPException(422, f"data_idx {task_id} out of range 0..{num_tasks - 1}")


@contextmanager
def _env_slot(request: Request, env_id: int) -> Iterator[_Slot]:
    """Hold live env ``env_id`` for one call; 404 if there is none."""
    try:
        with _pool(request).use(env_id) as slot:
            yield slot
    except UnknownEnv:
        raise HTTPException(404, f"unknown env id {env_id} (closed, idle too long, or never created)") from None


@router.get("/")
def hello(request: Request) -> str:
    return f"This is environment {request.app.state.info['name']}."


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    pool = _pool(request)
    return {**request.app.state.info, "live_envs": len(pool), "max_envs": pool.max_envs}


@router.post("/create")
def create(request: Request, body: CreateBody | None = None) -> dict[str, Any]:
    task_id = body.data_idx if body else 0
    _check_task(request, task_id)
    try:
        env_id, observation = _pool(request).create(task_id)
    except PoolFull as full:
        raise HTTPException(503, str(full), headers={"Retry-After": "1"}) from None
    return {"id": env_id, "observation": observation, "reward": 0.0, "done": False}


@router.post("/reset")
def reset(request: Request, body: ResetBody) -> dict[str, Any]:
    _check_task(request, body.data_idx)
    with _env_slot(request, body.id) as slot:
        slot.observation = slot.env.reset(body.data_idx)
    return {"id": body.id, "observation": slot.observation, "reward": 0.0, "done": False}


@router.post("/step")
def step(request: Request, body: StepBody) -> dict[str, Any]:
    with _env_slot(request, body.id) as slot:
        try:
            result = slot.env.step(body.action)
        except EnvError as exc:
            raise HTTPException(409, str(exc)) from None
        slot.observation = result.observation
    return {
        "observation": result.observation,
        "reward": result.reward,
        "done": result.done,
        "terminated": result.terminated,
        "truncated": result.truncated,
    }


@router.get("/observation")
def observation(request: Request, id: int) -> str:
    with _env_slot(request, id) as slot:
        return slot.observation


@router.post("/close")
def close(request: Request, body: CloseBody) -> dict[str, bool]:
    if not _pool(request).close(body.id):
        raise HTTPException(404, f"unknown env id {body.id}")
    return {"closed": True}


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with a one-line ``detail``, whatever the request held (NaN, Infinity, lone surrogates, raw bytes)."""
    return JSONResponse({"detail": "; ".join(_describe(error) for error in exc.errors())}, 422)


def _describe(error: dict[str, Any]) -> str:
    """One validation error as ``where: what, got value``; only numbers, strings and booleans are shown."""
    what = error["msg"]
    if error["type"] == "json_invalid":
        what += f" ({error['ctx']['error']})"
    value = error.get("input")
    if isinstance(value, int | float | str):
        shown = json.dumps(value)  # ASCII, with NaN, Infinity and lone surrogates spelled out
        what += f", got {shown if len(shown) <= 40 else shown[:37] + '...'}"
    return f"{'.'.join(map(str, error['loc']))}: {what}"


async def _reap_forever(pool: EnvPool) -> None:
    interval = max(0.05, min(pool.idle_timeout / 4, 10.0))
    while True:
        await asyncio.sleep(interval)
        await run_in_threadpool(pool.reap)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run ``app`` on uvicorn until interrupted; shutting down closes every env."""
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
