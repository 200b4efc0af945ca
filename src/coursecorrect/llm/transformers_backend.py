"""A local Hugging Face transformers backend with batched generation and automatic prefix caching."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StaticCache

from coursecorrect.errors import BackendError
from coursecorrect.llm.base import BackendStats, Chat, Completion, SamplingParams
from coursecorrect.llm.models import DEFAULT_MODEL, default_device, load_model_and_tokenizer
from coursecorrect.llm.prefix_cache import (
    CacheEntry,
    PrefixCache,
    batch_static_cache,
    extract_entry,
    repeat_rows,
)

DEFAULT_CACHE_BYTES = 3 * 2**30


@dataclass
class _Batch:
    """One padded chunk of prompts, laid out as [pad, cached_i, pad, suffix_i] per row."""

    prompts: list[torch.Tensor]
    sources: list[CacheEntry | None]
    cached: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    width_cached: int  # P: the common (padded) length of the cached part


class TransformersLLM:
    """The :class:`~coursecorrect.llm.base.LLM` protocol over a local causal LM.

    Every call renders each conversation with the chat template (``add_generation_prompt=True``), batches
    them with left padding (``max_batch_size`` rows at a time, samples included), and reuses the KV state of
    the longest previously seen token prefix, kept in an LRU store of ``cache_bytes``. With greedy decoding
    the result is the same as plain ``model.generate`` on the same prompts. Sampling draws every row with its
    own generator, seeded as :class:`~coursecorrect.llm.base.SamplingParams` says (unseeded calls take their
    base from torch's global RNG), so a conversation's samples do not depend on the batch it shares. Call
    :meth:`clear_cache` after changing the model's weights: cached KV state would be stale.

    Pass ``model`` and ``tokenizer`` to wrap objects already in memory (e.g. a model being trained); then
    ``model_name`` is only the reported name.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        dtype: str | torch.dtype = "auto",
        device: str | None = None,
        max_batch_size: int = 16,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        prefix_caching: bool = True,
        model: torch.nn.Module | None = None,
        tokenizer: object | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise BackendError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if (model is None) != (tokenizer is None):
            raise BackendError("pass both model and tokenizer, or neither")
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_name, dtype=dtype, device=device or default_device())
        self.name = model_name
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.prefix_caching = prefix_caching
        self.cache = PrefixCache(cache_bytes)
        self.stats = BackendStats()
        self._warned_cache = False
        self._eos = tokenizer.eos_token_id
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions of the next assistant turn for each conversation, in order."""
        prompts = [self._encode(conv) for conv in conversations]
        self._check_cache_budget(prompts, params)
        # Sampling n > 1 greedy rows would decode the same tokens n times: decode once, copy.
        samples = params.n if params.temperature > 0 else 1
        per_chunk = max(1, self.max_batch_size // samples)
        # Similar lengths together keep padding small; results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        seeds = params.conversation_seeds(len(prompts), _fresh_seed) if params.temperature > 0 else None
        results: list[list[Completion]] = [[] for _ in prompts]
        with torch.inference_mode():
            for start in range(0, len(order), per_chunk):
                chunk = order[start : start + per_chunk]
                row_seeds = [seeds[i] + j for i in chunk for j in range(samples)] if seeds is not None else None
                outs = self._generate_chunk([prompts[i] for i in chunk], params, samples, row_seeds)
                for i, out in zip(chunk, outs, strict=True):
                    results[i] = out * (params.n // samples)
        self.stats.calls += 1
        self.stats.extra["cache_bytes"] = float(self.cache.nbytes)
        self.stats.extra["cache_entries"] = float(len(self.cache))
        return results

    def clear_cache(self) -> None:
        """Forget all cached KV state (needed after the model's weights change)."""
        self.cache.clear()

    def close(self) -> None:
        self.clear_cache()

    # -- internals -------------------------------------------------------------------------------------

    def kv_bytes_per_token(self) -> int:
        """Bytes of key/value state one token keeps in the cache."""
        config = self.model.config
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return config.num_hidden_layers * 2 * heads * head_dim * self.model.dtype.itemsize

    def _check_cache_budget(self, prompts: list[torch.Tensor], params: SamplingParams) -> None:
        """Warn once when a call's KV state outgrows the prefix cache: rows would be evicted and re-prefilled
        in full at every step, which slows long lock-step runs many times over."""
        if not self.prefix_caching or self._warned_cache:
            return
        needed = sum(len(p) + params.max_new_tokens for p in prompts) * params.n * self.kv_bytes_per_token()
        if needed > self.cache.max_bytes:
            self._warned_cache = True
            warnings.warn(
                f"this batch's KV state ({needed / 2**30:.1f} GiB) exceeds the prefix cache "
                f"({self.cache.max_bytes / 2**30:.1f} GiB): cached prompts will be evicted and prefilled again; "
                "raise cache_gb or lower the batch size",
                stacklevel=3,
            )

    def _encode(self, conversation: Chat) -> torch.Tensor:
        messages = [{"role": m["role"], "content": m["content"]} for m in conversation]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def _layout(self, prompts: list[torch.Tensor]) -> _Batch:
        """Look up each prompt's cached prefix (leaving >= 1 token to feed) and lay the rows out."""
        lookups = [self.cache.lookup(p) if self.prefix_caching else (None, 0) for p in prompts]
        cached = [min(n, len(p) - 1) for p, (_, n) in zip(prompts, lookups, strict=True)]
        width_p = max(cached)
        width_s = max(len(p) - c for p, c in zip(prompts, cached, strict=True))
        ids = torch.full((len(prompts), width_p + width_s), self._pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, c) in enumerate(zip(prompts, cached, strict=True)):
            ids[i, width_p - c : width_p] = p[:c]
            ids[i, width_p + width_s - (len(p) - c) :] = p[c:]
            mask[i, width_p - c : width_p] = 1
            mask[i, width_p + width_s - (len(p) - c) :] = 1
        return _Batch(prompts, [e for e, _ in lookups], cached, ids, mask, width_p)

    def _prefill(self, batch: _Batch, max_len: int) -> StaticCache:
        """A KV cache covering all but the last column: cached rows copied in, the new suffixes computed."""
        kv = batch_static_cache(list(zip(batch.sources, batch.cached, strict=True)), self.model.config, max_len)
        width = batch.input_ids.shape[1] - 1
        if width > batch.width_cached:
            device = self.model.device
            mask = batch.attention_mask[:, :width].to(device)
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
            new = slice(batch.width_cached, width)
            self.model(
                input_ids=batch.input_ids[:, new].to(device),
                attention_mask=mask,
                position_ids=positions[:, new],
                cache=kv,
                use_cache=True,
                logits_to_keep=1,  # the prefill's logits are not needed; skip the vocab projection
            )
        return kv

    def _generate_chunk(
        self, prompts: list[torch.Tensor], params: SamplingParams, samples: int, row_seeds: list[int] | None
    ) -> list[list[Completion]]:
        """Each prompt's ``samples`` completions; when sampling, row ``i * samples + j`` uses ``row_seeds`` of
        that row."""
        batch = self._layout(prompts)
        t0 = time.perf_counter()
        max_len = batch.input_ids.shape[1] + params.max_new_tokens
        kv = self._prefill(batch, max_len)
        if samples > 1:  # prefill once per prompt, then decode its n samples from copies of that state
            kv = repeat_rows(kv, self.model.config, max_len, samples)
        input_ids = batch.input_ids.repeat_interleave(samples, dim=0).to(self.model.device)
        mask = batch.attention_mask.repeat_interleave(samples, dim=0).to(self.model.device)
        t1 = time.perf_counter()
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            cache=kv,
            **self._generation_kwargs(params, row_seeds),
        )
        t2 = time.perf_counter()
        generated = out.sequences[:, input_ids.shape[1] :].cpu()
        completions = [self._completion(row, len(prompts[r // samples]), params) for r, row in enumerate(generated)]
        if self.prefix_caching:
            self._store(batch, out.cache, mask, generated, completions, samples)
        self._account(batch, completions, t1 - t0, t2 - t1)
        return [completions[i * samples : (i + 1) * samples] for i in range(len(prompts))]

    def _generation_kwargs(self, params: SamplingParams, row_seeds: list[int] | None) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": False,  # greedy search; when sampling, _RowSampler's noisy scores make its argmax a sample
            "eos_token_id": self._eos,
            "pad_token_id": self._pad,
            "return_dict_in_generate": True,
            "disable_compile": True,  # a StaticCache would trigger torch.compile on GPUs, per new shape
        }
        if row_seeds is not None:
            kwargs["logits_processor"] = LogitsProcessorList([_RowSampler(row_seeds, params.temperature, params.top_p)])
        if params.stop:
            # Lets rows stop early; the text is still cut at the first stop string afterwards.
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _completion(self, tokens: torch.Tensor, prompt_len: int, params: SamplingParams) -> Completion:
        """Text up to the first stop string or end-of-turn token; the token count includes that eos."""
        ids = tokens.tolist()
        # Rows that finish early are padded, and pad may equal eos: the first eos ends the row either way.
        end = ids.index(self._eos) if self._eos in ids else len(ids)
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=False)
        cuts = [i for i in (text.find(s) for s in params.stop) if i >= 0]
        if cuts:
            n_tokens = self._count_until_stop(ids[:end], params.stop)
            return Completion(text[: min(cuts)], prompt_len, n_tokens, "stop")
        if end < len(ids):
            return Completion(text, prompt_len, end + 1, "stop")
        return Completion(text, prompt_len, len(ids), "length")

    def _count_until_stop(self, ids: list[int], stop: tuple[str, ...]) -> int:
        """The number of tokens whose decoded text first contains a stop string."""
        for n in range(1, len(ids) + 1):
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=False)
            if any(s in text for s in stop):
                return n
        return len(ids)

    def _store(
        self,
        batch: _Batch,
        kv: StaticCache,
        mask: torch.Tensor,
        generated: torch.Tensor,
        completions: list[Completion],
        samples: int,
    ) -> None:
        """Keep each row's prompt + generated KV; drop source entries that the new ones extend."""
        in_cache = int(kv.get_seq_length()) - mask.shape[1]  # the last sampled token was never fed back
        for r, comp in enumerate(completions):
            i = r // samples
            kept = min(comp.completion_tokens, in_cache)
            positions = torch.cat(
                [mask[r].nonzero().squeeze(1), mask.shape[1] + torch.arange(kept, device=mask.device)]
            )
            tokens = torch.cat([batch.prompts[i], generated[r, :kept]])
            self.cache.insert(extract_entry(kv, r, positions, tokens))
            source = batch.sources[i]
            if (
                source is not None
                and len(source.tokens) <= len(tokens)
                and bool((source.tokens == tokens[: len(source.tokens)]).all())
            ):
                self.cache.discard(source)

    def _account(self, batch: _Batch, completions: list[Completion], prefill_s: float, decode_s: float) -> None:
        self.stats.prompt_tokens += sum(len(p) for p in batch.prompts)
        self.stats.cached_prompt_tokens += sum(batch.cached)
        self.stats.completion_tokens += sum(c.completion_tokens for c in completions)
        self.stats.extra["prefill_seconds"] = self.stats.extra.get("prefill_seconds", 0.0) + prefill_s
        self.stats.extra["generate_seconds"] = self.stats.extra.get("generate_seconds", 0.0) + decode_s


class _RowSampler(LogitsProcessor):
    """Temperature and nucleus (top-p) sampling with one generator per row, by the Gumbel-max trick.

    Each step adds Gumbel noise, drawn from the row's own generator, to the row's logits / temperature (the
    tokens outside the nucleus set to -inf); greedy search then emits the argmax, which is a sample of the
    softmax. A row's tokens thus depend on its seed and its own logits only, not on the other rows. Unlike
    inverse-CDF sampling, the pick changes under tiny numerical differences of the logits (other batch
    shapes) only when the top two perturbed scores are that close.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        self.seeds, self.temperature, self.top_p = seeds, temperature, top_p
        self.generators: list[torch.Generator] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.generators:  # made on the device of the logits, at the first step
            self.generators = [torch.Generator(scores.device).manual_seed(seed) for seed in self.seeds]
        logits = scores.float() / self.temperature
        if self.top_p < 1:
            sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
            probs = sorted_logits.softmax(dim=-1)
            outside = probs.cumsum(dim=-1) - probs >= self.top_p  # the mass before a token reached top_p
            logits = logits.masked_fill(outside.scatter(-1, order, outside), -torch.inf)
        uniform = torch.stack([
            torch.rand(logits.shape[-1], generator=g, device=logits.device) for g in self.generators
        ])
        return logits - torch.log(-torch.log(uniform))


def _fresh_seed() -> int:
    """A base seed for an unseeded call, from torch's global RNG (so ``torch.manual_seed`` fixes it)."""
    return int(torch.randint(2**62, ()).item())
