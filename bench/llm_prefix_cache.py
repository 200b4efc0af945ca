"""Benchmark prefix caching in TransformersLLM on lock-step agent episodes.

Simulates ``--batch`` episodes advancing together: a ~``--prompt-tokens`` first prompt, then per step a
generated reply (at most ``--reply-tokens``) and a ~``--obs-tokens`` user observation. Runs the same
episodes with prefix caching, without it (same backend), and with raw batched ``model.generate`` on the
same prompts, and prints times and tokens/s. Timings on a shared CPU are noisy: repeat before trusting them.

    python bench/llm_prefix_cache.py --dtype float32 --steps 6
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from coursecorrect.llm.base import SamplingParams
from coursecorrect.llm.transformers_backend import TransformersLLM

_ITEMS = ["oak planks", "stick", "crafting table", "iron ingot", "jungle log", "stone pickaxe", "torch"]


def _text_of_tokens(tokenizer, rng: random.Random, n_tokens: int, head: str) -> str:
    """``head`` followed by crafting-recipe lines, cut to about ``n_tokens`` tokens."""
    lines = [head]
    while len(tokenizer("\n".join(lines))["input_ids"]) < n_tokens:
        a, b = rng.sample(_ITEMS, 2)
        lines.append(f"craft {rng.randint(1, 8)} {a} using {rng.randint(1, 4)} {b}")
    return "\n".join(lines)


def make_episodes(tokenizer, batch: int, prompt_tokens: int, obs_tokens: int, steps: int, seed: int = 0):
    """First prompts and per-step observations for each episode (deterministic)."""
    rng = random.Random(seed)
    firsts = [
        [{"role": "user", "content": _text_of_tokens(tokenizer, rng, prompt_tokens, f"Task {i}: craft a torch.")}]
        for i in range(batch)
    ]
    observations = [
        [_text_of_tokens(tokenizer, rng, obs_tokens, f"Observation: step {s}.") for s in range(steps)]
        for _ in range(batch)
    ]
    return firsts, observations


def run_episodes(llm: TransformersLLM, firsts, observations, params: SamplingParams):
    """Advance all episodes in lock-step; return (seconds in generate, prompts per step, replies)."""
    convs = [list(c) for c in firsts]
    prompts_per_step, replies, seconds = [], [], 0.0
    for step in range(len(observations[0])):
        prompts_per_step.append([list(c) for c in convs])
        t0 = time.perf_counter()
        out = llm.generate(convs, params)
        seconds += time.perf_counter() - t0
        replies.append([o[0].text for o in out])
        for conv, o, obs in zip(convs, out, observations, strict=True):
            conv += [{"role": "assistant", "content": o[0].text}, {"role": "user", "content": obs[step]}]
    return seconds, prompts_per_step, replies


def run_raw(llm: TransformersLLM, prompts_per_step, params: SamplingParams) -> tuple[float, int]:
    """Plain left-padded ``model.generate`` on the same prompts: (seconds, completion tokens)."""
    tok, seconds, n_tokens = llm.tokenizer, 0.0, 0
    for convs in prompts_per_step:
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(llm.model.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = llm.model.generate(
                **enc,
                max_new_tokens=params.max_new_tokens,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
        seconds += time.perf_counter() - t0
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            n_tokens += row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
    return seconds, n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model alias, folder or hub id")
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    parser.add_argument("--batch", type=int, default=8, help="episodes advanced in lock-step")
    parser.add_argument("--steps", type=int, default=6, help="agent steps per episode")
    parser.add_argument("--prompt-tokens", type=int, default=700, help="length of the first prompt")
    parser.add_argument("--reply-tokens", type=int, default=40, help="max_new_tokens per reply")
    parser.add_argument("--obs-tokens", type=int, default=60, help="length of each observation")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw model.generate baseline")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    llm = TransformersLLM(args.model, dtype=args.dtype, max_batch_size=args.batch)
    params = SamplingParams(max_new_tokens=args.reply_tokens)
    firsts, observations = make_episodes(llm.tokenizer, args.batch, args.prompt_tokens, args.obs_tokens, args.steps)
    print(
        f"model {args.model} dtype {llm.model.dtype} threads {torch.get_num_threads()} batch {args.batch} "
        f"steps {args.steps}"
    )

    rows = {}
    for label, caching in (("prefix cache", True), ("no cache", False)):
        llm.prefix_caching = caching
        llm.clear_cache()
        before = llm.stats.completion_tokens, llm.stats.prompt_tokens, llm.stats.cached_prompt_tokens
        seconds, prompts_per_step, replies = run_episodes(llm, firsts, observations, params)
        gen = llm.stats.completion_tokens - before[0]
        prompt = llm.stats.prompt_tokens - before[1]
        cached = llm.stats.cached_prompt_tokens - before[2]
        rows[label] = (seconds, gen, replies)
        print(
            f"{label:>13}: {seconds:7.1f} s  {gen / seconds:6.1f} tok/s  ({gen} generated, "
            f"{prompt} prompt tokens, {cached} from cache)"
        )
    if not args.skip_raw:
        seconds, gen = run_raw(llm, prompts_per_step, params)
        rows["raw generate"] = (seconds, gen, None)
        print(f"{'raw generate':>13}: {seconds:7.1f} s  {gen / seconds:6.1f} tok/s  ({gen} generated)")

    speedup = rows["no cache"][0] / rows["prefix cache"][0]
    same = rows["prefix cache"][2] == rows["no cache"][2]
    print(f"speed-up with prefix cache: {speedup:.2f}x; cached replies identical to uncached: {same}")

    def n_tokens(conv) -> int:
        text = llm.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        return len(llm.tokenizer(text, add_special_tokens=False)["input_ids"])

    print(f"prompt tokens per episode: first {n_tokens(firsts[0])}, last {n_tokens(prompts_per_step[-1][0])}")


if __name__ == "__main__":
    main()
