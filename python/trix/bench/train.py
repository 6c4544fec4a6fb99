"""`python -m trix bench --train`: the modules' two targets (issue 4).

1. A SparseTriXFFN training step (forward + backward; d_model 256, 8 tiles, expansion 4, 8192
   tokens; top-1 emergent routing, balance and diversity losses on) against the dense float32 FFN of
   the same total hidden width (nn.Linear 256 -> 1024 -> 256) doing the same step.
2. Packed TriXLM inference, batch 1, token by token with the KV cache (generate), against the float32
   torch model of the same shape (ffn="float", float attention), and against the same TriXLM unpacked.

Medians over repeats; the ratios are the headline numbers (docs/nn.md).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable, Dict, List


def _median_times(fns: List[Callable[[], object]], repeats: int, warmup: int = 1) -> List[float]:
    """Median seconds of each function, timed in alternation so that both see the same machine load."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def bench_train_step(tokens: int, repeats: int) -> Dict[str, object]:
    """The step at torch's default thread count and at 1 thread (on a small or busy machine, torch's
    thread barriers can cost more than the arithmetic); the headline compares each side at its best."""
    import torch

    default = torch.get_num_threads()
    rows = []
    try:
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            ts, td = _train_step_times(tokens, repeats)
            rows.append({"torch_threads": threads, "sparse_step_s": ts, "dense_fp32_step_s": td})
    finally:
        torch.set_num_threads(default)
    ts, td = min(r["sparse_step_s"] for r in rows), min(r["dense_fp32_step_s"] for r in rows)
    return {"tokens": tokens, "by_threads": rows, "sparse_step_s": ts, "dense_fp32_step_s": td,
            "sparse_tokens_per_s": tokens / ts, "dense_fp32_tokens_per_s": tokens / td,
            "dense_over_sparse_time": td / ts}


def _train_step_times(tokens: int, repeats: int):
    import torch
    from trix.nn import SparseTriXFFN

    d, tiles, expansion = 256, 8, 4
    x = torch.randn(tokens, d, generator=torch.Generator().manual_seed(0))
    sparse = SparseTriXFFN(d, tiles=tiles, expansion=expansion, activation="relu")
    dense = torch.nn.Sequential(torch.nn.Linear(d, expansion * d), torch.nn.ReLU(), torch.nn.Linear(expansion * d, d))

    def step_sparse():
        xi = x.clone().requires_grad_(True)
        y, _, aux = sparse(xi)
        (y.square().mean() + sum(aux.values())).backward()

    def step_dense():
        xi = x.clone().requires_grad_(True)
        dense(xi).square().mean().backward()

    return _median_times([step_sparse, step_dense], repeats)


def bench_generate(new_tokens: int, repeats: int, d_model: int, n_layer: int) -> Dict[str, float]:
    """Batch-1 decoding is latency bound: torch runs it with one intra-op thread here (its best setting
    for both models at these sizes; more threads only add wake-up cost), libtrix with its default pool."""
    import torch
    from trix.nn import TriXLM, TriXLMConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _bench_generate(new_tokens, repeats, d_model, n_layer)
    finally:
        torch.set_num_threads(threads)


def _bench_generate(new_tokens: int, repeats: int, d_model: int, n_layer: int) -> Dict[str, float]:
    import torch
    from trix.nn import TriXLM, TriXLMConfig

    base = dict(vocab_size=65, block_size=256, n_layer=n_layer, n_head=d_model // 64, d_model=d_model)
    trix_model = TriXLM(TriXLMConfig(**base, ffn="sparse", tiles=8, ternary_attention=True)).eval()
    float_model = TriXLM(TriXLMConfig(**base, ffn="float")).eval()
    prompt = torch.zeros(1, 8, dtype=torch.long)

    def gen(m):
        return lambda: m.generate(prompt, new_tokens, top_k=1)

    (t_unpacked,) = _median_times([gen(trix_model)], 1)
    packed_model = TriXLM(trix_model.cfg).eval()
    packed_model.load_state_dict(trix_model.state_dict())
    packed_model.pack()
    t_packed, t_float = _median_times([gen(packed_model), gen(float_model)], repeats)
    return {"new_tokens": new_tokens, "d_model": d_model, "n_layer": n_layer,
            "packed_tokens_per_s": new_tokens / t_packed, "float32_tokens_per_s": new_tokens / t_float,
            "unpacked_tokens_per_s": new_tokens / t_unpacked, "packed_over_float32": t_float / t_packed,
            "packed_over_unpacked": t_unpacked / t_packed}


def run(args: argparse.Namespace) -> int:
    import torch

    import trix

    quick = bool(getattr(args, "quick", False))
    step = bench_train_step(1024 if quick else 8192, 2 if quick else 5)
    sizes = [(256, 2)] if quick else [(256, 4), (512, 4)]
    gens = [bench_generate(16 if quick else 128, 1 if quick else 5, d, n) for d, n in sizes]
    print(f"trix {trix.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()}")
    print(f"SparseTriXFFN training step (d 256, 8 tiles, expansion 4, {step['tokens']} tokens, fwd+bwd):")
    print(f"  TriX sparse   {step['sparse_step_s'] * 1e3:9.1f} ms  {step['sparse_tokens_per_s']:10.0f} tok/s")
    print(f"  dense fp32    {step['dense_fp32_step_s'] * 1e3:9.1f} ms  {step['dense_fp32_tokens_per_s']:10.0f} tok/s")
    for r in step["by_threads"]:
        print(f"    torch {r['torch_threads']} thread(s): sparse {r['sparse_step_s'] * 1e3:.1f} ms, "
              f"dense {r['dense_fp32_step_s'] * 1e3:.1f} ms")
    print(f"  ratio dense time / sparse time (each at its best): {step['dense_over_sparse_time']:.2f}x (target >= 1)")
    for gen in gens:
        print(f"TriXLM generation, batch 1, KV cache (d {gen['d_model']}, {gen['n_layer']} layers, 8 tiles, "
              f"ternary attention, {gen['new_tokens']} tokens; torch 1 thread):")
        print(f"  TriX packed   {gen['packed_tokens_per_s']:10.1f} tok/s")
        print(f"  TriX unpacked {gen['unpacked_tokens_per_s']:10.1f} tok/s")
        print(f"  float32 torch {gen['float32_tokens_per_s']:10.1f} tok/s (ffn='float', float attention)")
        print(f"  ratio packed / float32: {gen['packed_over_float32']:.2f}x (target >= 2)")
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump({"train_step": step, "generate": gens, "quick": quick, "threads": torch.get_num_threads()}, f,
                      indent=2)
    return 0
