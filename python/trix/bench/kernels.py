"""`python -m trix bench`: TriX packed kernels against what a user would pick instead, side by side in
one run, one thread:

- torch float32 and bfloat16 `F.linear`;
- torch dynamic int8 `Linear` (`quantize_dynamic`) under every quantized engine this torch build has
  (`torch.backends.quantized.supported_engines`: fbgemm, x86, onednn, qnnpack);
- torchao int8 dynamic quantization (`quantize_` with `Int8DynamicActivationInt8WeightConfig`), if
  torchao is installed;
- TriX: float activations on the public format and on a `trix.prepare`d matrix, int8 activations
  (`matmul_i8`, activation quantization included).

Two modes, reported next to each other: warm (one layer called again and again: its weights stay in
cache) and cold (model-sized: each method cycles through a stack of copies whose total bytes exceed
twice the last-level cache, so every call reads its weights from memory as a model's layers do).
Every figure is a median over interleaved rounds (all methods see the same machine load), both in
wall time and in this thread's CPU time (immune to time slicing on a shared machine). The "best
torch" figures are the fastest torch method of each kind; the ratios are against them.

The tiled FFN is timed with its routing (signature scores + top-1 + the routed tile) against the
dense FFN of the same total width, in TriX (one tile of the full hidden width) and in torch float32.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

SHAPES = [(4096, 4096), (2560, 6912), (1024, 1024)]
SLOW_S = 0.2  # a method whose call takes longer is timed once per round, in the first 3 rounds only
# Warm mode's untimed calls before each method's timed ones: at least WARM_CALLS and WARM_S of them.
# One call is not always enough: on Zen 3 (whose last-level cache is filled only by L2 evictions), in
# an ad hoc probe after a 64 MiB read, calls 2 to 8 of a 4 MiB GEMV took 227-803 us, ~220 us once warm.
WARM_CALLS = 2
WARM_S = 0.01


@dataclass
class Method:
    """One way to compute y = x W^T: `call(layer)` runs it on layer `layer` of its stack (layer 0 warm)."""
    name: str
    kind: str                      # "torch_f32", "torch_int8", "trix"...: the group a "best" is taken over
    call: Callable[[int], object]
    layers: int                    # copies in its cold stack
    bytes_per_layer: int
    setup: Optional[Callable[[], None]] = None   # run untimed before its calls (e.g. select the engine)
    times: Dict[str, List[float]] = field(default_factory=dict)


def llc_bytes() -> int:
    """The last-level cache in bytes (sysfs, then sysconf), 32 MiB when the OS does not say."""
    for idx in (3, 2):
        path = f"/sys/devices/system/cpu/cpu0/cache/index{idx}/size"
        try:
            with open(path) as f:
                s = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
            return int(s.rstrip("KMG")) * mult
        except (OSError, ValueError):
            pass
    try:
        v = os.sysconf("SC_LEVEL3_CACHE_SIZE")
        if v > 0:
            return int(v)
    except (ValueError, OSError, AttributeError):
        pass
    return 32 << 20


def cold_layers(bytes_per_layer: int, cold_bytes: int) -> int:
    """Copies needed so that the stack holds more than cold_bytes (at least 2)."""
    return max(2, cold_bytes // max(1, bytes_per_layer) + 1)


def _timed_rounds(methods: Sequence[Method], mode: str, min_s: float, per_round: int = 3,
                  max_rounds: int = 200) -> None:
    """Interleaved rounds; in each, every method is set up, then called per_round times (timed), each
    call on the next layer of its stack in cold mode, or on layer 0 in warm mode after untimed calls
    on it (at least WARM_CALLS and WARM_S; one for a slow method). Appends (wall µs, thread CPU µs)
    to m.times[mode + "_wall"/"_cpu"]."""
    nxt = {m.name: 0 for m in methods}
    slow = set()
    start = time.perf_counter()
    rounds = 0
    while (time.perf_counter() - start < min_s * len(methods) or rounds < 3) and rounds < max_rounds:
        for m in methods:
            if m.name in slow and rounds >= 3:
                continue
            if m.setup:
                m.setup()
            if mode == "warm":
                t0, calls = time.perf_counter(), 0
                while calls < (1 if m.name in slow else WARM_CALLS) or (
                        m.name not in slow and time.perf_counter() - t0 < WARM_S):
                    m.call(0)
                    calls += 1
            for _ in range(1 if m.name in slow else per_round):
                layer = 0 if mode == "warm" else nxt[m.name]
                nxt[m.name] = (nxt[m.name] + 1) % m.layers
                c, t = time.thread_time(), time.perf_counter()
                m.call(layer)
                wall = time.perf_counter() - t
                m.times.setdefault(mode + "_wall", []).append(wall * 1e6)
                m.times.setdefault(mode + "_cpu", []).append((time.thread_time() - c) * 1e6)
                if wall > SLOW_S:
                    slow.add(m.name)
        rounds += 1


def _int8_linear(weight, engine: str):
    import torch

    torch.backends.quantized.engine = engine
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)


def _torchao_linear(weight):
    """torchao int8 dynamic activations + int8 weights, or None if torchao is missing or fails."""
    import torch

    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    lin = torch.nn.Sequential(torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        lin[0].weight.copy_(weight)
    quantize_(lin, Int8DynamicActivationInt8WeightConfig())
    return lin


def quantized_engines() -> List[str]:
    import torch

    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def set_activations(act: Dict, x) -> None:
    """Points the methods of build_methods at activations x (torch float32 [n, k])."""
    act.update(x=x, xn=x.numpy(), xb=x.bfloat16(), y=np.empty((x.shape[0], act["m"]), dtype=np.float32))


def build_methods(m: int, k: int, act: Dict, cold_bytes: int, with_torchao: bool) -> List[Method]:
    """Every method for an [m, k] ternary weight (scale 0.02), reading its activations from act
    (set_activations)."""
    import torch
    import torch.nn.functional as F

    import trix

    rng = np.random.default_rng(0)
    wq = rng.integers(-1, 2, size=(m, k)).astype(np.int8)
    weight = torch.from_numpy(wq.astype(np.float32) * 0.02)
    a = act
    methods: List[Method] = []

    def stack(make: Callable[[], object], nbytes: int) -> List[object]:
        return [make() for _ in range(cold_layers(nbytes, cold_bytes))]

    f32 = stack(lambda: weight.clone(), m * k * 4)
    methods.append(Method("torch_f32", "torch_float", lambda i: F.linear(a["x"], f32[i]), len(f32), m * k * 4))
    b16 = stack(lambda: weight.bfloat16(), m * k * 2)
    methods.append(Method("torch_bf16", "torch_float", lambda i: F.linear(a["xb"], b16[i]), len(b16), m * k * 2))
    for eng in quantized_engines():
        try:
            q = stack(lambda: _int8_linear(weight, eng), m * k)
            q[0](torch.zeros(1, k))
        except Exception as e:  # noqa: BLE001 - an engine this build lists but cannot run here
            print(f"  (torch int8 engine {eng} skipped: {type(e).__name__}: {e})")
            continue

        def setup(eng=eng):
            torch.backends.quantized.engine = eng

        methods.append(Method(f"torch_i8_{eng}", "torch_int8", lambda i, q=q: q[i](a["x"]), len(q), m * k, setup))
    if with_torchao:
        ao0 = _torchao_linear(weight)
        if ao0 is not None:
            ao = [ao0] + [_torchao_linear(weight) for _ in range(cold_layers(m * k, cold_bytes) - 1)]
            methods.append(Method("torchao_i8", "torch_int8", lambda i: ao[i](a["x"]), len(ao), m * k))
    packed = trix.pack_int8(wq, np.array([0.02], dtype=np.float32))
    pb = packed.nbytes
    pk = stack(lambda: trix.pack_int8(wq, np.array([0.02], dtype=np.float32)), pb)
    methods.append(Method("trix_f32", "trix", lambda i: trix.matmul(a["xn"], pk[i], out=a["y"]), len(pk), pb))
    pp = stack(lambda: trix.prepare(packed), 2 * pb)
    methods.append(Method("trix_prep", "trix", lambda i: trix.matmul(a["xn"], pp[i], out=a["y"]), len(pp), 2 * pb))
    # per-row absmax quantization + exact int8 product + scales, all included
    methods.append(Method("trix_i8", "trix", lambda i: trix.matmul_i8(a["xn"], pk[i], out=a["y"]), len(pk), pb))
    return methods


def _ratios(med: Dict[str, float]) -> Dict[str, float]:
    torch_i8 = {n: v for n, v in med.items() if n.startswith(("torch_i8", "torchao"))}
    torch_all = {n: v for n, v in med.items() if n.startswith("torch")}
    r: Dict[str, float] = {}
    if torch_i8:
        best_i8 = min(torch_i8, key=torch_i8.get)
        r["best_torch_int8"] = best_i8
        r["trix_i8_vs_best_torch_int8"] = med[best_i8] / med["trix_i8"]
    if torch_all:
        best = min(torch_all, key=torch_all.get)
        r["best_torch"] = best
        r["trix_i8_vs_best_torch"] = med[best] / med["trix_i8"]
    r["trix_i8_vs_torch_f32"] = med["torch_f32"] / med["trix_i8"]
    r["trix_prep_vs_torch_f32"] = med["torch_f32"] / med["trix_prep"]
    return r


def _print_table(title: str, rows: List[Dict], names: List[str], key: str) -> None:
    ratio_cols = ["trix_i8_vs_best_torch_int8", "trix_i8_vs_best_torch", "trix_i8_vs_torch_f32",
                  "trix_prep_vs_torch_f32"]
    short = {"trix_i8_vs_best_torch_int8": "i8/bestTi8", "trix_i8_vs_best_torch": "i8/bestT",
             "trix_i8_vs_torch_f32": "i8/Tf32", "trix_prep_vs_torch_f32": "prep/Tf32"}
    print(f"\n{title}")
    header = ["M", "K", "N"] + names + [short[c] for c in ratio_cols] + ["best_torch_int8"]
    widths = [5, 5, 3] + [max(10, len(n)) for n in names] + [10] * len(ratio_cols) + [16]
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    for r in rows:
        med, rat = r[key]["us"], r[key]["ratios"]
        vals = [str(r["m"]), str(r["k"]), str(r["n"])] + [f"{med[n]:.1f}" if n in med else "-" for n in names]
        vals += [f"{rat[c]:.2f}x" if c in rat else "-" for c in ratio_cols]
        vals.append(rat.get("best_torch_int8", "-"))
        print(" ".join(f"{v:>{w}}" for v, w in zip(vals, widths)))


def bench_ffn(quick: bool, min_s: float) -> List[Dict]:
    """Tiled FFN with routing vs the dense FFN of the same total width (d 1024, hidden 4096)."""
    import torch
    import torch.nn.functional as F

    import trix

    d, hidden = (256, 1024) if quick else (1024, 4096)
    rng = np.random.default_rng(1)
    dense_up = trix.pack_int8(rng.integers(-1, 2, size=(hidden, d)).astype(np.int8), np.array([0.02], np.float32))
    dense_down = trix.pack_int8(rng.integers(-1, 2, size=(d, hidden)).astype(np.int8), np.array([0.02], np.float32))
    wu = torch.randn(hidden, d) * 0.02
    wd = torch.randn(d, hidden) * 0.02
    rows = []
    print(f"\ntiled FFN with routing vs dense FFN of the same total width (d {d}, hidden {hidden}, top-1, "
          "one thread, median wall / thread CPU µs)")
    print(f"{'N':>3} {'T':>3} {'routed':>10} {'route only':>10} {'trix dense':>10} {'torch f32 dense':>16}"
          f" {'trix dense/routed':>18} {'torch dense/routed':>19}")
    for n in ([1, 8] if quick else [1, 64]):
        x = rng.standard_normal((n, d)).astype(np.float32)
        xt = torch.from_numpy(x)
        zero = np.zeros((n, 1), dtype=np.int32)
        for t in (4, 16, 64):
            h = hidden // t
            up = trix.pack_int8(rng.integers(-1, 2, size=(t * h, d)).astype(np.int8), np.array([0.02], np.float32))
            down = trix.pack_int8(rng.integers(-1, 2, size=(t * d, h)).astype(np.int8), np.array([0.02], np.float32))
            sig = trix.pack_int8(trix.tile_signatures(up, t))

            def routed():
                idx, _ = trix.route(x, sig, k=1)
                return trix.tiled_ffn(x, up, down, t, idx)

            ms = [Method("routed", "trix", lambda i: routed(), 1, 0),
                  Method("route", "trix", lambda i: trix.route(x, sig, k=1), 1, 0),
                  Method("dense", "trix", lambda i: trix.tiled_ffn(x, dense_up, dense_down, 1, zero), 1, 0),
                  Method("torch_dense", "torch", lambda i: F.linear(F.relu(F.linear(xt, wu)), wd), 1, 0)]
            with torch.inference_mode():
                _timed_rounds(ms, "warm", min_s)
            med = {m.name: statistics.median(m.times["warm_wall"]) for m in ms}
            cpu = {m.name: statistics.median(m.times["warm_cpu"]) for m in ms}
            r = dict(n=n, tiles=t, d=d, hidden=hidden, wall_us=med, cpu_us=cpu,
                     dense_over_routed=med["dense"] / med["routed"],
                     torch_dense_over_routed=med["torch_dense"] / med["routed"])
            rows.append(r)
            print(f"{n:3d} {t:3d} {med['routed']:10.1f} {med['route']:10.1f} {med['dense']:10.1f}"
                  f" {med['torch_dense']:16.1f} {r['dense_over_routed']:17.1f}x {r['torch_dense_over_routed']:18.1f}x")
            print(f"{'':3} {'cpu':>3} {cpu['routed']:10.1f} {cpu['route']:10.1f} {cpu['dense']:10.1f}"
                  f" {cpu['torch_dense']:16.1f} {cpu['dense'] / cpu['routed']:17.1f}x"
                  f" {cpu['torch_dense'] / cpu['routed']:18.1f}x")
    return rows


def run(args) -> int:
    import torch

    import trix

    quick = bool(getattr(args, "quick", False))
    shapes = [(1024, 1024)] if quick else SHAPES
    if getattr(args, "shapes", None):
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
    batches = [1, 8] if quick else [1, 64]
    min_s = 0.05 if quick else 0.4
    cold_bytes = 2 * llc_bytes()
    torch.set_num_threads(1)
    trix.set_num_threads(1)
    try:
        import torchao
        ao_version: Optional[str] = torchao.__version__
    except Exception:  # noqa: BLE001
        ao_version = None
    print(f"one thread; trix level {trix.simd_level()}; torch {torch.__version__}; quantized engines "
          f"{quantized_engines()}; torchao {ao_version or 'not installed'}; last-level cache "
          f"{llc_bytes() >> 20} MiB, cold stacks > {cold_bytes >> 20} MiB per method")
    rows: List[Dict] = []
    names: List[str] = []
    for m, k in shapes:
        act: Dict = dict(m=m)
        methods = build_methods(m, k, act, cold_bytes, with_torchao=ao_version is not None)
        for mt in methods:
            if mt.name not in names:
                names.append(mt.name)
        for n in batches:
            set_activations(act, torch.randn(n, k))
            for mt in methods:
                mt.times.clear()
            r: Dict = dict(m=m, k=k, n=n, layers={mt.name: mt.layers for mt in methods})
            with torch.inference_mode():
                for mode in ("warm", "cold"):
                    _timed_rounds(methods, mode, min_s)
                    for clock in ("wall", "cpu"):
                        med = {mt.name: statistics.median(mt.times[f"{mode}_{clock}"]) for mt in methods}
                        r[f"{mode}_{clock}"] = dict(us=med, ratios=_ratios(med))
            rows.append(r)
        del methods
    for mode, what in (("warm", "warm: one layer, weights in cache"),
                       ("cold", "cold: each method cycles a stack > 2x the last-level cache")):
        for clock, unit in (("wall", "median wall µs"), ("cpu", "median thread CPU µs")):
            _print_table(f"{what}; {unit}", rows, names, f"{mode}_{clock}")
    ffn = [] if getattr(args, "no_ffn", False) else bench_ffn(quick, min_s)
    if getattr(args, "json", None):
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(level=trix.simd_level(), torch=torch.__version__, torchao=ao_version,
                           engines=quantized_engines(), llc_bytes=llc_bytes(), rows=rows, ffn=ffn), f, indent=1)
        os.replace(tmp, args.json)
    return 0
