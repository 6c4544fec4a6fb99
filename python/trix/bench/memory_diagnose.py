"""Where the tree's recall goes, measured (docs/memory.md "The recall ceiling"): on family keys with
known families, the leaf purity, the share of keys outside their family's main leaf (no number of
probes finds those), and the rank of the exact answer's leaf under two leaf keys (sign of the
members' sum; their float mean), next to the recall curve of the search itself.

    python -m trix.bench.memory_diagnose --n 1048576
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from .. import memory
from .memory_compare import D, make_queries, recalls


def ternary_fit(r: np.ndarray) -> np.ndarray:
    """Per row, the scaled ternary a * t nearest r (least squares): numpy twin of route_key."""
    mag = np.abs(r)
    srt = -np.sort(-mag, axis=1)
    kept = np.arange(1, r.shape[1] + 1)
    best = np.argmax(np.cumsum(srt, axis=1) ** 2 / kept, axis=1)
    thr = srt[np.arange(len(r)), best][:, None]
    t = np.sign(r) * ((mag >= thr) & (thr > 0))
    a = (mag * (t != 0)).sum(1) / np.maximum(1, (t != 0).sum(1))
    return a[:, None] * t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--nq", type=int, default=2000)
    a = ap.parse_args(argv)
    n, nq = a.n, a.nq
    rng = np.random.default_rng(n)
    fam = int(round(math.sqrt(n)))
    centres = rng.integers(-1, 2, size=(fam, D), dtype=np.int8)
    lab = rng.integers(0, fam, size=n)
    keys = centres[lab]
    redraw = rng.random((n, D)) < 0.5
    keys[redraw] = rng.integers(-1, 2, size=int(redraw.sum()), dtype=np.int8)
    mem = memory.SignatureMemory.from_signatures(keys)
    t = time.time()
    mem.build()
    print("build_s", round(time.time() - t, 1))
    leaf = np.array([mem.cluster_of(i) for i in range(n)])
    L = mem.num_clusters
    sizes = np.bincount(leaf, minlength=L)
    M = np.zeros((L, fam), np.int64)
    np.add.at(M, (leaf, lab), 1)
    main_leaf = M.argmax(0)
    print("leaves", L, "sizes min/max", sizes.min(), sizes.max())
    print("leaf purity", round(M.max(1).sum() / n, 6), "keys in their family's main leaf", round(M.max(0).sum() / n, 6))
    sums = np.zeros((L, D), np.int64)
    np.add.at(sums, leaf, keys.astype(np.int64))
    q = make_queries(keys, nq, "near", rng)
    ex = mem.search(q, k=1, exact=True)
    truth = ex.ids[:, 0]
    print("exact answers in their family's main leaf", round(float(np.mean(leaf[truth] == main_leaf[lab[truth]])), 4))
    mean = sums / np.maximum(1, sizes)[:, None]
    one = ternary_fit(mean)
    keys_by_name = (("sign-of-sum", np.sign(sums)), ("routing key (1 plane)", one),
                    ("2 planes", one + ternary_fit(mean - one)), ("float mean", mean))
    for name, cent in keys_by_name:
        s = q @ cent.T.astype(np.float32)
        rank = (s > s[np.arange(nq), leaf[truth]][:, None]).sum(1)
        print(name, "rank of the exact answer's leaf:",
              " ".join(f"<{r} {np.mean(rank < r):.4f}" for r in (1, 2, 4, 16, 64)))
    for p in (1, 2, 4, 16, 64):
        r = mem.search(q, k=1, probes=p)
        print("probes", p, "recall@1", round(recalls(r.scores, ex.scores)[0], 4), "scored", round(float(r.scored.mean())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
