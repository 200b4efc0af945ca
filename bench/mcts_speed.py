"""Benchmark MCTS collection: the authors' released-code way vs coursecorrect's batched search.

Runs the same search (same MCTSConfig) on the same TextCraft train tasks with SmolLM2-135M-Instruct twice:

(a) released-code style: one tree at a time, one ``generate`` call per sample (n = 1; an expansion with
    n_children = 4 makes 4 calls), env reset + replay at every restore, prefix caching off;
(b) coursecorrect: all trees advance together, one call per step for all pending expansions (n samples
    per prompt, one prefill) and one for all rollouts, env snapshots, prefix caching on.

A *simulation* is one terminal outcome backed up to the root (= one visit of the root): in the released
variant a terminal child reached by a descent, in the paper variant one rollout (or a terminal child of an
expansion). An *expansion* is one node whose n_children responses were sampled. Sampling differs between
the two runs, so the trees differ; compare rates, not counts. Timings on a shared CPU are noisy.

    python bench/mcts_speed.py --tasks 4 --iterations 2 --max-depth 3 --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from coursecorrect.envs.textcraft import TextCraftEnv
from coursecorrect.llm.base import Chat, Completion, SamplingParams
from coursecorrect.llm.transformers_backend import TransformersLLM
from coursecorrect.search import Counters, MCTSConfig, search_trees


class PerSampleLLM:
    """Wraps a backend so that every sample of every conversation is its own ``generate`` call (n = 1),
    as the released code calls its model."""

    def __init__(self, llm: TransformersLLM) -> None:
        self.llm, self.name, self.stats = llm, llm.name, llm.stats

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        single = SamplingParams(n=1, temperature=params.temperature, top_p=params.top_p,
                                max_new_tokens=params.max_new_tokens, stop=params.stop, seed=None)
        return [[self.llm.generate([c], single)[0][0] for _ in range(params.n)] for c in conversations]

    def close(self) -> None:
        pass


def run(label: str, llm, tasks: list[int], config: MCTSConfig, batch_trees: int, max_steps: int) -> dict:
    tokens0, prefill0 = llm.stats.completion_tokens, llm.stats.extra.get("prefill_seconds", 0.0)
    decode0, prompt0, cached0 = (llm.stats.extra.get("generate_seconds", 0.0), llm.stats.prompt_tokens,
                                 llm.stats.cached_prompt_tokens)
    counters = Counters()
    start = time.perf_counter()
    trees = []
    for tree in search_trees(lambda: TextCraftEnv(max_steps=max_steps), llm, tasks, config, batch_trees, counters):
        trees.append(tree)
        print(f"  [{label[0]}] task {tree.task_id}: {tree.meta['nodes']} nodes, {time.perf_counter() - start:.0f} s",
              flush=True)
    wall = time.perf_counter() - start
    sims = sum(t.root.visits for t in trees)
    expansions = sum(n.expanded for t in trees for n in t.nodes())
    nodes = sum(1 for t in trees for _ in t.nodes())
    result = {
        "wall_s": wall, "simulations": sims, "expansions": expansions, "nodes": nodes,
        "backend_calls": counters.calls if batch_trees > 1 else None,
        "completion_tokens": llm.stats.completion_tokens - tokens0,
        "prompt_tokens": llm.stats.prompt_tokens - prompt0,
        "cached_prompt_tokens": llm.stats.cached_prompt_tokens - cached0,
        "prefill_s": llm.stats.extra.get("prefill_seconds", 0.0) - prefill0,
        "decode_s": llm.stats.extra.get("generate_seconds", 0.0) - decode0,
    }
    print(f"\n({label})")
    print(f"  wall {wall:.1f} s; {sims} simulations = {sims / wall:.3f}/s; {expansions} expansions = "
          f"{expansions / wall:.3f}/s; {nodes} nodes = {nodes / wall:.2f}/s")
    print(f"  {result['completion_tokens']} tokens generated = {result['completion_tokens'] / wall:.1f} tok/s; "
          f"prompt tokens {result['prompt_tokens']} ({result['cached_prompt_tokens']} from cache); "
          f"prefill {result['prefill_s']:.1f} s, decode {result['decode_s']:.1f} s, "
          f"other {wall - result['prefill_s'] - result['decode_s']:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model alias or folder")
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    parser.add_argument("--tasks", type=int, default=4, help="first N TextCraft train tasks")
    parser.add_argument("--variant", default="released", choices=["released", "paper"])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=2, help="paper variant only")
    parser.add_argument("--n-children", type=int, default=4)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-batch-size", type=int, default=16, help="rows per forward pass (ours)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", choices=["a", "b"], default=None, help="run one side only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = MCTSConfig(variant=args.variant, iterations=args.iterations, rollouts=args.rollouts,
                        n_children=args.n_children, max_depth=args.max_depth, max_new_tokens=args.max_new_tokens,
                        seed=args.seed)
    tasks = TextCraftEnv().task_ids("train")[: args.tasks]
    max_steps = 20
    t0 = time.perf_counter()
    ours = TransformersLLM(args.model, dtype=args.dtype, max_batch_size=args.max_batch_size, prefix_caching=True)
    plain = TransformersLLM(args.model, model=ours.model, tokenizer=ours.tokenizer, max_batch_size=1,
                            prefix_caching=False)
    print(f"model {args.model} ({ours.model.dtype}) loaded in {time.perf_counter() - t0:.1f} s; "
          f"torch threads {torch.get_num_threads()}; tasks {tasks}")
    print(f"search: {config.model_dump(exclude={'stop', 'max_context_tokens', 'snapshots', 'top_p'})}")
    results = {}
    if args.only in (None, "a"):
        results["a"] = run("a: released-code style — one tree at a time, a call per sample, replay, no prefix cache",
                           PerSampleLLM(plain), tasks, config.model_copy(update={"snapshots": False}), 1, max_steps)
    if args.only in (None, "b"):
        results["b"] = run(f"b: coursecorrect — {len(tasks)} trees batched, snapshots, prefix cache, n per call",
                           ours, tasks, config, len(tasks), max_steps)
    if len(results) == 2:
        a, b = results["a"], results["b"]
        sims = (b["simulations"] / b["wall_s"]) / (a["simulations"] / a["wall_s"]) if a["simulations"] else float("nan")
        exps = (b["expansions"] / b["wall_s"]) / (a["expansions"] / a["wall_s"])
        toks = (b["completion_tokens"] / b["wall_s"]) / (a["completion_tokens"] / a["wall_s"])
        print(f"\nratio b/a: simulations/s {sims:.2f}x, expansions/s {exps:.2f}x, tokens/s {toks:.2f}x "
              f"(wall {a['wall_s']:.0f} s vs {b['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
