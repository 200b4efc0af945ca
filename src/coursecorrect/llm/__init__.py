"""LLM backends behind one protocol: local transformers (batched, prefix-cached), OpenAI-compatible HTTP, vLLM's
offline engine in process, and vLLM or llama.cpp servers that coursecorrect starts and stops itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from coursecorrect.config import MAX_SAMPLES, MAX_SECONDS, MAX_SIZE, MAX_TOKENS, Config
from coursecorrect.llm.base import LLM, BackendStats, Completion, Conversation, Message, SamplingParams

MANAGED_BACKENDS = ("vllm", "vllm-server", "llama-cpp")
"""Backends that load the model they are given by path, so a run can hand them each iteration's weights."""


BACKEND_HELP = "transformers, openai, vllm, vllm-server or llama-cpp (docs/engines.md).  [default: transformers]"
"""The command line's help text of ``--backend``."""


class EngineConfig(Config):
    """Settings of the engines coursecorrect runs itself: backends ``vllm`` (in process), ``vllm-server`` and
    ``llama-cpp`` (servers on 127.0.0.1)."""

    command: list[str] | None = Field(
        None,
        description="servers: the program that starts the server, e.g. ['/opt/vllm/bin/python', '-m', "
        "'vllm.entrypoints.openai.api_server'] (default: this Python's llama_cpp.server or vLLM module)",
    )
    args: list[str] = Field(default_factory=list, description="servers: extra command-line arguments")
    env: dict[str, str] = Field(
        default_factory=dict, description="servers: extra environment variables, e.g. VLLM_CPU_KVCACHE_SPACE"
    )
    port: int | None = Field(None, ge=1, le=65535, description="servers: this port instead of a free one")
    startup_timeout: float = Field(
        900.0, gt=0, le=MAX_SECONDS, description="servers: seconds to wait for the server to answer"
    )
    max_restarts: int = Field(2, ge=0, le=MAX_SAMPLES, description="servers: restarts of a server that died, per model")
    context_length: int = Field(
        4096, ge=64, le=MAX_TOKENS, description="tokens of prompt + completion the engine accepts"
    )
    threads: int | None = Field(None, ge=1, le=MAX_SIZE, description="llama-cpp: CPU threads (default: all cores)")
    gguf_type: Literal["f32", "f16", "bf16", "q8_0"] = Field(
        "q8_0", description="llama-cpp: the GGUF type each model is converted to (q8_0: fastest on CPU)"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="vllm: keyword arguments of vllm.LLM, e.g. {gpu_memory_utilization = 0.5}"
    )


class LLMConfig(Config):
    """Which model answers, through which backend."""

    backend: Literal["transformers", "openai", "vllm", "vllm-server", "llama-cpp"] = Field(
        "transformers",
        description="'transformers' runs the model here; 'openai' calls a running OpenAI-compatible server; "
        "'vllm' runs vLLM's offline engine here; 'vllm-server' and 'llama-cpp' start a server with the model",
    )
    model: str = Field(
        "smollm2-135m-instruct",
        description="alias (smollm2-135m-instruct, tiny-random), local folder, hub id, or the server's model name",
    )
    dtype: str = Field(
        "auto",
        description="transformers: auto (float32 on CPU, bfloat16 on GPU), float32 or bfloat16 (2x faster on CPUs "
        "with AMX/AVX512_BF16, emulated and slower elsewhere)",
    )
    device: str | None = Field(None, description="transformers: cpu, cuda, ... (default: cuda if present)")
    max_batch_size: int = Field(16, ge=1, le=MAX_SIZE, description="transformers: rows per forward pass")
    cache_gb: float = Field(3.0, ge=0, description="transformers: memory for cached prompt prefixes (0 = off)")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai: the server's /v1 URL")
    api_key: str | None = Field(None, description="openai: key (default: $OPENAI_API_KEY)")
    max_concurrency: int = Field(16, ge=1, le=MAX_SIZE, description="openai and servers: requests in flight at once")
    timeout: float = Field(120.0, gt=0, le=MAX_SECONDS, description="openai: seconds per request")
    max_retries: int = Field(5, ge=0, le=MAX_SAMPLES, description="openai: retries of transient errors, with backoff")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="vllm, vllm-server, llama-cpp: settings")

    def make(self) -> LLM:
        """Load the model, start its engine, or connect to the server."""
        if self.backend in ("vllm-server", "llama-cpp"):
            from coursecorrect.llm.managed import ManagedServerLLM

            return ManagedServerLLM(
                self.backend, self.model, self.engine, dtype=self.dtype, max_concurrency=self.max_concurrency,
                timeout=self.timeout, max_retries=self.max_retries,
            )
        if self.backend == "vllm":
            from coursecorrect.llm.vllm_backend import VLLMOfflineLLM

            return VLLMOfflineLLM(self.model, dtype=self.dtype, engine=self.engine)
        if self.backend == "openai":
            from coursecorrect.llm.openai_backend import OpenAICompatibleLLM

            return OpenAICompatibleLLM(
                base_url=self.base_url, model=self.model, api_key=self.api_key,
                max_concurrency=self.max_concurrency, timeout=self.timeout, max_retries=self.max_retries,
            )
        from coursecorrect.llm.transformers_backend import TransformersLLM

        return TransformersLLM(
            self.model, dtype=self.dtype, device=self.device, max_batch_size=self.max_batch_size,
            cache_bytes=int(self.cache_gb * 2**30), prefix_caching=self.cache_gb > 0,
        )


__all__ = [
    "BACKEND_HELP", "LLM", "MANAGED_BACKENDS", "BackendStats", "Completion", "Conversation", "EngineConfig",
    "LLMConfig", "Message", "SamplingParams",
]
