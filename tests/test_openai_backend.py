"""OpenAICompatibleLLM against a real llama-cpp-python server (marked ``server``), plus a tiny local HTTP
server as a test double for what a real server can't be made to do on demand (5xx, 429, peak concurrency)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import llama_server
from coursecorrect.errors import BackendError
from coursecorrect.llm.base import LLM, SamplingParams
from coursecorrect.llm.openai_backend import OpenAICompatibleLLM

STORY = [{"role": "user", "content": "Write a long story about a cat who learns to sail."}]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three colors."}],
    STORY,
]


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    with llama_server.running_server() as url:
        yield url


@pytest.fixture
def llm(base_url: str) -> Iterator[OpenAICompatibleLLM]:
    with OpenAICompatibleLLM(llama_server.MODEL_ALIAS, base_url, max_retries=2, backoff=0.1) as backend:
        yield backend


@pytest.mark.server
@pytest.mark.skipif(
    llama_server.why_unavailable() is not None and os.environ.get("COURSECORRECT_REQUIRE_SERVER") != "1",
    reason=f"{llama_server.why_unavailable()} (CI installs the server extra and sets COURSECORRECT_REQUIRE_SERVER=1)",
)
class TestLlamaServer:
    def test_batch_has_n_completions_per_conversation_in_order(self, llm: OpenAICompatibleLLM) -> None:
        assert isinstance(llm, LLM)
        sampled = llm.generate(CONVERSATIONS, SamplingParams(n=2, temperature=0.8, max_new_tokens=8, seed=0))
        assert [len(row) for row in sampled] == [2, 2, 2]
        assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for row in sampled for c in row)
        greedy = SamplingParams(max_new_tokens=12)
        batch = llm.generate(CONVERSATIONS, greedy)
        assert [row[0].text for row in batch] == [llm.generate([c], greedy)[0][0].text for c in CONVERSATIONS]
        assert llm.stats.calls == 5 and llm.stats.completion_tokens > 0

    def test_greedy_is_deterministic(self, llm: OpenAICompatibleLLM) -> None:
        params = SamplingParams(n=3, max_new_tokens=16)
        first = llm.generate([STORY], params)
        assert len({c.text for c in first[0]}) == 1
        assert llm.generate([STORY], params) == first

    def test_seeded_sampling_is_reproducible_and_samples_differ(self, llm: OpenAICompatibleLLM) -> None:
        params = SamplingParams(n=4, temperature=1.0, max_new_tokens=16, seed=7)
        first = llm.generate([STORY], params)
        assert llm.generate([STORY], params) == first
        assert len({c.text for c in first[0]}) > 1

    def test_max_tokens_and_stop_strings(self, llm: OpenAICompatibleLLM) -> None:
        [[cut]] = llm.generate([STORY], SamplingParams(max_new_tokens=5))
        assert (cut.finish_reason, cut.completion_tokens) == ("length", 5)
        [[full]] = llm.generate([STORY], SamplingParams(max_new_tokens=24))
        stop = full.text.split()[3]
        [[stopped]] = llm.generate([STORY], SamplingParams(max_new_tokens=24, stop=(stop, "\n\n\n")))
        assert stopped.finish_reason == "stop"
        assert stopped.text == full.text[: full.text.index(stop)]

    def test_client_error_fails_at_once(self, base_url: str) -> None:
        too_long = [{"role": "user", "content": "hello " * llama_server.N_CTX}]
        with OpenAICompatibleLLM(llama_server.MODEL_ALIAS, base_url, max_retries=3, backoff=30) as llm:
            start = time.monotonic()
            with pytest.raises(BackendError, match=r"rejected the request: HTTP 400: .*context length"):
                llm.generate([too_long], SamplingParams())
            assert time.monotonic() - start < 10 and llm.stats.extra["retries"] == 0

    def test_retries_until_the_server_comes_up(self, tmp_path: Path) -> None:
        port = llama_server.free_port()
        proc = llama_server.start(port, tmp_path / "server.log")  # listens only once the model is loaded
        try:
            url = f"http://127.0.0.1:{port}/v1"
            with OpenAICompatibleLLM("any", url, max_retries=120, backoff=0.2, max_backoff=0.5) as llm:
                [[completion]] = llm.generate([STORY], SamplingParams(max_new_tokens=4))
                assert completion.completion_tokens == 4 and llm.stats.extra["retries"] >= 1
        finally:
            llama_server.stop(proc)


def test_unreachable_server_raises_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{llama_server.free_port()}/v1"
    with OpenAICompatibleLLM("m", url, max_retries=2, backoff=0.01) as llm:
        with pytest.raises(BackendError) as error:
            llm.generate([STORY], SamplingParams())
    assert str(error.value) == f"cannot reach OpenAI-compatible server at {url}: Connection refused (after 3 attempts)"


class StubServer(ThreadingHTTPServer):
    """Answers chat completions after ``delay`` s, first with the (status, body) pairs in ``script``, then
    with a fixed completion without ``usage``; counts requests and the peak number in flight."""

    def __init__(self, delay: float = 0.0, script: list[tuple[int, dict]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.delay, self.script = delay, list(script or [])
        self.requests = self.in_flight = self.peak = 0
        self.bodies: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def respond(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.bodies.append(body)
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
            if self.script:
                return self.script.pop(0)
        return 200, {"choices": [{"message": {"content": "ok"}, "finish_reason": "length"}]}


class _StubHandler(BaseHTTPRequestHandler):
    server: StubServer

    def do_POST(self) -> None:
        status, body = self.server.respond(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub(request: pytest.FixtureRequest) -> Iterator[StubServer]:
    server = StubServer(**getattr(request, "param", {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("stub", [{"delay": 0.2}], indirect=True)
def test_concurrency_is_bounded(stub: StubServer) -> None:
    with OpenAICompatibleLLM("m", stub.url, max_concurrency=2) as llm:
        result = llm.generate([STORY] * 4, SamplingParams(n=2, temperature=1.0))
    assert [len(row) for row in result] == [2] * 4
    assert (stub.requests, stub.peak) == (8, 2)


@pytest.mark.parametrize(
    "stub", [{"script": [(503, {"error": {"message": "busy"}}), (429, {"detail": "slow down"})]}], indirect=True
)
def test_5xx_and_429_are_retried(stub: StubServer) -> None:
    with OpenAICompatibleLLM("m", stub.url, max_retries=2, backoff=0.01) as llm:
        [[completion]] = llm.generate([STORY], SamplingParams())
        assert llm.stats.extra["retries"] == 2
    assert (completion.text, completion.finish_reason, completion.prompt_tokens) == ("ok", "length", 0)
    assert stub.requests == 3


@pytest.mark.parametrize("stub", [{"script": [(404, {"error": {"message": "no model 'm'"}})]}], indirect=True)
def test_4xx_is_not_retried_and_shows_the_server_message(stub: StubServer) -> None:
    with OpenAICompatibleLLM("m", stub.url, max_retries=3, backoff=0.01) as llm:
        with pytest.raises(BackendError, match="HTTP 404: no model 'm'"):
            llm.generate([STORY], SamplingParams())
    assert stub.requests == 1


def test_agenerate_from_a_running_loop_and_close(stub: StubServer) -> None:
    llm = OpenAICompatibleLLM("m", stub.url)
    result = asyncio.run(llm.agenerate([STORY, STORY], SamplingParams(n=3)))
    assert [[c.text for c in row] for row in result] == [["ok"] * 3] * 2
    assert stub.requests == 2  # greedy: one request per conversation
    llm.close()
    llm.close()
    with pytest.raises(BackendError, match="closed"):
        llm.generate([STORY], SamplingParams())


def test_each_conversation_samples_with_its_own_seeds(stub: StubServer) -> None:
    """Sample j of conversation i is sent with seed s_i + j: seeds[i] when given, else seed + i * n."""
    other = [{"role": "user", "content": "hello"}]
    with OpenAICompatibleLLM("m", stub.url) as llm:
        llm.generate([STORY, other], SamplingParams(n=2, temperature=1.0, seeds=(100, 5)))
        sent = {(b["messages"][0]["content"], b["seed"]) for b in stub.bodies}
        assert sent == {(STORY[0]["content"], 100), (STORY[0]["content"], 101), ("hello", 5), ("hello", 6)}
        stub.bodies.clear()
        llm.generate([STORY, other], SamplingParams(n=2, temperature=1.0, seed=10))
        assert sorted(b["seed"] for b in stub.bodies) == [10, 11, 12, 13]
        with pytest.raises(ValueError, match="1 seeds for 2 conversations"):
            llm.generate([STORY, other], SamplingParams(temperature=1.0, seeds=(1,)))
