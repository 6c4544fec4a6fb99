"""The signature memory: ternary keys (tile signatures) searched by alignment, flat or through a
balanced k-means tree. Arrays are numpy (torch CPU tensors are accepted where int8/float32 inputs are
read). See docs/memory.md.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _C

__all__ = ["balanced_kmeans", "kmeans_capacity", "compose"]


def _i8(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype != np.int8:
        if not np.issubdtype(a.dtype, np.integer) and not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"argument '{name}' must be an int8 array, got dtype {a.dtype}")
        if a.size and (a.min() < -128 or a.max() > 127 or not np.all(np.equal(np.mod(a, 1), 0))):
            raise ValueError(f"argument '{name}' must hold integers in [-128, 127]")
        a = a.astype(np.int8)
    return np.ascontiguousarray(a)


def kmeans_capacity(n: int, k: int, slack: float = 0.1) -> int:
    """Largest cluster balanced_kmeans allows: ceil(n / k) + floor(ceil(n / k) * slack)."""
    return int(_C.kmeans_capacity(n, k, slack))


def balanced_kmeans(signatures: Any, k: int, seed: int = 0, iters: int = 10, slack: float = 0.1,
                    max_train_per_cluster: int = 256, return_centroids: bool = False):
    """Balanced k-means over int8 rows (ternary signatures).

    signatures: int8 [N, d] (any integer values in [-128, 127]; ternary is the intended use).
    Returns the cluster of every row, int32 [N], values in [0, k); every cluster holds between 1 and
    ``kmeans_capacity(N, k, slack)`` rows. Centroids are ternary, sign of the sum of their members;
    with ``return_centroids`` the result is ``(assignment [N], centroids int8 [k, d])``.
    Deterministic: the same inputs and seed give the same result on every machine.
    Above ``k * max_train_per_cluster`` rows the centroids are trained on a seeded sample, then
    every row is assigned.
    """
    x = _i8(signatures, "signatures")
    if x.ndim != 2:
        raise ValueError(f"balanced_kmeans: argument 'signatures' must be 2-D [N, d], got shape {x.shape}")
    assign, cent = _C.balanced_kmeans(x, int(k), int(seed), int(iters), float(slack), int(max_train_per_cluster))
    return (assign, cent) if return_centroids else assign


def compose(signatures: Any) -> np.ndarray:
    """Sum-then-sign of int8 rows [m, d] -> int8 [d] (0 where the sum is 0): a compositional key."""
    x = _i8(signatures, "signatures")
    if x.ndim != 2:
        raise ValueError(f"compose: argument 'signatures' must be 2-D [m, d], got shape {x.shape}")
    return _C.compose_signatures(x)
