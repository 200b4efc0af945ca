"""Hostile requests to ``coursecorrect env serve``: each is a 4xx with a one-line ``detail``, and the env it aimed at
plays on afterwards (the server keeps serving)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import httpx
import pytest

from coursecorrect.envs.agentgym.server import create_app
from test_agentgym import running

JSON = "application/json"
DEEP = b"[" * 30_000 + b"]" * 30_000


class Case(NamedTuple):
    """A POST of ``body`` as is, with ``ID`` replaced by the live env's id (a GET when ``body`` is None);
    ``detail`` must appear in the answer's."""

    name: str
    path: str
    body: bytes | None
    status: int
    detail: str
    content_type: str = JSON


CASES = [
    Case("create-nan", "/create", b'{"data_idx": NaN}', 422, "data_idx: Input should be a valid integer, got NaN"),
    Case("create-inf", "/create", b'{"data_idx": Infinity}', 422, "got Infinity"),
    Case("create-minus-inf", "/create", b'{"data_idx": -Infinity}', 422, "got -Infinity"),
    Case("create-overflowing-float", "/create", b'{"data_idx": 1e400}', 422, "got Infinity"),
    Case("create-float", "/create", b'{"data_idx": 1.0}', 422, "got 1.0"),
    Case("create-surrogate-idx", "/create", rb'{"data_idx": "\ud800"}', 422, r'got "\ud800"'),
    Case("create-nested-junk", "/create", b'{"data_idx": {"a": [[[{}]]]}}', 422, "body.data_idx"),
    Case("create-5000-digits", "/create", b'{"data_idx": ' + b"9" * 5000 + b"}", 422, "4300 digits"),
    Case("create-huge-int", "/create", b'{"data_idx": ' + b"9" * 30 + b"}", 422, "out of range"),
    Case("create-nan-body", "/create", b"NaN", 422, "valid dictionary or object"),
    Case("create-list-body", "/create", b"[1, 2]", 422, "valid dictionary or object"),
    Case("step-nan-id", "/step", b'{"id": NaN, "action": "inventory"}', 422, "body.id: Input should be a valid"),
    Case("step-inf-id", "/step", b'{"id": Infinity, "action": "inventory"}', 422, "got Infinity"),
    Case("step-float-id", "/step", b'{"id": 1e2, "action": "inventory"}', 422, "got 100.0"),
    Case("step-bool-id", "/step", b'{"id": true, "action": "inventory"}', 422, "got true"),
    Case("step-string-id", "/step", b'{"id": "0", "action": "inventory"}', 422, 'got "0"'),
    Case("step-huge-id", "/step", b'{"id": ' + b"9" * 30 + b', "action": "inventory"}', 404, "unknown env id"),
    Case("step-negative-id", "/step", b'{"id": -1, "action": "inventory"}', 404, "unknown env id -1"),
    Case("step-high-surrogate", "/step", rb'{"id": ID, "action": "\ud800"}', 422, "Value error, not valid Unicode"),
    Case("step-escaped-byte", "/step", rb'{"id": ID, "action": "get \udcff"}', 422, "surrogate U+DCFF at index 4"),
    Case("step-trailing-surrogate", "/step", rb'{"id": ID, "action": "ok\ud83d"}', 422, "surrogate U+D83D"),
    Case("step-reversed-pair", "/step", rb'{"id": ID, "action": "\ude00\ud83d"}', 422, "lone surrogate U+DE00"),
    Case("step-cesu8-bytes", "/step", b'{"id": ID, "action": "\xed\xa0\x80"}', 422, "lone surrogate U+D800"),
    Case("step-invalid-utf8", "/step", b'{"id": ID, "action": "\xff"}', 422, "can't decode byte 0xff"),
    Case("step-surrogate-key", "/step", rb'{"id": NaN, "action": "x", "\ud800": 1}', 422, "body.id"),
    Case("step-deep-nesting", "/step", b'{"id": ID, "action": ' + DEEP + b"}", 422, "recursion"),
    Case("step-inf-action", "/step", b'{"id": ID, "action": 1e400}', 422, "valid string, got Infinity"),
    Case("step-null-body", "/step", b"null", 422, "valid dictionary or object"),
    Case("step-string-body", "/step", b'"inventory"', 422, 'got "inventory"'),
    Case("step-no-body", "/step", b"", 422, "body: Field required"),
    Case("step-empty-object", "/step", b"{}", 422, "body.id: Field required; body.action: Field required"),
    Case("step-binary-text", "/step", b"\xff\xfe\xfd", 422, "valid dictionary or object", "text/plain"),
    Case("reset-nan-idx", "/reset", b'{"id": ID, "data_idx": NaN}', 422, "body.data_idx"),
    Case("reset-nan-id", "/reset", b'{"id": NaN, "data_idx": 0}', 422, "body.id"),
    Case("reset-huge-idx", "/reset", b'{"id": ID, "data_idx": ' + b"9" * 30 + b"}", 422, "out of range 0..543"),
    Case("close-nan-id", "/close", b'{"id": NaN}', 422, "body.id"),
    Case("close-huge-id", "/close", b'{"id": ' + b"9" * 30 + b"}", 404, "unknown env id"),
    Case("observation-nan", "/observation?id=NaN", None, 422, 'query.id: Input should be a valid integer, unable'),
    Case("observation-inf", "/observation?id=inf", None, 422, 'got "inf"'),
    Case("observation-cesu8", "/observation?id=%ED%A0%80", None, 422, "query.id"),
    Case("observation-nul", "/observation?id=%00", None, 422, r'got "\u0000"'),
    Case("observation-5000-digits", "/observation?id=" + "9" * 5000, None, 422, "exceeded maximum size"),
    Case("observation-huge-id", "/observation?id=" + "9" * 30, None, 404, "unknown env id"),
    Case("observation-no-id", "/observation", None, 422, "query.id: Field required"),
]  # fmt: skip


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with running(create_app("textcraft", max_steps=1000)) as base, httpx.Client(base_url=base) as client:
        yield client


@pytest.fixture(scope="module")
def env_id(http: httpx.Client) -> int:
    created = http.post("/create")
    assert created.status_code == 200
    return created.json()["id"]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_a_readable_4xx_and_the_env_plays_on(http: httpx.Client, env_id: int, case: Case) -> None:
    body = None if case.body is None else case.body.replace(b"ID", str(env_id).encode())
    headers = {} if body is None else {"content-type": case.content_type}
    answer = http.request("GET" if body is None else "POST", case.path, content=body, headers=headers)
    assert answer.status_code == case.status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    assert case.detail in detail
    played = http.post("/step", json={"id": env_id, "action": "inventory"})
    assert played.status_code == 200
    assert played.json()["observation"].startswith("Inventory:")
    assert http.get("/observation", params={"id": env_id}).json() == played.json()["observation"]
    assert http.get("/info").json()["live_envs"] == 1


def test_valid_unicode_actions_still_reach_the_env(http: httpx.Client, env_id: int) -> None:
    action = "😀 中文 é"
    played = http.post("/step", json={"id": env_id, "action": action})
    assert played.status_code == 200 and played.json()["observation"] == f"Could not execute {action}"
    assert http.get("/observation", params={"id": env_id}).json() == f"Could not execute {action}"
