"""GPU benchmark of trix.triton against torch bf16 dense (cuBLAS) on the same GPU (issue 15, point 3).

    python tools/gpu_bench.py [--quick] [--out gpu_bench.json]

Measures, each kernel's result checked against the dense product before it is timed:
1. the packed ternary product (2-bit weights, bf16 activations) against F.linear in bf16 (cuBLAS) at
   4096 x 4096 and 8192 x 8192, batch 1, 16 and 64 (target: >= 4x faster at batch 1);
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
    """Median milliseconds of fn() by triton.testing.do_bench (CUDA events, L2 flushed between runs)."""
    from triton.testing import do_bench

    return lambda fn: float(do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 200,
                                     return_mode="median"))


def packed_products(shapes, batches, device, timer):
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
            t_packed = timer(lambda: G.matmul(x, p))
            t_dense = timer(lambda: F.linear(x, dense))
            rows.append(dict(shape=f"{m}x{k}", batch=n, packed_ms=t_packed, cublas_bf16_ms=t_dense,
                             speedup=t_dense / t_packed, packed_weight_bytes=int(p.data.numel()),
                             bf16_weight_bytes=m * k * 2, rel_err=err))
    return rows


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
    gemv = packed_products([(4096, 4096)] if args.quick else [(4096, 4096), (8192, 8192)], [1, 16, 64], "cuda", timer)
    ffn = tiled_ffn_step(8192 if args.quick else 65536, 1024, 8, 4, "cuda", timer)
    res = dict(info=info, packed_products=gemv, tiled_ffn_step=ffn)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
    os.replace(tmp, args.out)

    print(f"GPU: {info['gpu']}; torch {info['torch']}, triton {info['triton']}; `{info['command']}`\n")
    print("| shape | batch | TriX packed 2-bit (ms) | cuBLAS bf16 (ms) | speedup | weight bytes 2-bit / bf16 |")
    print("|---|---|---|---|---|---|")
    for r in gemv:
        print(f"| {r['shape']} | {r['batch']} | {r['packed_ms']:.4f} | {r['cublas_bf16_ms']:.4f} | "
              f"{r['speedup']:.2f}x | {r['packed_weight_bytes']} / {r['bf16_weight_bytes']} |")
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
