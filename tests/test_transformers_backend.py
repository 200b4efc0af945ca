"""TransformersLLM: exact prefix caching, sampling controls, stats."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pytest
import torch

from coursecorrect.llm.base import LLM, Chat, Completion, SamplingParams
from coursecorrect.llm.models import SMOLLM2, TINY_RANDOM
from coursecorrect.llm.prefix_cache import CacheEntry, PrefixCache, common_prefix_len
from coursecorrect.llm.transformers_backend import TransformersLLM, _RowSampler

FIRST = [
    [{"role": "user", "content": "craft 3 sticks"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Task: get " + "oak planks " * 30}],
    [{"role": "user", "content": "What is 12+30? Thought Action inventory " * 5}],
    [{"role": "user", "content": "hello"}],
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llm() -> TransformersLLM:
    return TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu")


def reference(llm: TransformersLLM, conversations: Sequence[Chat], max_new_tokens: int) -> list[str]:
    """Greedy texts from plain left-padded ``model.generate``, no prefix cache involved."""
    tok = llm.tokenizer
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = llm.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    rows = out[:, enc["input_ids"].shape[1] :].tolist()
    return [tok.decode(r[: r.index(tok.eos_token_id)] if tok.eos_token_id in r else r) for r in rows]


def extend(conversations, completions: list[list[Completion]], step: int) -> list[list[dict[str, str]]]:
    """Append each first reply and a new observation, as an agent loop does."""
    return [
        [*c, {"role": "assistant", "content": out[0].text}, {"role": "user", "content": f"Observation {step}: ok"}]
        for c, out in zip(conversations, completions, strict=True)
    ]


def texts(completions: list[list[Completion]]) -> list[list[str]]:
    return [[c.text for c in outs] for outs in completions]


def test_implements_protocol(llm: TransformersLLM) -> None:
    assert isinstance(llm, LLM)


def test_cached_greedy_matches_plain_generate() -> None:
    llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu")
    params = SamplingParams(max_new_tokens=16)
    conversations = FIRST
    for step in range(3):
        out = llm.generate(conversations, params)
        assert [o[0].text for o in out] == reference(llm, conversations, 16)
        conversations = extend(conversations, out, step)
    assert llm.stats.cached_prompt_tokens > 0.5 * llm.stats.prompt_tokens / 3 * 2
    # n > 1 with greedy decoding: every sample equals the plain greedy output.
    out = llm.generate(conversations, SamplingParams(n=3, max_new_tokens=16))
    assert texts(out) == [[t] * 3 for t in reference(llm, conversations, 16)]


def test_cached_sampling_matches_uncached() -> None:
    """n samples decoded from copies of one prefilled cache equal those of the same backend without caching."""
    params = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=7)
    runs = []
    for caching in (True, False):
        llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu", prefix_caching=caching)
        conversations, run = FIRST, []
        for step in range(2):
            out = llm.generate(conversations, params)
            run.append(texts(out))
            conversations = extend(conversations, out, step)
        runs.append(run)
        assert (llm.stats.cached_prompt_tokens > 0) == caching
    assert runs[0] == runs[1]
    assert len(set(runs[0][0][2])) > 1  # samples differ from one another


def test_seeded_sampling_is_reproducible(llm: TransformersLLM) -> None:
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=123)
    first = texts(llm.generate(FIRST, params))
    assert texts(llm.generate(FIRST, params)) == first  # the second call is served from the prefix cache
    other = texts(llm.generate(FIRST, SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=124)))
    assert other != first


def test_a_conversations_samples_do_not_depend_on_its_batch(llm: TransformersLLM) -> None:
    """With per-conversation seeds, a conversation samples the same alone, among others in any order, in
    smaller chunks, and with or without cached prefixes."""
    options = {"n": 2, "temperature": 1.0, "top_p": 0.9, "max_new_tokens": 12}
    seeds = [100, 7, 55, 3]
    alone = [
        texts(llm.generate([c], SamplingParams(**options, seeds=(s,))))[0] for c, s in zip(FIRST, seeds, strict=True)
    ]
    chunked = TransformersLLM(TINY_RANDOM, model=llm.model, tokenizer=llm.tokenizer, max_batch_size=3,
                              prefix_caching=False)
    for backend in (llm, chunked):
        together = backend.generate(FIRST[::-1], SamplingParams(**options, seeds=tuple(seeds[::-1])))
        assert texts(together)[::-1] == alone
    assert len({t for row in alone for t in row}) == 8, "rows and samples differ from one another"
    with pytest.raises(ValueError, match="1 seeds for 4 conversations"):
        llm.generate(FIRST, SamplingParams(**options, seeds=(1,)))


def test_row_sampler_follows_temperature_and_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    draws = {0.7: [], 1.0: []}
    for top_p, rows in draws.items():
        sampler = _RowSampler([1, 2], temperature=1.0, top_p=top_p)
        for _ in range(4000):
            scores = sampler(torch.zeros(2, 1, dtype=torch.long), logits.clone())
            assert torch.isinf(scores).sum() == (2 if top_p < 1 else 0), "the tail outside the nucleus is cut"
            rows.append(scores.argmax(-1))
    full = torch.nn.functional.one_hot(torch.stack(draws[1.0]), 3).float().mean(0)
    assert torch.allclose(full, logits.exp(), atol=0.03)
    nucleus = torch.nn.functional.one_hot(torch.stack(draws[0.7]), 3).float().mean(0)
    expected = torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0.0], [0.0, 0.6 / 0.9, 0.3 / 0.9]])
    assert torch.allclose(nucleus, expected, atol=0.03)
    cold = _RowSampler([1, 2], temperature=0.05, top_p=1.0)(torch.zeros(2, 1, dtype=torch.long), logits.clone())
    assert cold.argmax(-1).tolist() == [0, 1]


def test_stop_strings_cut_the_text(llm: TransformersLLM) -> None:
    conversation = [FIRST[2]]
    full = llm.generate(conversation, SamplingParams(max_new_tokens=24))[0][0]
    stop = full.text[6:9]
    cut = llm.generate(conversation, SamplingParams(max_new_tokens=24, stop=("@@never@@", stop)))[0][0]
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert 1 <= cut.completion_tokens <= full.completion_tokens


def test_max_new_tokens_and_finish_reason(llm: TransformersLLM) -> None:
    long = llm.generate(FIRST, SamplingParams(max_new_tokens=20))
    short = llm.generate(FIRST, SamplingParams(max_new_tokens=4))
    for (lo,), (sh,) in zip(long, short, strict=True):
        assert lo.text.startswith(sh.text)
        if lo.completion_tokens > 4:
            assert (sh.finish_reason, sh.completion_tokens) == ("length", 4)
        assert sh.prompt_tokens == lo.prompt_tokens > 0


def test_small_batches_give_the_same_results(llm: TransformersLLM) -> None:
    small = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu", max_batch_size=2, prefix_caching=False)
    params = SamplingParams(max_new_tokens=8)
    assert texts(small.generate(FIRST, params)) == texts(llm.generate(FIRST, params))


def test_stats_count_tokens() -> None:
    llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu")
    out = llm.generate(FIRST, SamplingParams(n=2, temperature=1.0, max_new_tokens=5, seed=0))
    llm.generate(FIRST, SamplingParams(max_new_tokens=5))
    assert llm.stats.calls == 2
    assert llm.stats.prompt_tokens == 2 * sum(o[0].prompt_tokens for o in out)
    # The second call reuses every prompt but its last token.
    assert llm.stats.cached_prompt_tokens == llm.stats.prompt_tokens // 2 - len(FIRST)
    assert llm.stats.completion_tokens >= sum(c.completion_tokens for o in out for c in o)
    assert llm.stats.extra["cache_entries"] > 0


def test_cache_respects_byte_budget() -> None:
    llm = TransformersLLM(TINY_RANDOM, dtype="float32", device="cpu", cache_bytes=2_000_000)
    conversations = FIRST
    for step in range(3):
        out = llm.generate(conversations, SamplingParams(max_new_tokens=8))
        conversations = extend(conversations, out, step)
        assert 0 < llm.cache.nbytes <= 2_000_000
    llm.clear_cache()
    assert len(llm.cache) == 0 and llm.cache.nbytes == 0


def test_prefix_cache_lookup_and_lru() -> None:
    def entry(tokens: list[int]) -> CacheEntry:
        return CacheEntry(torch.tensor(tokens), torch.zeros(1, 2, 1, len(tokens), 4))

    assert common_prefix_len(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4, 5])) == 2
    assert common_prefix_len(torch.tensor([1, 2]), torch.tensor([1, 2, 4])) == 2
    short, long = entry([1, 2]), entry([1, 2, 3, 4])
    cache = PrefixCache(max_bytes=2 * long.nbytes)
    cache.insert(short)
    cache.insert(long)
    assert cache.lookup(torch.tensor([1, 2, 3, 9])) == (long, 3)
    assert cache.lookup(torch.tensor([7])) == (None, 0)
    cache.insert(entry([5, 6, 7, 8]))  # over budget: evicts the least recently used (short)
    assert len(cache) == 2 and cache.lookup(torch.tensor([1, 2]))[0] is long


@pytest.mark.slow
def test_smollm2_agent_loop_is_exact_and_stops_at_end_of_turn() -> None:
    llm = TransformersLLM(SMOLLM2, dtype="float32", device="cpu")
    conversations = [
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        [{"role": "user", "content": "Crafting commands:\ncraft 4 oak planks using 1 oak log\nGoal: craft a stick."}],
    ]
    for step in range(2):
        out = llm.generate(conversations, SamplingParams(max_new_tokens=24))
        assert [o[0].text for o in out] == reference(llm, conversations, 24)
        conversations = extend(conversations, out, step)
    assert llm.stats.cached_prompt_tokens > 0
    answer = llm.generate(conversations[:1], SamplingParams(max_new_tokens=64))[0][0]
    assert answer.finish_reason == "stop" and "<|im_end|>" not in answer.text
    assert answer.completion_tokens == len(llm.tokenizer(answer.text)["input_ids"]) + 1


def test_warns_once_when_the_batch_outgrows_the_prefix_cache(llm: TransformersLLM) -> None:
    small = TransformersLLM("tiny-random", model=llm.model, tokenizer=llm.tokenizer, cache_bytes=1024)
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(2)]
    with pytest.warns(UserWarning, match="exceeds the prefix cache"):
        small.generate(conversations, SamplingParams(max_new_tokens=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small.generate(conversations, SamplingParams(max_new_tokens=2))  # once is enough
        llm.generate(conversations, SamplingParams(max_new_tokens=2))  # the default budget is ample
