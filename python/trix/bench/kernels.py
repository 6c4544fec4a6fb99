"""`python -m trix bench`: TriX packed kernels against what a user would pick instead, side by side in
one run: torch F.linear (float32), torch dynamic int8 Linear (quantize_dynamic), TriX packed with float
activations (on the public format and on a trix.prepare'd matrix) and with int8 activations
(matmul_i8, activation quantization included). Median µs, warm caches, all five timed in
interleaved rounds so they share the machine's load."""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

SHAPES = [(4096, 4096), (2560, 6912), (1024, 1024)]


def _median_us(f: Callable[[], object], min_s: float, max_reps: int = 500) -> float:
    f()
    f()
    times: List[float] = []
    start = time.perf_counter()
    while (time.perf_counter() - start < min_s or len(times) < 5) and len(times) < max_reps:
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def _interleaved_us(fs: Dict[str, Callable[[], object]], min_s: float, max_rounds: int = 200,
                    per_round: int = 3) -> Dict[str, float]:
    """Median µs of each function, timed in rounds so all of them see the same machine load: in each
    round every function gets one untimed call (its weights back in cache: the figures are for warm
    caches, as in a loop over one layer) and then `per_round` timed calls."""
    times: Dict[str, List[float]] = {name: [] for name in fs}
    start = time.perf_counter()
    rounds = 0
    while (time.perf_counter() - start < min_s * len(fs) or rounds < 3) and rounds < max_rounds:
        for name, f in fs.items():
            f()
            for _ in range(per_round):
                t = time.perf_counter()
                f()
                times[name].append((time.perf_counter() - t) * 1e6)
        rounds += 1
    return {name: statistics.median(v) for name, v in times.items()}


def run(args) -> int:
    import torch
    import torch.nn.functional as F

    import trix

    quick = bool(getattr(args, "quick", False))
    shapes = [(1024, 1024)] if quick else SHAPES
    batches = [1, 8] if quick else [1, 64]
    min_s = 0.05 if quick else 0.4
    torch.set_num_threads(1)
    trix.set_num_threads(1)
    rows: List[Dict] = []
    print(f"one thread; trix level {trix.simd_level()}; torch {torch.__version__}")
    print(f"{'M':>5} {'K':>5} {'N':>3} {'torch_f32':>10} {'torch_i8':>10} {'trix_f32':>10} {'trix_i8':>10}"
          f" {'i8/f32':>7} {'i8/t_i8':>8} {'f32/f32':>8} {'prep/f32':>8}")
    for m, k in shapes:
        rng = np.random.default_rng(0)
        wq = rng.integers(-1, 2, size=(m, k)).astype(np.int8)
        packed = trix.pack_int8(wq, np.array([0.02], dtype=np.float32))
        prepared = trix.prepare(packed)  # load-time repack for the table-lookup float kernel
        weight = torch.from_numpy(wq.astype(np.float32) * 0.02)
        lin = torch.nn.Linear(k, m, bias=False)
        with torch.no_grad():
            lin.weight.copy_(weight)
        qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        for n in batches:
            x = torch.randn(n, k)
            xn = x.numpy()
            y = np.empty((n, m), dtype=np.float32)
            with torch.inference_mode():
                t = _interleaved_us({
                    "torch_f32": lambda: F.linear(x, weight),
                    "torch_i8": lambda: qlin(x),
                    "trix_f32": lambda: trix.matmul(xn, packed, out=y),
                    "trix_prep": lambda: trix.matmul(xn, prepared, out=y),
                    # per-row absmax quantization + exact int8 product + scales, all included
                    "trix_i8": lambda: trix.matmul_i8(xn, packed, out=y),
                }, min_s)
            t_f32, t_i8, x_f32, x_prep, x_i8 = (t["torch_f32"], t["torch_i8"], t["trix_f32"], t["trix_prep"],
                                                t["trix_i8"])
            r = dict(m=m, k=k, n=n, torch_f32_us=t_f32, torch_int8_us=t_i8, trix_f32_us=x_f32,
                     trix_f32_prepared_us=x_prep, trix_int8_us=x_i8,
                     trix_int8_vs_torch_f32=t_f32 / x_i8, trix_int8_vs_torch_int8=t_i8 / x_i8,
                     trix_f32_vs_torch_f32=t_f32 / x_f32, trix_f32_prepared_vs_torch_f32=t_f32 / x_prep)
            rows.append(r)
            print(f"{m:5d} {k:5d} {n:3d} {t_f32:10.1f} {t_i8:10.1f} {x_f32:10.1f} {x_prep:10.1f} {x_i8:10.1f}"
                  f" {r['trix_int8_vs_torch_f32']:7.1f} {r['trix_int8_vs_torch_int8']:8.2f} {r['trix_f32_vs_torch_f32']:8.1f}"
                  f" {r['trix_f32_prepared_vs_torch_f32']:8.1f}")
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(dict(level=trix.simd_level(), torch=torch.__version__, rows=rows), f, indent=1)
    return 0
