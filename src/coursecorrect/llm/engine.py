"""Settings of the engines coursecorrect runs itself, apart from :class:`~coursecorrect.llm.LLMConfig` so that the
engines' modules can name them without importing the package that chooses among them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from coursecorrect.config import MAX_SAMPLES, MAX_SECONDS, MAX_SIZE, MAX_TOKENS, Config


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
