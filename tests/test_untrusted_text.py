"""Model text is untrusted: a lone surrogate in what a backend generates (a JSON escape such as ``\\ud800`` from a
server, or surrogate-escaped bytes such as ``\\udcff``) is replaced by U+FFFD where it enters, so the text can
always be written as UTF-8."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from coursecorrect.llm import EngineConfig
from coursecorrect.llm.base import SamplingParams
from coursecorrect.llm.managed import ManagedServerLLM
from coursecorrect.llm.models import TINY_RANDOM
from coursecorrect.llm.openai_backend import OpenAICompatibleLLM
from coursecorrect.llm.transformers_backend import TransformersLLM
from coursecorrect.llm.vllm_backend import VLLMOfflineLLM
from coursecorrect.text import replace_surrogates
from test_openai_backend import StubServer

HELLO = [{"role": "user", "content": "Say hello."}]
DIRTY = "craft \ud800x and \udcffy 😀"
CLEAN = "craft \ufffdx and \ufffdy 😀"
REPLY = {"choices": [{"message": {"content": DIRTY}, "finish_reason": "stop"}]}  # json.dumps escapes the surrogates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\ud800x", "\ufffdx"),
        ("\udcffy", "\ufffdy"),
        ("a\udbff\udfffb", "a\ufffd\ufffdb"),  # a pair of separate code points is no character either
        ("plain ASCII", "plain ASCII"),
        ("emoji 😀🚀, CJK 中文字, accents éß, RTL مرحبا", "emoji 😀🚀, CJK 中文字, accents éß, RTL مرحبا"),
        ("", ""),
    ],
)
def test_replace_surrogates_leaves_only_valid_utf8(text: str, expected: str) -> None:
    assert replace_surrogates(text) == expected
    assert expected.encode("utf-8").decode("utf-8") == expected


def test_openai_backend_sanitises_a_servers_json_escapes() -> None:
    stub = StubServer(script=[(200, REPLY)])
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        with OpenAICompatibleLLM("m", stub.url) as llm:
            [[completion]] = llm.generate([HELLO], SamplingParams())
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join()
    assert completion.text == CLEAN


FAKE_ENGINE = textwrap.dedent("""
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(b'{"data": []}')

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.answer(REPLY)

        def answer(self, data):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
""")


def test_managed_server_backends_sanitise_their_servers_text(tmp_path: Path) -> None:
    """``vllm-server`` and ``llama-cpp`` talk to the server they start through the OpenAI-compatible client."""
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    script = f"REPLY = {json.dumps(REPLY).encode()!r}\n{FAKE_ENGINE}"
    engine = EngineConfig(command=[sys.executable, "-c", script], startup_timeout=60)
    with ManagedServerLLM("vllm-server", str(tmp_path), engine) as llm:
        [[completion]] = llm.generate([HELLO], SamplingParams())
    assert completion.text == CLEAN


@pytest.mark.usefixtures("one_torch_thread")
def test_transformers_backend_sanitises_decoded_text(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu")
    monkeypatch.setattr(llm.tokenizer, "decode", lambda ids, **kwargs: DIRTY)
    [[completion]] = llm.generate([HELLO], SamplingParams(max_new_tokens=2))
    assert completion.text == CLEAN


class _FakeVLLM:
    """The part of ``vllm.LLM`` the offline backend uses; every request is answered with ``DIRTY``."""

    def __init__(self, model: str, **options: Any) -> None:
        pass

    def chat(self, prompts: list[Any], sampling_params: list[Any], use_tqdm: bool) -> list[SimpleNamespace]:
        choice = SimpleNamespace(text=DIRTY, token_ids=[1, 2], finish_reason="stop")
        return [SimpleNamespace(outputs=[choice], prompt_token_ids=[1], num_cached_tokens=0) for _ in prompts]


def test_vllm_offline_backend_sanitises_generated_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=_FakeVLLM, SamplingParams=dict))
    llm = VLLMOfflineLLM(str(tmp_path), engine=EngineConfig())
    [[completion]] = llm.generate([HELLO], SamplingParams())
    assert completion.text == CLEAN
