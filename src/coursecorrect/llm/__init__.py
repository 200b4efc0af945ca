"""LLM backends behind one protocol: local transformers (batched, prefix-cached) and OpenAI-compatible HTTP."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from coursecorrect.config import Config
from coursecorrect.llm.base import LLM, BackendStats, Completion, Conversation, Message, SamplingParams


class LLMConfig(Config):
    """Which model answers, through which backend."""

    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="'transformers' runs the model here; 'openai' calls an OpenAI-compatible server"
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
    max_batch_size: int = Field(16, ge=1, description="transformers: rows per forward pass")
    cache_gb: float = Field(3.0, ge=0, description="transformers: memory for cached prompt prefixes (0 = off)")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai: the server's /v1 URL")
    api_key: str | None = Field(None, description="openai: key (default: $OPENAI_API_KEY)")
    max_concurrency: int = Field(16, ge=1, description="openai: requests in flight at once")
    timeout: float = Field(120.0, gt=0, description="openai: seconds per request")
    max_retries: int = Field(5, ge=0, description="openai: retries of transient errors, with backoff")

    def make(self) -> LLM:
        """Load the model or connect to the server."""
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


__all__ = ["LLM", "BackendStats", "Completion", "Conversation", "LLMConfig", "Message", "SamplingParams"]
