"""Prefill and decode speed of the transformers backend by batch size at ~1k-token contexts, with glibc's default
allocator and with the backend's (freed memory kept in the process, see ``coursecorrect.llm.allocator``).

For each batch size: one call prefills the prompts (and caches their KV state), a second call decodes
``--new-tokens`` sampled tokens per prompt from the cached prefixes. Each allocator runs in its own process.

    python bench/decode_scaling.py --batches 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

from llm_prefix_cache import _text_of_tokens  # this folder is on sys.path when run as a script


def child(args: argparse.Namespace) -> list[dict]:
    from coursecorrect.llm.base import SamplingParams
    from coursecorrect.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(args.model, dtype="float32", max_batch_size=max(args.batches), cache_bytes=8 * 2**30)
    rng = random.Random(0)
    rows = []
    for batch in args.batches:
        chats = [[{"role": "user", "content": _text_of_tokens(llm.tokenizer, rng, args.prompt_tokens,
                                                               f"Task {rng.random()}: craft a torch.")}]
                 for _ in range(batch)]  # fmt: skip
        start = time.perf_counter()
        llm.generate(chats, SamplingParams(max_new_tokens=1))
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        out = llm.generate(chats, SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, seed=0))
        decode = time.perf_counter() - start
        tokens = sum(c[0].completion_tokens for c in out)
        rows.append({"batch": batch, "prefill_tok_s": batch * args.prompt_tokens / prefill,
                     "decode_tok_s": tokens / decode})  # fmt: skip
        llm.clear_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--prompt-tokens", type=int, default=1050)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    results = {}
    for mode in ("default", "keep"):
        env = {**os.environ, "COURSECORRECT_MALLOC": mode}
        proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child"], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"SmolLM2 fp32, {args.prompt_tokens}-token prompts, {args.new_tokens} sampled tokens, "
          f"{os.cpu_count()} cores; tokens/s")
    print(f"{'batch':>6}{'prefill glibc':>15}{'prefill kept':>14}{'decode glibc':>14}{'decode kept':>13}")
    for default, keep in zip(results["default"], results["keep"], strict=True):
        print(f"{default['batch']:>6}{default['prefill_tok_s']:>15.0f}{keep['prefill_tok_s']:>14.0f}"
              f"{default['decode_tok_s']:>14.1f}{keep['decode_tok_s']:>13.1f}")


if __name__ == "__main__":
    main()
