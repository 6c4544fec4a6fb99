"""GPU benchmark of trix.triton against torch bf16 dense (cuBLAS) on the same GPU (issue 15, point 3).

    python tools/gpu_bench.py [--quick] [--out gpu_bench.json]

Measures, each kernel's result checked against the dense product before it is timed:
1. the packed ternary product (2-bit weights, bf16 activations) against F.linear in bf16 (cuBLAS) at
   4096 x 4096 and 8192 x 8192, batch 1, 16 and 64 (target: >= 4x faster at batch 1), timed eagerly
   (host launch cost included) and replayed from a CUDA graph (GPU time only);
2. one training step (forward + backward) of the tiled FFN, d 1024, 8 tiles, top-1, 65536 tokens
   (hidden 4096 in all, 512 per tile; latent float32 weights quantized and packed in the step, as
   training does), against the dense bf16 FFN of the same total width (target: >= 3x faster), and
   the weight memory of both.
Times are medians of triton.testing.do_bench (CUDA events, L2 flushed between runs). Prints markdown
tables (for docs/benchmarks.md) and writes the figures as JSON. Needs a CUDA GPU and triton.
tests_py/test_triton_dispatch.py runs the same functions at toy sizes under the interpreter (no timing).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys


def cuda_timer(quick: bool):
    """Median milliseconds of fn() by triton.testing.do_bench (CUDA events, L2 flushed between runs):
    eager calls, so the host's launch cost (Python checks, Triton's launcher) is in the figure."""
    from triton.testing import do_bench

    return lambda fn: float(do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 200,
                                     return_mode="median"))


def graph_timer(quick: bool):
    """Median milliseconds of fn() replayed from a CUDA graph (triton.testing.do_bench_cudagraph): the
    GPU's time without the host's launch cost, as an inference engine that captures graphs sees it."""
    from triton.testing import do_bench_cudagraph

    return lambda fn: float(do_bench_cudagraph(fn, rep=10 if quick else 50, return_mode="median"))


def packed_products(shapes, batches, device, timer, graph=None):
    """Rows of (shape, batch, packed ms, cuBLAS bf16 ms, speedup, weight bytes); each packed product
    is checked against the same effective weights as a dense matrix before it is timed."""
    import torch
    import torch.nn.functional as F

    from trix.quant import ternary_codes
    from trix.triton import ops as G

    rows = []
    for m, k in shapes:
        q, s = ternary_codes(torch.randn(m, k, device=device) * 0.02)
        p = G.pack_codes(q, s)
        dense = (q * s).to(torch.bfloat16)  # the same effective weights, dense bf16
        for n in batches:
            x = torch.randn(n, k, device=device, dtype=torch.bfloat16)
            y = G.matmul(x, p).float()
            ref = x.float() @ dense.float().t()
            err = float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-6))
            if err > 1e-2:
                raise SystemExit(f"gpu_bench: packed product wrong at {m}x{k} batch {n}: relative error {err}")
            row = dict(shape=f"{m}x{k}", batch=n, packed_weight_bytes=int(p.data.numel()),
                       bf16_weight_bytes=m * k * 2, rel_err=err)
            for tag, tm in (("", timer), ("graph_", graph)):
                if tm is not None:
                    row[tag + "packed_ms"] = tm(lambda: G.matmul(x, p))
                    row[tag + "cublas_bf16_ms"] = tm(lambda: F.linear(x, dense))
                    row[tag + "speedup"] = row[tag + "cublas_bf16_ms"] / row[tag + "packed_ms"]
            rows.append(row)
    return rows


def gemv_block_sweep(m, k, device, timer, weight_rows=(16, 32, 64, 128)):
    """Batch-1 packed product at m x k for each `gemv_weight_rows` (weight rows per program; the
    untuned default is trix.triton.ops.GPU_BLOCKS): data for choosing it."""
    import dataclasses

    import torch

    from trix.triton import ops as G

    p = G.pack(torch.randn(m, k, device=device))
    x = torch.randn(1, k, device=device, dtype=torch.bfloat16)
    default, out = G.GPU_BLOCKS, {}
    try:
        for wr in weight_rows:
            G.GPU_BLOCKS = dataclasses.replace(default, gemv_weight_rows=wr)
            out[wr] = timer(lambda: G.matmul(x, p))
    finally:
        G.GPU_BLOCKS = default
    return out


def tiled_ffn_step(n, d, tiles, expansion, device, timer):
    """One training step (forward + backward) of the Triton tiled FFN (bf16 activations, latent
    float32 weights quantized and packed inside the step, as in training) and of the dense bf16 FFN
    of the same total hidden width; checked against trix.autograd's torch reference first."""
    import torch
    import torch.nn.functional as F

    from trix.autograd import tiled_ffn_reference
    from trix.triton import autograd as TA
    from trix.triton import ops as G

    h = expansion * d // tiles
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, d, device=device, generator=g).to(torch.bfloat16).requires_grad_()
    up = (torch.randn(tiles * h, d, device=device, generator=g) * 0.02).requires_grad_()
    down = (torch.randn(tiles * d, h, device=device, generator=g) * 0.02).requires_grad_()
    tile = torch.randint(0, tiles, (n, 1), device=device, generator=g)
    gy = torch.randn(n, d, device=device, generator=g).to(torch.bfloat16)
    w1 = (torch.randn(expansion * d, d, device=device, generator=g) * 0.02).to(torch.bfloat16).requires_grad_()
    w2 = (torch.randn(d, expansion * d, device=device, generator=g) * 0.02).to(torch.bfloat16).requires_grad_()

    def trix_step():
        TA.tiled_ffn(x, up, down, tiles, tile, None, "gelu").backward(gy)

    def dense_step():
        F.linear(F.gelu(F.linear(x, w1)), w2).backward(gy)

    m = min(n, 512)
    xs = x[:m].detach().float()
    yr = tiled_ffn_reference(xs, up, down, tiles, tile[:m], None, "gelu")
    yt = TA.tiled_ffn(xs, up, down, tiles, tile[:m], None, "gelu")
    err = float((yt - yr).detach().abs().max() / yr.detach().abs().max().clamp_min(1e-6))
    if err > 1e-4:
        raise SystemExit(f"gpu_bench: tiled FFN wrong: relative error {err}")
    out = {}
    cuda = torch.device(device).type == "cuda"
    for name, step in (("trix_tiled_ffn", trix_step), ("dense_bf16_ffn", dense_step)):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        step()
        if cuda:
            torch.cuda.synchronize()
        out[name + "_peak_bytes"] = int(torch.cuda.max_memory_allocated()) if cuda else 0
        out[name + "_ms"] = timer(step)
    pup, pdown = G.pack(up), G.pack(down)
    out.update(tokens=n, d=d, tiles=tiles, hidden_per_tile=h, top_k=1, rel_err=err,
               speedup=out["dense_bf16_ffn_ms"] / out["trix_tiled_ffn_ms"],
               trix_packed_weight_bytes=int(pup.data.numel() + pdown.data.numel()),
               trix_latent_fp32_weight_bytes=int(4 * (up.numel() + down.numel())),
               dense_bf16_weight_bytes=int(2 * (w1.numel() + w2.numel())))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape, 8192 tokens, short timing (a smoke run)")
    ap.add_argument("--out", default="gpu_bench.json", help="JSON output (default gpu_bench.json)")
    args = ap.parse_args(argv)
    import torch
    import triton

    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device", file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("gpu_bench: unset TRITON_INTERPRET (the interpreter is not a GPU)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    info = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                python=platform.python_version(), quick=args.quick, command=" ".join(["python"] + sys.argv))
    timer = cuda_timer(args.quick)
    gemv = packed_products([(4096, 4096)] if args.quick else [(4096, 4096), (8192, 8192)], [1, 16, 64], "cuda", timer,
                           graph_timer(args.quick))
    sweep = gemv_block_sweep(4096, 4096, "cuda", graph_timer(args.quick))
    ffn = tiled_ffn_step(8192 if args.quick else 65536, 1024, 8, 4, "cuda", timer)
    res = dict(info=info, packed_products=gemv, gemv_weight_rows_sweep_ms=sweep, tiled_ffn_step=ffn)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
    os.replace(tmp, args.out)

    print(f"GPU: {info['gpu']}; torch {info['torch']}, triton {info['triton']}; `{info['command']}`\n")
    print("| shape | batch | TriX packed 2-bit (ms) | cuBLAS bf16 (ms) | speedup | in a CUDA graph: TriX / cuBLAS (ms) "
          "| speedup | weight bytes 2-bit / bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in gemv:
        print(f"| {r['shape']} | {r['batch']} | {r['packed_ms']:.4f} | {r['cublas_bf16_ms']:.4f} | "
              f"{r['speedup']:.2f}x | {r['graph_packed_ms']:.4f} / {r['graph_cublas_bf16_ms']:.4f} | "
              f"{r['graph_speedup']:.2f}x | {r['packed_weight_bytes']} / {r['bf16_weight_bytes']} |")
    print("\nBatch-1 4096 x 4096 in a CUDA graph by weight rows per program (ms): "
          + ", ".join(f"{wr}: {t:.4f}" for wr, t in sweep.items()))
    print(f"\nTiled FFN training step (forward + backward), d {ffn['d']}, {ffn['tiles']} tiles, top-1, "
          f"{ffn['tokens']} tokens, bf16 activations:\n")
    print("| | step (ms) | peak memory (MiB) | weights (MiB) |")
    print("|---|---|---|---|")
    mib = 1 << 20
    print(f"| TriX tiled FFN (Triton) | {ffn['trix_tiled_ffn_ms']:.3f} | {ffn['trix_tiled_ffn_peak_bytes'] / mib:.1f} | "
          f"{ffn['trix_packed_weight_bytes'] / mib:.2f} packed (+ {ffn['trix_latent_fp32_weight_bytes'] / mib:.1f} "
          f"latent fp32) |")
    print(f"| dense bf16 FFN (cuBLAS) | {ffn['dense_bf16_ffn_ms']:.3f} | {ffn['dense_bf16_ffn_peak_bytes'] / mib:.1f} | "
          f"{ffn['dense_bf16_weight_bytes'] / mib:.2f} |")
    print(f"\nspeedup {ffn['speedup']:.2f}x (target >= 3x); GEMV batch 1 target >= 4x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
