"""Lock-step batching of agent episodes: episodes/min at batch 1 vs 8 vs 16, on real TextCraft tasks.

Plays the same tasks (greedy) with the episode runner at each batch size, then replays every prompt the
batch-8 run sent through plain, uncached, left-padded ``model.generate`` in batches of 8 — the backend's
raw batched throughput on the same prompt lengths. Targets: >= 2.5x episodes/min at batch 8 over batch 1;
runner tokens/s >= 70% of raw batched generate.

    python bench/agent_lockstep.py --tasks 16 --max-steps 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from coursecorrect.agent import AgentConfig, run_episodes
from coursecorrect.envs.textcraft import TextCraftEnv
from coursecorrect.llm.base import SamplingParams
from coursecorrect.llm.transformers_backend import TransformersLLM

sys.path.insert(0, str(Path(__file__).parent))
from llm_prefix_cache import run_raw  # noqa: E402  (a sibling bench script)


class RecordingLLM:
    """Passes calls through to the backend and keeps every batch of prompts it was sent."""

    def __init__(self, llm: TransformersLLM) -> None:
        self.llm, self.name, self.stats = llm, llm.name, llm.stats
        self.batches: list[list] = []

    def generate(self, conversations, params):
        self.batches.append([list(c) for c in conversations])
        return self.llm.generate(conversations, params)

    def close(self) -> None:
        pass


def play(llm: TransformersLLM, tasks: list[int], batch: int, max_steps: int, max_new_tokens: int):
    """(seconds, completion tokens, episodes, recorded prompt batches) of one run."""
    llm.clear_cache()
    recorder = RecordingLLM(llm)
    config = AgentConfig(batch_size=batch, max_new_tokens=max_new_tokens)
    before = llm.stats.completion_tokens
    start = time.perf_counter()
    episodes = list(run_episodes(lambda: TextCraftEnv(max_steps=max_steps), recorder, tasks, config))
    seconds = time.perf_counter() - start
    return seconds, llm.stats.completion_tokens - before, episodes, recorder.batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model alias, folder or hub id")
    parser.add_argument("--tasks", type=int, default=16, help="TextCraft test tasks to play")
    parser.add_argument("--max-steps", type=int, default=4, help="agent steps per episode")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens per agent turn")
    parser.add_argument("--batches", default="1,8,16", help="batch sizes to compare")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    llm = TransformersLLM(args.model, max_batch_size=64)
    tasks = TextCraftEnv().task_ids("test")[: args.tasks]
    print(f"{args.model} ({llm.model.dtype}, {torch.get_num_threads()} threads): {len(tasks)} TextCraft test tasks, "
          f"{args.max_steps} steps, {args.max_new_tokens} new tokens a turn, greedy")
    runs = {}
    for batch in (int(b) for b in args.batches.split(",")):
        seconds, tokens, episodes, batches = play(llm, tasks, batch, args.max_steps, args.max_new_tokens)
        runs[batch] = (seconds, episodes, batches)
        print(f"batch {batch:>3}: {seconds:7.1f} s  {60 * len(episodes) / seconds:6.2f} episodes/min  "
              f"{tokens / seconds:6.1f} tokens/s ({tokens} generated)")
    base = min(runs)
    for batch in sorted(runs)[1:]:
        print(f"episodes/min, batch {batch} vs batch {base}: {runs[base][0] / runs[batch][0]:.2f}x")
    messages = {b: sorted((e.task_id, [m.content for m in e.messages]) for e in r[1]) for b, r in runs.items()}
    print(f"episodes identical at every batch size: {len({str(m) for m in messages.values()}) == 1}")
    if 8 in runs:
        seconds, _, batches = runs[8]
        tokens = sum(e.completion_tokens for e in runs[8][1])
        params = SamplingParams(max_new_tokens=args.max_new_tokens)
        raw_seconds, raw_tokens = run_raw(llm, batches, params)
        ours, raw = tokens / seconds, raw_tokens / raw_seconds
        print(f"batch 8 runner {ours:.1f} tokens/s vs raw batched model.generate on the same prompts "
              f"{raw:.1f} tokens/s: {100 * ours / raw:.0f}%")


if __name__ == "__main__":
    main()
