"""LLM backends behind one protocol: local transformers (batched, prefix-cached), OpenAI-compatible HTTP, vLLM's
offline engine in process, and vLLM or llama.cpp servers that coursecorrect starts and stops itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from coursecorrect.config import MAX_SAMPLES, MAX_SECONDS, MAX_SIZE, Config
from coursecorrect.llm.base import LLM, BackendStats, Chat, ChatMessage, Completion, SamplingParams
from coursecorrect.llm.engine import EngineConfig

MANAGED_BACKENDS = ("vllm", "vllm-server", "llama-cpp")
"""Backends that load the model they are given by path, so a run can hand them each iteration's weights."""


BACKEND_HELP = "transformers, openai, vllm, vllm-server or llama-cpp (docs/engines.md).  [default: transformers]"
"""The command line's help text of ``--backend``."""


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
    "BACKEND_HELP", "LLM", "MANAGED_BACKENDS", "BackendStats", "Chat", "ChatMessage", "Completion",
    "EngineConfig", "LLMConfig", "SamplingParams",
]
