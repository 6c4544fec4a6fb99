"""The signature memory: ternary keys (tile signatures) searched by alignment, flat or through a
balanced k-means tree. Arrays are numpy (torch CPU tensors are accepted where int8/float32 inputs are
read). See docs/memory.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from . import _C

__all__ = ["balanced_kmeans", "kmeans_capacity", "compose", "SignatureMemory", "SearchResult", "Grouping"]


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
    ``kmeans_capacity(N, k, slack)`` rows. Rows are assigned by each cluster's routing key (the
    scaled ternary vector nearest its members' mean, the key search ranks leaves by); a starved
    cluster is reseeded (docs/memory.md). With ``return_centroids`` the result is
    ``(assignment [N], centroids int8 [k, d])``, the sign of each cluster's member sum.
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


@dataclass
class SearchResult:
    """ids int64 [n, k] (-1 where fewer than k tiles exist), scores float32 [n, k] (best first, ties to
    the lower id), scored int64 [n] (signatures scored per query, cluster signatures included)."""
    ids: np.ndarray
    scores: np.ndarray
    scored: np.ndarray


@dataclass
class Grouping(SearchResult):
    """A lookup grouped for compute. Pair p = i * k + j is (query i, its j-th result); ``perm`` int64
    lists pairs ordered by tile id then p, and the pairs of ``tiles[t]`` (int64, ascending) are
    ``perm[offsets[t]:offsets[t + 1]]``; for k = 1 the pairs are query rows (``x[perm]`` groups inputs)."""
    tiles: np.ndarray = None
    offsets: np.ndarray = None
    perm: np.ndarray = None


def _f32(a: Any, name: str, ndim: int) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) or a.dtype == np.bool_:
        raise TypeError(f"argument '{name}' must be a float32 array, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != ndim:
        raise ValueError(f"argument '{name}' must be {ndim}-D, got shape {a.shape}")
    return a


def _ids(a: Any, name: str = "ids", dtype=np.int64) -> np.ndarray:
    """Integer ids as a contiguous 1-D array; floats must be whole numbers, and every value must fit."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"argument '{name}' must hold integers, got dtype {a.dtype}")
    a = a.reshape(-1)
    if a.size and np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a) & (np.mod(a, 1) == 0)):
        raise ValueError(f"argument '{name}' must hold whole numbers")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"argument '{name}' must hold values in [{info.min}, {info.max}], got {a.min()} .. {a.max()}")
    return np.ascontiguousarray(a, dtype=dtype)


def _int(v: Any, name: str, func: str) -> int:
    """A Python int from an int-like scalar; an array (a common slip: keys where a size is expected),
    a float or a string is a TypeError naming the argument."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        shape = getattr(v, "shape", None)
        what = f"an array of shape {list(shape)}" if shape is not None else type(v).__name__
        raise TypeError(f"{func}: argument '{name}' must be an int, got {what}")
    return int(v)


class SignatureMemory:
    """A content-addressable memory of ternary signatures (keys) of dimension d.

    Keys are stored packed (2 bits an element). ``search`` scores queries (score = q . key) exactly
    over every key (``exact=True`` or before ``build``) or through the balanced k-means tree built
    by ``build``: query -> top ``probes`` leaf clusters -> best keys inside. Ids are given at ``add``
    and never reused. See docs/memory.md.
    """

    def __init__(self, dim: int = 0, _impl: Optional[Any] = None):
        if _impl is None and getattr(dim, "ndim", 0) >= 1:
            raise TypeError(f"SignatureMemory: argument 'dim' must be the key dimension d (an int), got an array "
                            f"of shape {list(dim.shape)}; to store keys use SignatureMemory.from_signatures(keys)")
        self._m = _impl if _impl is not None else _C.SignatureMemory(_int(dim, "dim", "SignatureMemory"))

    @classmethod
    def from_signatures(cls, signatures: Any) -> "SignatureMemory":
        """signatures: int8 [N, d] in {-1, 0, 1}; ids 0..N-1."""
        return cls(_impl=_C.SignatureMemory.from_int8(_i8(signatures, "signatures")))

    @classmethod
    def from_tiles(cls, up: Any, tiles: int) -> "SignatureMemory":
        """up: a packed tiled up-projection (trix.PackedTernary [tiles * h, d]); keys are its tile signatures."""
        if not hasattr(up, "data") or not hasattr(up, "cols"):
            raise TypeError(f"SignatureMemory.from_tiles: argument 'up' must be a trix.PackedTernary, got "
                            f"{type(up).__name__}; for int8 keys use SignatureMemory.from_signatures")
        data = np.ascontiguousarray(np.asarray(up.data))
        scales = np.ascontiguousarray(np.asarray(up.scales, dtype=np.float32))
        return cls(_impl=_C.SignatureMemory.from_tiles(data, int(up.cols), scales, int(tiles)))

    def __len__(self) -> int:
        return self._m.size

    @property
    def dim(self) -> int:
        return self._m.dim

    @property
    def levels(self) -> int:
        """Levels of the tree counting the key level: 1 (flat), 2 or 3."""
        return self._m.levels

    @property
    def num_clusters(self) -> int:
        return self._m.num_clusters

    @property
    def nbytes(self) -> int:
        """Bytes held: packed keys, ids, the id map and the tree."""
        return self._m.nbytes

    def prepare(self, on: bool = True) -> "SignatureMemory":
        """Builds (on=True) or frees (on=False) the prepared layout for float queries: a second copy of
        the signatures in the 16-row interleaved layout that AVX-512 levels score by table lookup
        (docs/memory.md "Prepared layout"). Doubles the signature bytes (``prepared_nbytes``, not
        counted in ``nbytes``); kept up to date by add/remove/replace/build; never saved. Returns self."""
        self._m.prepare(bool(on))
        return self

    @property
    def prepared(self) -> bool:
        return self._m.prepared

    @property
    def prepared_nbytes(self) -> int:
        """Bytes of the prepared layout (0 unless prepared)."""
        return self._m.prepared_nbytes

    @property
    def needs_rebuild(self) -> bool:
        return self._m.needs_rebuild

    def cluster_sizes(self) -> np.ndarray:
        """int64 [num_clusters]."""
        return self._m.cluster_sizes()

    def cluster_of(self, id: int) -> int:
        return self._m.cluster_of(_int(id, "id", "SignatureMemory.cluster_of"))

    def __contains__(self, id: int) -> bool:
        return self._m.contains(_int(id, "id", "SignatureMemory.__contains__"))

    def add(self, signatures: Any) -> np.ndarray:
        """signatures: int8 [n, d] in {-1, 0, 1}. Returns the new ids, int64 [n]. A new key joins its
        nearest leaf; a leaf or size that drifts past the rebuild bound triggers a rebuild."""
        return self._m.add(_i8(signatures, "signatures"))

    def remove(self, ids: Any) -> None:
        """ids: int64 [n] of stored keys."""
        self._m.remove(_ids(ids))

    def replace(self, ids: Any, signatures: Any) -> None:
        """ids: int64 [n]; signatures: int8 [n, d]. Each id keeps its number and gets a new key."""
        self._m.replace(_ids(ids), _i8(signatures, "signatures"))

    def get(self, ids: Any) -> np.ndarray:
        """The stored keys of ids as int8 [n, d]."""
        return self._m.get(_ids(ids))

    def compose(self, ids: Any) -> np.ndarray:
        """Sum-then-sign of the keys of ids -> int8 [d]: search it to ask which tiles answer all of them."""
        return self._m.compose(_ids(ids))

    def build(self, levels: int = 0, leaf_size: int = 0, seed: int = 0, iters: int = 10, slack: float = 0.1,
              max_train_per_cluster: int = 64, rebuild_factor: float = 2.0, auto_rebuild: bool = True) -> None:
        """Builds the balanced k-means tree. levels: 2, 3 or 0 (2 up to 33554432 keys, else 3);
        leaf_size: keys per leaf (0 = ceil(sqrt(N))); leaf sizes stay within
        ceil(m / k) + floor(ceil(m / k) * slack) for each k-means of m keys into k clusters."""
        f = "SignatureMemory.build"
        self._m.build(_int(levels, "levels", f), _int(leaf_size, "leaf_size", f), _int(seed, "seed", f),
                      _int(iters, "iters", f), float(slack), _int(max_train_per_cluster, "max_train_per_cluster", f),
                      float(rebuild_factor), bool(auto_rebuild))

    def build_from_assignment(self, assignment: Any, clusters: int, sign_routes: bool = False) -> None:
        """A 2-level tree with given clusters: assignment int [N] maps the i-th stored key (ascending id) to
        a leaf in [0, clusters); every leaf must be non-empty. Automatic rebuilds are turned off.
        sign_routes=True ranks leaves by q . sign(sum of their members), HierarchicalTriXFFN's cluster
        signatures, instead of the fitted routing keys (such a memory cannot be saved)."""
        a = _ids(assignment, "assignment", np.int32)
        self._m.build_from_assignment(a, _int(clusters, "clusters", "SignatureMemory.build_from_assignment"),
                                      bool(sign_routes))

    def search(self, queries: Any, k: int = 1, probes: int = 1, upper_probes: int = 0, exact: bool = False,
               quantize: bool = False) -> SearchResult:
        """queries: float32 [n, d] (scored in float; quantize=True scores int8 absmax rows instead) or
        int8 [n, d] (exact int32 scores). probes: leaf clusters searched per query; upper_probes: nodes
        kept at the top level of a 3-level tree (0 = max(2, probes // 2)); exact: every key."""
        f = "SignatureMemory.search"
        args = (_int(k, "k", f), _int(probes, "probes", f), _int(upper_probes, "upper_probes", f), bool(exact))
        if _is_int8(queries):
            r = self._m.search_i8(_i8(queries, "queries"), *args)
        else:
            r = self._m.search(_f32(queries, "queries", 2), *args, bool(quantize))
        return SearchResult(*r)

    def lookup(self, queries: Any, k: int = 1, probes: int = 1, upper_probes: int = 0, exact: bool = False,
               quantize: bool = False) -> Grouping:
        """``search`` plus the grouping that puts inputs of the same tile together (see Grouping)."""
        f = "SignatureMemory.lookup"
        q = _i8(queries, "queries") if _is_int8(queries) else _f32(queries, "queries", 2)
        return Grouping(*self._m.lookup(q, _int(k, "k", f), _int(probes, "probes", f),
                                        _int(upper_probes, "upper_probes", f), bool(exact), bool(quantize)))

    def explain(self, query: Any, probes: int = 1, upper_probes: int = 0) -> Dict[str, Any]:
        """query: float32 [d]. Returns id, score, runner_up, runner_up_score, margin, path (node per
        level, top first, ending at the leaf cluster), path_scores, scored, exact_id, exact_score."""
        f = "SignatureMemory.explain"
        return self._m.explain(_f32(query, "query", 1), _int(probes, "probes", f), _int(upper_probes, "upper_probes", f))

    def save(self, path: str) -> None:
        """Writes the memory and its tree (versioned header, CRC-32 checked) atomically."""
        self._m.save(str(path))

    @classmethod
    def load(cls, path: str) -> "SignatureMemory":
        """Reads a saved memory; a corrupt or truncated file raises trix.FormatError."""
        return cls(_impl=_C.SignatureMemory.load(str(path)))

    def to_bytes(self) -> bytes:
        return self._m.serialize()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SignatureMemory":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"SignatureMemory.from_bytes: argument 'data' must be bytes, got {type(data).__name__}")
        return cls(_impl=_C.SignatureMemory.deserialize(bytes(data)))


def _is_int8(a: Any) -> bool:
    dt = getattr(a, "dtype", None)
    if isinstance(dt, np.dtype):
        return dt == np.int8
    return dt is not None and str(dt) == "torch.int8"
