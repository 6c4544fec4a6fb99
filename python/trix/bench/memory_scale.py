"""Ten million keys: build time, memory, the recall / QPS curve over probes, add/remove at scale, and
the memory-matched FAISS indexes (IVF-PQ 64 B codes, binary IVF on sign bits) on the same keys
(docs/memory.md "Ten million keys"). Flat and HNSW FAISS indexes are left out (10 GiB of floats).

    python -m trix.bench.memory_scale --n 10000000 [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List

import numpy as np

from .memory_compare import (exact_truth, faiss_methods, machine, make_keys, make_queries, median_qps, peak_rss_gib,
                             recalls, report, set_threads)


def rss_gib() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 2 ** 20


def check_updates(mem: Any, keys: np.ndarray, rng: np.random.Generator, n_upd: int, probes: int) -> Dict[str, Any]:
    """Adds n_upd new family keys and removes n_upd old ones, then checks at scale: sizes and ids, that
    every added key finds itself (an int8 key's best match is itself: k . k' <= nnz(k) = k . k), that no
    removed id is ever returned, against exact search over the updated memory on 200 queries."""
    n0 = len(mem)
    new = keys[rng.integers(0, len(keys), size=n_upd)].copy()
    flip = rng.random(new.shape, dtype=np.float32) < 0.25  # near old keys, not copies of them
    new[flip] = rng.integers(-1, 2, size=int(flip.sum()), dtype=np.int8)
    t = time.perf_counter()
    ids = mem.add(new)
    t_add = time.perf_counter() - t
    gone = rng.choice(n0, size=n_upd, replace=False)
    t = time.perf_counter()
    mem.remove(gone)
    t_rm = time.perf_counter() - t
    ok_size = len(mem) == n0 and np.array_equal(ids, np.arange(n0, n0 + n_upd)) and all(int(i) in mem for i in ids[:1000])
    ok_gone = not any(int(i) in mem for i in gone[:1000])
    r = mem.search(new, k=1, probes=probes)
    self_found = float(np.mean(r.ids[:, 0] == ids))
    q = keys[gone[:2000]].astype(np.float32)  # removed keys as queries: their ids must never come back
    rg = mem.search(q, k=10, probes=probes)
    removed_returned = int(np.isin(rg.ids, gone).sum())
    qs = make_queries(new, 200, "near", rng)
    ex = mem.search(qs, k=1, exact=True)
    tr = mem.search(qs, k=1, probes=probes)
    rec = float(np.mean(tr.scores[:, 0] >= ex.scores[:, 0] - 1e-3 * np.maximum(1, np.abs(ex.scores[:, 0]))))
    return dict(added=n_upd, removed=n_upd, add_s=round(t_add, 2), remove_s=round(t_rm, 2), sizes_ok=bool(ok_size),
                removed_gone=bool(ok_gone), added_find_themselves=round(self_found, 4),
                removed_ids_returned=removed_returned, needs_rebuild=bool(mem.needs_rebuild),
                recall1_after_updates_200q=round(rec, 4), probes=probes)


def main(argv: List[str] = None) -> int:
    from .. import memory
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--nq", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--probes", default="1,2,3,4,6,8,16,32")
    ap.add_argument("--faiss", default="ivfpq,binivf")
    ap.add_argument("--updates", type=int, default=100_000)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")]
    info: Dict[str, Any] = machine()
    rng = np.random.default_rng(a.n)
    t = time.perf_counter()
    keys = make_keys(a.n, rng, "families")
    info["keys_s"] = round(time.perf_counter() - t, 1)
    q = make_queries(keys, a.nq, "near", np.random.default_rng(7))
    set_threads(max(threads))
    t = time.perf_counter()
    truth = exact_truth(keys, q)
    info["truth_s"] = round(time.perf_counter() - t, 1)
    rss0 = rss_gib()
    mem = memory.SignatureMemory.from_signatures(keys)
    t = time.perf_counter()
    mem.build()  # both cores: k-means assignment is split over the thread pool
    info.update(build_s=round(time.perf_counter() - t, 1), levels=mem.levels, clusters=mem.num_clusters,
                bytes_per_key=round(mem.nbytes / a.n, 1), rss_before_memory_gib=round(rss0, 2),
                rss_after_build_gib=round(rss_gib(), 2), peak_rss_after_build_gib=round(peak_rss_gib(), 2))
    print(info, flush=True)
    rows: List[Dict[str, Any]] = []
    for p in [int(x) for x in a.probes.split(",")]:
        set_threads(max(threads))
        r = mem.search(q, k=10, probes=p)
        r1, r10 = recalls(r.scores, truth)
        for th in threads:
            set_threads(th)
            qps = median_qps(lambda: mem.search(q, k=10, probes=p), len(q), a.reps)
            rows.append(dict(keys="families", N=a.n, queries="near", method="trix tree (param probes)", param=p,
                             threads=th, nq=len(q), qps=round(qps), recall1=round(r1, 4), recall10=round(r10, 4),
                             build_s=info["build_s"], bytes_per_key=info["bytes_per_key"],
                             scored=round(float(r.scored.mean()))))
            print(rows[-1], flush=True)
    set_threads(max(threads))
    info["updates"] = check_updates(mem, keys, np.random.default_rng(11), a.updates, probes=8)
    print(info["updates"], flush=True)
    del mem
    for meth in faiss_methods(keys, a.faiss.split(",")):
        set_threads(max(threads))
        t = time.perf_counter()
        ix = meth.build_fn()
        build_s = time.perf_counter() - t
        for p in meth.params:
            if p > 64:
                continue
            set_threads(max(threads))
            r1, r10 = recalls(meth.search_fn(ix, q, 10, p), truth)
            for th in threads:
                set_threads(th)
                qps = median_qps(lambda: meth.search_fn(ix, q, 10, p), len(q), a.reps)
                rows.append(dict(keys="families", N=a.n, queries="near", method=meth.name, param=p, threads=th,
                                 nq=len(q), qps=round(qps), recall1=round(r1, 4), recall10=round(r10, 4),
                                 build_s=round(build_s, 1), bytes_per_key=round(float(meth.nbytes_fn(ix)), 1)))
                print(rows[-1], flush=True)
        del ix
    return report(info, a, rows)


if __name__ == "__main__":
    raise SystemExit(main())
