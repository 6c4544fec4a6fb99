"""`python -m trix bench --memory`: the signature memory against FAISS on the same data.

Data (d = 256): keys are ternary, drawn in families (a family centre, each element redrawn uniformly
from {-1, 0, 1} with probability 0.5; round(sqrt(N)) families), as tiles that specialise around
shared functions. One extra size draws keys i.i.d. (no structure: no index can help there). Queries: "near" = a stored key plus Gaussian noise at SNR 1 (0 dB: noise power equal to
the key's power), "uniform" = i.i.d. Gaussian. Ground truth is exact float search (TriX flat, checked
against FAISS IndexFlatIP). "prepared" rows: the same exact search after `prepare()` (the table-lookup
layout, a second copy of the keys: bytes_per_tile counts both; recall1 there = agreement with unprepared). At large N the exact baselines run on fewer queries (stated per row).
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, List

import numpy as np

from .. import memory

D = 256
SNR = 1.0


def make_keys(n: int, rng: np.random.Generator, random_keys: bool) -> np.ndarray:
    if random_keys:
        return rng.integers(-1, 2, size=(n, D), dtype=np.int8)
    fam = max(1, int(round(math.sqrt(n))))
    centres = rng.integers(-1, 2, size=(fam, D), dtype=np.int8)
    keys = centres[rng.integers(0, fam, size=n)]
    redraw = rng.random((n, D)) < 0.5
    keys[redraw] = rng.integers(-1, 2, size=int(redraw.sum()), dtype=np.int8)
    return keys


def make_queries(keys: np.ndarray, nq: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.standard_normal((nq, D), dtype=np.float32)
    src = keys[rng.integers(0, len(keys), size=nq)].astype(np.float32)
    power = np.maximum((src ** 2).mean(axis=1, keepdims=True), 1e-6)
    return src + rng.standard_normal((nq, D), dtype=np.float32) * np.sqrt(power / SNR)


def timed(fn, reps: int = 1):
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def run_size(n: int, nq: int, nq_exact: int, probes: List[int], random_keys: bool, rows: List[Dict[str, Any]]) -> None:
    import faiss

    rng = np.random.default_rng(n)
    keys = make_keys(n, rng, random_keys)
    keys_f = keys.astype(np.float32)
    mem = memory.SignatureMemory.from_signatures(keys)
    _, t_build = timed(lambda: mem.build())
    base = dict(N=n, d=D, keys="random" if random_keys else "families", levels=mem.levels,
                clusters=mem.num_clusters, build_s=round(t_build, 3), bytes_per_tile=round(mem.nbytes / n, 1))
    flat_ix = faiss.IndexFlatIP(D)
    flat_ix.add(keys_f)
    nlist = int(round(math.sqrt(n)))
    quant = faiss.IndexFlatIP(D)
    ivf = faiss.IndexIVFFlat(quant, D, nlist, faiss.METRIC_INNER_PRODUCT)
    _, t_ivf_build = timed(lambda: (ivf.train(keys_f), ivf.add(keys_f)))
    for kind in ("near", "uniform"):
        q = make_queries(keys, nq, kind, rng)
        qe = q[:nq_exact]
        ex, t_flat = timed(lambda: mem.search(qe, exact=True))
        (fd, fi), t_fflat = timed(lambda: flat_ix.search(qe, 1))
        truth = ex.scores[:, 0]
        agree = float(np.mean(np.abs(fd[:, 0] - truth) <= 1e-3 * np.maximum(1, np.abs(truth))))
        rows.append(dict(base, queries=kind, method="trix flat (exact)", probes="all", nq=nq_exact,
                         qps=round(nq_exact / t_flat), recall1=1.0, scored=n))
        mem.prepare()  # table-lookup layout for float queries (AVX-512 levels); a second copy of the keys
        exp, t_prep = timed(lambda: mem.search(qe, exact=True))
        prep_bytes = round((mem.nbytes + mem.prepared_nbytes) / n, 1)
        mem.prepare(False)
        rows.append(dict(base, queries=kind, method="trix flat (exact, prepared)", probes="all", nq=nq_exact,
                         qps=round(nq_exact / t_prep), recall1=round(float(np.mean(exp.ids[:, 0] == ex.ids[:, 0])), 4),
                         scored=n, bytes_per_tile=prep_bytes))
        rows.append(dict(base, queries=kind, method="faiss IndexFlatIP", probes="all", nq=nq_exact,
                         qps=round(nq_exact / t_fflat), recall1=round(agree, 4), scored=n, build_s=0.0,
                         bytes_per_tile=4 * D))
        for p in probes:
            if p > mem.num_clusters:
                continue
            r, t = timed(lambda: mem.search(q, probes=p))
            rec = float(np.mean(r.scores[:nq_exact, 0] >= truth - 1e-3 * np.maximum(1, np.abs(truth))))
            rows.append(dict(base, queries=kind, method="trix tree", probes=p, nq=nq, qps=round(nq / t),
                             recall1=round(rec, 4), scored=round(float(r.scored.mean()))))
        for p in probes:
            if p > nlist:
                continue
            ivf.nprobe = p
            (dd, ii), t = timed(lambda: ivf.search(q, 1))
            rec = float(np.mean(dd[:nq_exact, 0] >= truth - 1e-3 * np.maximum(1, np.abs(truth))))
            sizes = n / nlist
            rows.append(dict(base, queries=kind, method="faiss IVFFlat", probes=p, nq=nq, qps=round(nq / t),
                             recall1=round(rec, 4), scored=round(nlist + p * sizes), clusters=nlist,
                             build_s=round(t_ivf_build, 3), bytes_per_tile=4 * D + 8, levels=2))


def table(rows: List[Dict[str, Any]]) -> str:
    cols = ["N", "keys", "queries", "method", "probes", "nq", "qps", "recall1", "scored", "build_s", "bytes_per_tile"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def run(args: Any) -> int:
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("trix bench --memory: faiss is not installed (pip install faiss-cpu)")
        return 1
    quick = bool(getattr(args, "quick", False))
    sizes = [1000, 16000] if quick else [1000, 16000, 65536, 262144, 1048576]
    nq = 512 if quick else 4096
    probes = [1, 2, 3, 4, 8, 16]
    rows: List[Dict[str, Any]] = []
    for n in sizes:
        nq_exact = nq if n <= 262144 else 512
        run_size(n, nq, nq_exact, probes, False, rows)
        print(f"N={n} done", flush=True)
    run_size(16000 if quick else 65536, nq, nq, probes, True, rows)
    print(__doc__.split("\n\n")[1])
    print(table(rows))
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(dict(d=D, snr=SNR, rows=rows), f, indent=1)
    return 0
