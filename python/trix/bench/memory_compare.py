"""Side by side in one run: the TriX signature memory against FAISS (HNSW, IVF-Flat, IVF-PQ, IVF-SQ8,
binary IVF on the keys' sign bits, exact flat), one thread and two (docs/memory.md "Against FAISS").

    python -m trix.bench.memory_compare --keys families --n 1048576 [--json out.json]

Keys (d = 256): "families" (round(sqrt(N)) centres, each element redrawn from {-1, 0, 1} with
probability 0.5), "random" (i.i.d. ternary), "trained" (signatures of trained tiles, from
`python -m trix.bench.trained_keys`). Queries: "near" (a key plus Gaussian noise at SNR 1), "uniform"
(i.i.d. N(0, 1)), "pair" (the sum of two keys as floats: compositional retrieval). Ground truth is
exact float search (FAISS IndexFlatIP, top 10). recall@1: the returned best score reaches the true
best (ties are not misses); recall@10: the share of the 10 returned scores that reach the true 10th.
QPS: the median of `--reps` timed runs over all queries (exact flat search, and any point whose pass over
all queries takes over a second: over the first 200; column nq_timed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..train import atomic_write_text

D = 256
SNR = 1.0
SLOW_PASS_S = 1.0


def make_keys(n: int, rng: np.random.Generator, kind: str, chunk: int = 1 << 20) -> np.ndarray:
    """int8 [n, D] keys, generated in chunks (10M keys fit in their own 2.5 GiB)."""
    out = np.empty((n, D), np.int8)
    centres = rng.integers(-1, 2, size=(max(1, int(round(math.sqrt(n)))), D), dtype=np.int8)
    for b in range(0, n, chunk):
        e = min(n, b + chunk)
        if kind == "random":
            out[b:e] = rng.integers(-1, 2, size=(e - b, D), dtype=np.int8)
            continue
        k = centres[rng.integers(0, len(centres), size=e - b)]
        redraw = rng.random((e - b, D), dtype=np.float32) < 0.5
        k[redraw] = rng.integers(-1, 2, size=int(redraw.sum()), dtype=np.int8)
        out[b:e] = k
    return out


def load_trained_keys(path: Path) -> Tuple[np.ndarray, Dict[str, Any]]:
    """(int8 [N, D] keys, meta) from a trained_keys .npz (no pickles: np.load refuses them)."""
    with np.load(path, allow_pickle=False) as z:
        keys, meta = z["keys"], json.loads(str(z["meta"]))
    if keys.dtype != np.int8 or keys.ndim != 2 or keys.shape[1] != D or np.abs(keys).max(initial=0) > 1:
        raise ValueError(f"{path}: 'keys' must be int8 [N, {D}] in {{-1, 0, 1}}, got {keys.dtype} {list(keys.shape)}")
    return np.ascontiguousarray(keys), meta


def make_queries(keys: np.ndarray, nq: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.standard_normal((nq, keys.shape[1]), dtype=np.float32)
    if kind == "pair":
        a = keys[rng.integers(0, len(keys), size=nq)].astype(np.float32)
        return a + keys[rng.integers(0, len(keys), size=nq)].astype(np.float32)
    src = keys[rng.integers(0, len(keys), size=nq)].astype(np.float32)
    power = np.maximum((src ** 2).mean(axis=1, keepdims=True), 1e-6)
    return src + rng.standard_normal(src.shape, dtype=np.float32) * np.sqrt(power / SNR)


def exact_truth(keys: np.ndarray, q: np.ndarray, k: int = 10, chunk: int = 1 << 20) -> np.ndarray:
    """True top-k scores [nq, k] by exact float inner product, keys converted a chunk at a time."""
    import faiss
    best = np.full((len(q), k), -np.inf, np.float32)
    for b in range(0, len(keys), chunk):
        ix = faiss.IndexFlatIP(keys.shape[1])
        ix.add(keys[b:b + chunk].astype(np.float32))
        s, _ = ix.search(q, k)
        best = -np.sort(-np.concatenate([best, s], axis=1), axis=1)[:, :k]
    return best


def recalls(scores: np.ndarray, truth: np.ndarray) -> Tuple[float, float]:
    """(recall@1, recall@10) from returned scores [nq, >= 1] (best first) against exact ones."""
    tol = 1e-3 * np.maximum(1.0, np.abs(truth))
    r1 = float(np.mean(scores[:, 0] >= truth[:, 0] - tol[:, 0]))
    if scores.shape[1] < truth.shape[1]:
        return r1, float("nan")
    kth = (truth[:, -1] - tol[:, -1])[:, None]
    r10 = float(np.mean(np.sum(scores[:, :truth.shape[1]] >= kth, axis=1) / truth.shape[1]))
    return r1, r10


def median_qps(fn: Callable[[], Any], nq: int, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return nq / float(np.median(times))


def set_threads(t: int) -> None:
    import faiss
    import trix
    faiss.omp_set_num_threads(t)
    trix.set_num_threads(t)


def machine() -> Dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    import trix
    return dict(cpu=model, cores=os.cpu_count(), simd=trix.simd_level(), python=platform.python_version(),
                load_avg=os.getloadavg())


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


class Method:
    """One index: build once, then search(q, k, param) -> scores [nq, k] (higher is better)."""

    def __init__(self, name: str, params: List[Any], build: Callable[[], Any],
                 search: Callable[[Any, np.ndarray, int, Any], np.ndarray], nbytes: Callable[[Any], float]):
        self.name, self.params, self.build_fn, self.search_fn, self.nbytes_fn = name, params, build, search, nbytes


def sign_bits(x: np.ndarray) -> np.ndarray:
    return np.packbits(x > 0, axis=1)


def faiss_methods(keys: np.ndarray, which: List[str]) -> List[Method]:
    """FAISS indexes over the keys (float32 unless binary), nlist = round(sqrt(N))."""
    import faiss
    n = len(keys)
    nlist = max(1, int(round(math.sqrt(n))))
    probes = [p for p in (1, 2, 4, 8, 16, 32, 64, 128) if p <= nlist]
    train = keys[np.random.default_rng(1).choice(n, size=min(n, 64 * nlist), replace=False)].astype(np.float32)

    def add_chunks(ix, conv=lambda c: c.astype(np.float32)):
        for b in range(0, n, 1 << 20):
            ix.add(conv(keys[b:b + (1 << 20)]))
        return ix

    def float_search(ix, q, k, p):
        if isinstance(ix, faiss.IndexHNSWFlat):
            ix.hnsw.efSearch = max(p, k)
        elif p is not None:
            faiss.extract_index_ivf(ix).nprobe = p
        return ix.search(q, k)[0]

    out = []
    if "flat" in which:
        out.append(Method("faiss IndexFlatIP", [None], lambda: add_chunks(faiss.IndexFlatIP(D)),
                          float_search, lambda ix: 4 * D))
    # FAISS's default efConstruction (40), and 200 (hnswlib's default): a better graph for a longer build.
    for name, efc, label in (("hnsw", 40, "M=32"), ("hnsw200", 200, "M=32 efConstruction=200")):
        if name not in which:
            continue

        def hnsw(efc=efc):
            ix = faiss.IndexHNSWFlat(D, 32, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efConstruction = efc
            return add_chunks(ix)
        out.append(Method(f"faiss IndexHNSWFlat {label} (param efSearch)", [16, 32, 64, 128, 256, 512, 1024], hnsw,
                          float_search, lambda ix: 4 * D + 2 * 32 * 4 * 1.05))  # level 0: 2M links of 4 B

    def ivf(factory):
        def build():
            ix = faiss.index_factory(D, factory, faiss.METRIC_INNER_PRODUCT)
            ix.train(train)
            return add_chunks(ix)
        return build

    if "ivfflat" in which:
        out.append(Method(f"faiss IVF{nlist},Flat", probes, ivf(f"IVF{nlist},Flat"), float_search, lambda ix: 4 * D + 8))
    if "ivfsq8" in which:
        out.append(Method(f"faiss IVF{nlist},SQ8", probes, ivf(f"IVF{nlist},SQ8"), float_search, lambda ix: D + 8))
    if "ivfpq" in which:
        out.append(Method(f"faiss IVF{nlist},PQ64 (64 B codes)", probes, ivf(f"IVF{nlist},PQ64"), float_search,
                          lambda ix: 64 + 8))
    if "binivf" in which:
        def binivf():
            quant = faiss.IndexBinaryFlat(D)
            ix = faiss.IndexBinaryIVF(quant, D, nlist)
            ix.train(sign_bits(train))
            return add_chunks(ix, sign_bits)

        def bsearch(ix, q, k, p):
            # Hamming order on sign bits, then the candidates' true scores for the reported ranking.
            ix.nprobe = p
            _, ids = ix.search(sign_bits(q), k)
            sc = np.einsum("qd,qkd->qk", q, keys[np.maximum(ids, 0)].astype(np.float32))
            sc[ids < 0] = -np.inf
            return -np.sort(-sc, axis=1)
        out.append(Method(f"faiss BinaryIVF{nlist} sign bits (32 B codes)", probes, binivf, bsearch,
                          lambda ix: D / 8 + 8))
    return out


def trix_methods(keys: np.ndarray, which: List[str], slack: float = 0.1, levels: int = 0) -> List[Method]:
    from .. import memory

    def build():
        m = memory.SignatureMemory.from_signatures(keys)
        m.build(slack=slack, levels=levels)
        return m

    probes = [1, 2, 3, 4, 8, 16, 32, 64]
    out = []
    if "trix" in which:
        name = ("trix tree (param probes)" + ("" if slack == 0.1 else f" slack={slack:g}")
                + (f" levels={levels}" if levels else ""))
        out.append(Method(name, probes, build,
                          lambda m, q, k, p: m.search(q, k=k, probes=p).scores, lambda m: m.nbytes / len(keys)))
    return out


def run_compare(keys: np.ndarray, kinds: List[str], nq: int, threads: List[int], reps: int, which: List[str],
                label: str, seed: int = 7, checkpoint: Optional[Callable[[List[Dict[str, Any]]], None]] = None,
                slack: float = 0.1, levels: int = 0) -> List[Dict[str, Any]]:
    """Every method x query kind x parameter x thread count, one row each (printed as it comes);
    checkpoint(rows), if given, is called after each method so a long run that is stopped keeps
    what it measured."""
    rng = np.random.default_rng(seed)
    qs = {kind: make_queries(keys, nq, kind, rng) for kind in kinds}
    truth = {kind: exact_truth(keys, q) for kind, q in qs.items()}
    rows: List[Dict[str, Any]] = []
    set_threads(max(threads))
    for meth in trix_methods(keys, which, slack, levels) + faiss_methods(keys, which):
        t0 = time.perf_counter()
        ix = meth.build_fn()
        build_s = time.perf_counter() - t0
        bpk = meth.nbytes_fn(ix)
        print(f"{label}: {meth.name} built in {build_s:.1f} s", flush=True)
        for kind in kinds:
            q = qs[kind]
            for p in meth.params:
                set_threads(max(threads))
                t0 = time.perf_counter()
                r1, r10 = recalls(meth.search_fn(ix, q, 10, p), truth[kind])
                exact = p is None
                # A point whose one pass over all queries takes over a second is timed on the first 200
                # (still one batched call; the recall above is always over all of them).
                qt = q[:200] if exact or time.perf_counter() - t0 > SLOW_PASS_S else q
                for t in threads if reps > 0 else [max(threads)]:  # reps 0: recall only, not timed
                    set_threads(t)
                    qps = median_qps(lambda: meth.search_fn(ix, qt, 10, p), len(qt), reps) if reps > 0 else float("nan")
                    rows.append(dict(keys=label, N=len(keys), queries=kind, method=meth.name,
                                     param="all" if exact else p, threads=t, nq=len(q), nq_timed=len(qt),
                                     qps=round(qps) if qps == qps else "not timed",
                                     recall1=round(r1, 4), recall10=round(r10, 4), build_s=round(build_s, 1),
                                     bytes_per_key=round(float(bpk), 1)))
                    print(rows[-1], flush=True)
        del ix
        if checkpoint:
            checkpoint(rows)
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    cols = ["keys", "N", "queries", "method", "param", "threads", "qps", "nq_timed", "recall1", "recall10",
            "build_s", "bytes_per_key"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def markdown(rows: List[Dict[str, Any]]) -> str:
    """The rows as docs/memory.md prints them: one table per query kind, QPS per thread count side by
    side, and, per method, the first parameter that reaches recall@1 0.99 and 0.999 marked in bold."""
    threads = sorted({r["threads"] for r in rows})
    out = []
    for kind in dict.fromkeys(r["queries"] for r in rows):
        out += [f"\n{kind} queries:\n", "| index | param | " + " | ".join(f"QPS, {t} thr" for t in threads) +
                " | queries timed | recall@1 | recall@10 | build s | bytes/key |",
                "|---|---|" + "---|" * (len(threads) + 5)]
        points: Dict[Tuple[str, Any], Dict[int, Dict[str, Any]]] = {}
        for r in rows:
            if r["queries"] == kind:
                points.setdefault((r["method"], r["param"]), {})[r["threads"]] = r
        reached = set()
        for (method, param), by_t in points.items():
            r = next(iter(by_t.values()))
            mark = [x for x in (0.99, 0.999) if r["recall1"] >= x and (method, x) not in reached]
            reached.update((method, x) for x in mark)
            qps = [f"{by_t[t]['qps']:,}" if isinstance(by_t.get(t, {}).get("qps"), int) else "-" for t in threads]
            cells = [method, str(param)] + qps + [str(r.get("nq_timed", r["nq"])), str(r["recall1"]),
                                                  str(r["recall10"]), str(r["build_s"]), str(r["bytes_per_key"])]
            if mark:
                cells = [f"**{c}**" if i in (1, 2, 2 + len(threads) + 1) else c for i, c in enumerate(cells)]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", default="families", choices=["families", "random", "trained"])
    ap.add_argument("--keys-file", help="with --keys trained: the .npz of python -m trix.bench.trained_keys")
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--nq", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5, help="timed runs per point (0: recall only)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--queries", default="near,uniform,pair")
    ap.add_argument("--methods", default="trix,flat,hnsw,ivfflat,ivfsq8,ivfpq,binivf")
    ap.add_argument("--slack", type=float, default=0.1, help="the TriX build's leaf-size slack (default 0.1)")
    ap.add_argument("--levels", type=int, default=0, help="the TriX tree's levels: 2, 3 or 0 (the default rule)")
    ap.add_argument("--json")
    ap.add_argument("--markdown", metavar="JSON", help="print the tables of a finished run's JSON and exit")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())["rows"]))
        return 0
    info = machine()
    if a.keys == "trained":
        if not a.keys_file:
            ap.error("--keys trained needs --keys-file (written by python -m trix.bench.trained_keys)")
        keys, info["trained_keys"] = load_trained_keys(Path(a.keys_file))
    else:
        keys = make_keys(a.n, np.random.default_rng(a.n), a.keys)
    partial = (lambda rows: atomic_write_text(Path(a.json), json.dumps(dict(machine=info, args=vars(a), rows=rows, partial=True), indent=1))) if a.json else None
    rows = run_compare(keys, a.queries.split(","), a.nq, [int(t) for t in a.threads.split(",")], a.reps,
                       a.methods.split(","), a.keys, checkpoint=partial, slack=a.slack, levels=a.levels)
    return report(info, a, rows)


def report(info: Dict[str, Any], args: argparse.Namespace, rows: List[Dict[str, Any]]) -> int:
    """Prints the machine, load and peak memory and the table; writes them as JSON if asked."""
    info["load_avg_after"] = os.getloadavg()
    info["peak_rss_gib"] = round(peak_rss_gib(), 2)
    print(info)
    print(table(rows))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(dict(machine=info, args=vars(args), rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
