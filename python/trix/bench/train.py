"""`python -m trix bench --train`: training speed (issue 14) and unpacked vs packed inference.

1. The FFN step (forward + backward of y.square().mean(), inputs requiring grad) of the ternary tiled
   FFN through its one-call libtrix ops (trix.autograd.tiled_ffn) with top-1, top-2 and all tiles,
   against the float FFN of the same total width (nn.Linear d -> 4d, GELU, nn.Linear 4d -> d), at the
   study shape (d 128, hidden 512 in 4 tiles, 768 tokens) and at d 512 / 8 tiles / 8192 tokens,
   with one thread and with two (torch and libtrix alike). Routing is a fixed balanced assignment, so
   the op is timed alone; the SparseTriXFFN module step (routing, balance and diversity losses) is
   timed beside it at top-1.
2. The whole TriXLM training step (forward, backward, AdamW) of the default study's models
   (d 128, 4 layers, 4 heads, context 64, batch 12), one thread, eager and torch.compile.
3. TriXLM generation, batch 1 with the KV cache: packed, unpacked eval (cached codes) and float.

All timings are medians of runs interleaved with the float reference they are divided by.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List


def _median_times(fns: List[Callable[[], object]], repeats: int, warmup: int = 1) -> List[float]:
    """Median seconds of each function, timed in alternation so that all see the same machine load."""
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


def _set_threads(n: int) -> None:
    import torch

    import trix

    torch.set_num_threads(n)
    trix.set_num_threads(n)


def bench_ffn_step(d: int, tiles: int, tokens: int, threads: int, repeats: int) -> Dict[str, object]:
    """Step times of the ternary tiled FFN (top-1, top-2, all tiles; op and top-1 module) and of the
    float FFN of the same total width, one shape and thread count."""
    import torch

    from trix.autograd import tiled_ffn
    from trix.nn import SparseTriXFFN

    _set_threads(threads)
    g = torch.Generator().manual_seed(0)
    hidden = 4 * d
    h = hidden // tiles
    x = torch.randn(tokens, d, generator=g)
    up = (torch.randn(tiles * h, d, generator=g) * d ** -0.5).requires_grad_(True)
    down = (torch.randn(tiles * d, h, generator=g) * hidden ** -0.5).requires_grad_(True)
    perm = torch.randperm(tokens, generator=g)
    idx = {k: torch.stack([(perm + j * tokens // tiles) % tiles for j in range(k)], 1).to(torch.int32)
           for k in (1, 2, tiles)}
    dense = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, d))
    module = SparseTriXFFN(d, tiles=tiles, expansion=4, activation="gelu")

    def ternary(k):
        def step():
            xi = x.clone().requires_grad_(True)
            tiled_ffn(xi, up, down, tiles, idx[k], None, "gelu").square().mean().backward()
        return step

    def step_module():
        xi = x.clone().requires_grad_(True)
        y, _, aux = module(xi)
        (y.square().mean() + sum(aux.values())).backward()

    def step_float():
        xi = x.clone().requires_grad_(True)
        dense(xi).square().mean().backward()

    # The limit of the all-tiles step: libtrix's training GEMM (the ternary linear forward: decode, then
    # the register-blocked float GEMM) against torch.mm on the up projection's shape [tokens, d] x [4d, d]^T.
    from trix.autograd import weight_codes

    w_up = torch.randn(hidden, d, generator=g)
    q_up, s_up = weight_codes(w_up)
    w_eff = q_up.float() * s_up

    def gemm_trix():
        torch.ops.trix.ternary_linear(x, w_up, q_up, s_up)

    def gemm_torch():
        torch.mm(x, w_eff.t())

    names = ["top1", "top2", "all_tiles", "module_top1", "gemm_trix", "gemm_torch", "float"]
    t = _median_times([ternary(1), ternary(2), ternary(tiles), step_module, gemm_trix, gemm_torch, step_float],
                      repeats)
    row: Dict[str, object] = {"d": d, "tiles": tiles, "tokens": tokens, "threads": threads}
    row.update({f"{n}_s": v for n, v in zip(names, t)})
    row.update({f"{n}_over_float": v / t[-1] for n, v in zip(names[:4], t[:4])})
    row["gemm_trix_over_torch"] = row["gemm_trix_s"] / row["gemm_torch_s"]
    row["gemm_gflops"] = {n: 2 * tokens * d * hidden / row[f"{n}_s"] / 1e9 for n in ("gemm_trix", "gemm_torch")}
    return row


def _lm_cfgs():
    from trix.nn import TriXLMConfig

    base = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, d_model=128, tiles=4, top_k=1)
    return {"float": TriXLMConfig(**base, ffn="float", routing="dense"),
            "ternary_dense": TriXLMConfig(**base, ffn="sparse", routing="dense"),
            "emergent": TriXLMConfig(**base, ffn="sparse", routing="emergent"),
            "learned": TriXLMConfig(**base, ffn="sparse", routing="learned")}


def bench_lm_step(repeats: int, compile_too: bool) -> Dict[str, object]:
    """Whole TriXLM training steps (batch 12 x 64 tokens, AdamW), one thread."""
    import torch
    import torch.nn.functional as F

    from trix.nn import TriXLM

    _set_threads(1)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 65, (12, 64), generator=g)
    tgt = torch.randint(0, 65, (12, 64), generator=g)
    fns, names, errors = [], [], {}
    for name, cfg in _lm_cfgs().items():
        for compiled in ((False, True) if compile_too else (False,)):
            model = TriXLM(cfg).train()
            run = torch.compile(model, fullgraph=True) if compiled else model
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            if compiled:
                try:  # a model torch.compile cannot take whole is reported, not fatal
                    run(idx)
                except Exception as e:  # noqa: BLE001
                    errors[name + "_compiled"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                    continue

            def step(run=run, opt=opt):
                logits, _, aux = run(idx)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1)) + sum(aux.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            fns.append(step)
            names.append(name + ("_compiled" if compiled else ""))
    t = _median_times(fns, repeats, warmup=2)
    res = {f"{n}_s": v for n, v in zip(names, t)}
    res.update({f"{n}_over_float": v / res["float_s"] for n, v in zip(names, t)})
    res["compile_errors"] = errors
    return res


def bench_generate(new_tokens: int, repeats: int, d_model: int, n_layer: int) -> Dict[str, float]:
    """Batch-1 decoding, one thread: packed, unpacked eval (cached codes) and the float model."""
    import torch

    from trix.nn import TriXLM, TriXLMConfig

    _set_threads(1)
    base = dict(vocab_size=65, block_size=256, n_layer=n_layer, n_head=d_model // 64, d_model=d_model)
    trix_model = TriXLM(TriXLMConfig(**base, ffn="sparse", tiles=8, ternary_attention=True)).eval()
    float_model = TriXLM(TriXLMConfig(**base, ffn="float")).eval()
    packed_model = TriXLM(trix_model.cfg).eval()
    packed_model.load_state_dict(trix_model.state_dict())
    packed_model.pack()
    prompt = torch.zeros(1, 8, dtype=torch.long)

    def gen(m):
        return lambda: m.generate(prompt, new_tokens, top_k=1)

    t_unpacked, t_packed, t_float = _median_times([gen(trix_model), gen(packed_model), gen(float_model)], repeats)
    return {"new_tokens": new_tokens, "d_model": d_model, "n_layer": n_layer,
            "packed_tokens_per_s": new_tokens / t_packed, "float32_tokens_per_s": new_tokens / t_float,
            "unpacked_tokens_per_s": new_tokens / t_unpacked, "packed_over_float32": t_float / t_packed,
            "unpacked_over_packed_time": t_unpacked / t_packed}


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    import trix

    quick = bool(getattr(args, "quick", False))
    threads0, trix0 = torch.get_num_threads(), trix.get_num_threads()
    load0 = os.getloadavg()[0]
    try:
        shapes = [(128, 4, 768)] + ([] if quick else [(512, 8, 8192)])
        ffn = [bench_ffn_step(d, t, n, th, 3 if quick else (5 if n > 1000 else 21))
               for d, t, n in shapes for th in (1, 2)]
        lm = bench_lm_step(2 if quick else 7, compile_too=not quick)
        gens = [bench_generate(16 if quick else 64, 1 if quick else 3, d, 4) for d in ((256,) if quick else (512,))]
    finally:
        torch.set_num_threads(threads0)
        trix.set_num_threads(trix0)
    load1 = os.getloadavg()[0]
    spin = os.environ.get("GOMP_SPINCOUNT", "unset (libgomp default 300000)")
    print(f"trix {trix.__version__}, torch {torch.__version__}, {platform.machine()}, simd {trix.simd_level()}, "
          f"load average {load0:.1f} -> {load1:.1f}, GOMP_SPINCOUNT {spin}")
    print("FFN step, forward + backward (ms; ratio to the float Linear-GELU-Linear of the same width):")
    for r in ffn:
        print(f"  d {r['d']}, {r['tiles']} tiles, {r['tokens']} tokens, {r['threads']} thread(s): "
              f"float {r['float_s'] * 1e3:.2f} | top-1 {r['top1_s'] * 1e3:.2f} ({r['top1_over_float']:.2f}x) | "
              f"top-2 {r['top2_s'] * 1e3:.2f} ({r['top2_over_float']:.2f}x) | all tiles {r['all_tiles_s'] * 1e3:.2f} "
              f"({r['all_tiles_over_float']:.2f}x) | SparseTriXFFN top-1 module {r['module_top1_s'] * 1e3:.2f} "
              f"({r['module_top1_over_float']:.2f}x) | GEMM {r['tokens']}x{r['d']}x{4 * r['d']}: libtrix "
              f"{r['gemm_gflops']['gemm_trix']:.1f} GFLOP/s, torch.mm {r['gemm_gflops']['gemm_torch']:.1f} "
              f"({r['gemm_trix_over_torch']:.2f}x the time)")
    print("TriXLM training step, study models (d 128, 4 layers, batch 12 x 64, AdamW; 1 thread):")
    for k in [k for k in lm if k.endswith("_s")]:
        n = k[:-2]
        print(f"  {n:26s} {lm[k] * 1e3:8.1f} ms  ({lm[n + '_over_float']:.2f}x float eager)")
    for n, e in lm["compile_errors"].items():
        print(f"  {n:26s} not compiled: {e}")
    for gen in gens:
        print(f"TriXLM generation, batch 1, KV cache (d {gen['d_model']}, {gen['n_layer']} layers, 8 tiles, ternary "
              f"attention, {gen['new_tokens']} tokens, 1 thread): packed {gen['packed_tokens_per_s']:.1f} tok/s, "
              f"unpacked eval {gen['unpacked_tokens_per_s']:.1f} tok/s ({gen['unpacked_over_packed_time']:.2f}x the "
              f"packed time), float {gen['float32_tokens_per_s']:.1f} tok/s")
    if getattr(args, "json", None):
        from trix.train import atomic_write_text
        atomic_write_text(Path(args.json), json.dumps({"ffn_step": ffn, "lm_step": lm, "generate": gens, "quick": quick,
                                                       "load_average": [load0, load1],
                                                       "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}, indent=2))
    return 0
