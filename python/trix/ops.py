"""Functional API over libtrix: packing, products, the tiled FFN, signatures and routing.

Every function takes numpy arrays or torch CPU tensors (no copy is made: they cross by DLPack) and
returns the same kind it was given. Inputs must be C-contiguous with the stated dtype; anything else
raises TypeError (dtype, device) or ValueError (shape, layout) naming the argument.

Shapes: W is a packed [M, K] ternary matrix (M outputs, K inputs), x is [N, K].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from . import _C

Array = Any  # numpy.ndarray or torch.Tensor

_NP = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "int32": np.int32}


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def _empty(like: Any, shape: Tuple[int, ...], dtype: str) -> Array:
    """An uninitialised output of the same library (numpy or torch) as `like`."""
    if _is_torch(like):
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype))
    return np.empty(shape, dtype=_NP[dtype])


def _shape2(a: Any, name: str, func: str) -> Tuple[int, int]:
    shape = tuple(a.shape)
    if len(shape) != 2:
        raise ValueError(f"{func}: argument '{name}' must be 2-D, got shape {list(shape)}")
    return shape


@dataclass
class PackedTernary:
    """A ternary matrix [rows, cols] in the public packed format, version 1 (docs/format.md).

    data:   uint8 [rows, packed_row_bytes(cols)], 4 weights per byte;
    cols:   the logical number of columns (rows are padded to a multiple of 128 weights);
    scales: float32 [1] (one scale), [rows] (one per row) or [0] (all scales 1).
    """

    data: Array
    cols: int
    scales: Array

    def __post_init__(self) -> None:
        # Bytes from a user are checked once, here (dtype, shape, no code 11, zero padding): the kernels
        # trust them. Writing into ``data`` afterwards bypasses the check (docs/format.md).
        if isinstance(self.cols, bool) or not isinstance(self.cols, (int, np.integer)):
            raise TypeError(f"PackedTernary: argument 'cols' must be an int, got {type(self.cols).__name__}")
        self.cols = int(self.cols)
        _C.validate_packed(self.data, self.cols)

    @classmethod
    def _trusted(cls, data: Array, cols: int, scales: Array) -> "PackedTernary":
        """A PackedTernary over bytes libtrix itself just wrote (pack, load, slices of a checked one)."""
        p = object.__new__(cls)
        p.data, p.cols, p.scales = data, int(cols), scales
        return p

    @property
    def rows(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        return int(self.data.shape[0] * self.data.shape[1]) + 4 * int(self.scales.shape[0])

    def numpy(self) -> "PackedTernary":
        """The same matrix backed by numpy arrays (no copy for torch CPU tensors)."""
        return PackedTernary._trusted(np.asarray(self.data), self.cols, np.asarray(self.scales))

    def torch(self) -> "PackedTernary":
        """The same matrix backed by torch tensors (no copy)."""
        import torch

        return PackedTernary._trusted(torch.as_tensor(self.data), self.cols, torch.as_tensor(self.scales))


class PreparedMatrix:
    """A packed matrix prepared for repeated products (``trix.prepare``): an owning copy of the public
    format plus a private layout for the fastest kernels (AVX-512: a float GEMV by table lookup).
    It never goes stale: changing the source arrays afterwards does not change it. Memory: about twice
    the packed size. Accepted by matmul, matmul_t, matmul_i8 and matmul_i8_acc in place of a
    PackedTernary, with the same results (float within the documented tolerance, int8 identical)."""

    def __init__(self, p: PackedTernary):
        self._c = _C.PreparedMatrix(p.data, p.cols, p.scales)

    @property
    def rows(self) -> int:
        return int(self._c.rows)

    @property
    def cols(self) -> int:
        return int(self._c.cols)

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        return int(self._c.nbytes)

    def __repr__(self) -> str:
        return f"PreparedMatrix(rows={self.rows}, cols={self.cols})"


def prepare(p: PackedTernary) -> PreparedMatrix:
    """Copy a packed matrix into the layout of the fastest kernels, once at load time."""
    return PreparedMatrix(p)


def pack(w: Array, rule: str = "absmean", threshold: float = 0.5, per_row: bool = False) -> PackedTernary:
    """Quantize float32 weights [M, K] to ternary and pack them.

    rule="absmean" (default, BitNet b1.58): gamma = mean|W| (per row if per_row), q = clip(round(W/gamma), -1, 1)
    with round half to even, scale = gamma. rule="threshold" (the prototype): q = +1 if W > threshold,
    -1 if W < -threshold, else 0, scale = 1.
    """
    rows, cols = _shape2(w, "w", "pack")
    n_scales = rows if (rule == "absmean" and per_row) else 1
    q = _empty(w, (rows, cols), "int8")
    scales = _empty(w, (n_scales,), "float32")
    _C.quantize_ternary(w, rule, float(threshold), bool(per_row), q, scales)
    data = _empty(w, (rows, _C.packed_row_bytes(cols)), "uint8")
    _C.pack_int8(q, data)
    return PackedTernary._trusted(data, cols, scales)


def pack_int8(q: Array, scales: Optional[Array] = None) -> PackedTernary:
    """Pack int8 weights [M, K] holding only -1, 0, 1. scales: float32 [1] or [M]; None means none (all 1)."""
    rows, cols = _shape2(q, "q", "pack_int8")
    data = _empty(q, (rows, _C.packed_row_bytes(cols)), "uint8")
    _C.pack_int8(q, data)
    if scales is None:
        scales = _empty(q, (0,), "float32")
    return PackedTernary._trusted(data, cols, scales)


def unpack(p: PackedTernary) -> Array:
    """The int8 weights [rows, cols] in {-1, 0, 1} (scales are not applied)."""
    out = _empty(p.data, (p.rows, p.cols), "int8")
    _C.unpack_int8(p.data, p.cols, out)
    return out


def quantize_activations(x: Array) -> Tuple[Array, Array]:
    """Per-row absmax int8 quantization of float32 x [N, K]: returns (xq int8 [N, K], xscale float32 [N]),
    with x ~ xq * xscale[:, None] (BitNet b1.58 activations)."""
    n, k = _shape2(x, "x", "quantize_activations")
    xq, xs = _empty(x, (n, k), "int8"), _empty(x, (n,), "float32")
    _C.quantize_activations(x, xq, xs)
    return xq, xs


def matmul(x: Array, w: PackedTernary, out: Optional[Array] = None) -> Array:
    """y [N, M] = x [N, K] @ W^T, times the scale of each output row."""
    n = _shape2(x, "x", "matmul")[0]
    out = _empty(x, (n, w.rows), "float32") if out is None else out
    if isinstance(w, PreparedMatrix):
        _C.prepared_matmul(x, w._c, out)
    else:
        _C.matmul(x, w.data, w.cols, w.scales, out)
    return out


def matmul_t(g: Array, w: PackedTernary, out: Optional[Array] = None) -> Array:
    """dx [N, K] = (g [N, M] * scales) @ W: the input gradient of matmul."""
    n = _shape2(g, "g", "matmul_t")[0]
    out = _empty(g, (n, w.cols), "float32") if out is None else out
    if isinstance(w, PreparedMatrix):
        _C.prepared_matmul_t(g, w._c, out)
    else:
        _C.matmul_t(g, w.data, w.cols, w.scales, out)
    return out


def matmul_i8_acc(xq: Array, w: PackedTernary, out: Optional[Array] = None) -> Array:
    """The exact int32 products acc [N, M] = xq [N, K] (int8) @ W^T, without scales."""
    n = _shape2(xq, "xq", "matmul_i8_acc")[0]
    out = _empty(xq, (n, w.rows), "int32") if out is None else out
    if isinstance(w, PreparedMatrix):
        _C.prepared_matmul_i8_acc(xq, w._c, out)
    else:
        _C.matmul_i8_acc(xq, w.data, w.cols, out)
    return out


def matmul_i8(x: Array, w: PackedTernary, out: Optional[Array] = None) -> Array:
    """W1.58A8: quantize float32 x [N, K] to int8 per row, multiply exactly, rescale: y [N, M]."""
    n = _shape2(x, "x", "matmul_i8")[0]
    out = _empty(x, (n, w.rows), "float32") if out is None else out
    # one call: quantization and product (trix::matmul_a8)
    if isinstance(w, PreparedMatrix):
        _C.prepared_matmul_a8(x, w._c, out)
    else:
        _C.matmul_a8(x, w.data, w.cols, w.scales, out)
    return out


def tiled_ffn(x: Array, up: PackedTernary, down: PackedTernary, tiles: int, tile_idx: Array,
              gates: Optional[Array] = None, activation: str = "relu", out: Optional[Array] = None,
              hidden_pre: Optional[Array] = None) -> Array:
    """The tiled FFN: y[i] = sum_j gates[i, j] * down_t(act(up_t(x[i]))) with t = tile_idx[i, j].

    x: float32 [N, d]; up: packed [T*h, d] (tile t = rows t*h .. t*h+h-1); down: packed [T*d, h]
    (tile t = rows t*d .. t*d+d-1, i.e. W_down[:, t*h:(t+1)*h]); tile_idx: int32 [N, k] with -1 for an
    unused slot; gates: float32 [N, k] or None (all 1). hidden_pre, if given, float32 [N, k, h], receives
    the pre-activation hidden values. Returns y float32 [N, d].
    """
    n, d = _shape2(x, "x", "tiled_ffn")
    out = _empty(x, (n, d), "float32") if out is None else out
    _C.tiled_ffn(x, up.data, up.scales, down.data, down.scales, int(tiles), activation, tile_idx, gates, out,
                 hidden_pre)
    return out


def tile_signatures(up: PackedTernary, tiles: int) -> Array:
    """Signatures int8 [T, d]: sign of the sum of each tile's h up-projection rows (0 where the sum is 0)."""
    out = _empty(up.data, (int(tiles), up.cols), "int8")
    _C.tile_signatures(up.data, up.cols, int(tiles), out)
    return out


def route_scores(x: Array, sig: PackedTernary, out: Optional[Array] = None) -> Array:
    """scores [N, T] = x [N, d] @ sig^T for packed signatures [T, d] (their scales are ignored)."""
    n = _shape2(x, "x", "route_scores")[0]
    out = _empty(x, (n, sig.rows), "float32") if out is None else out
    _C.route_scores(x, sig.data, sig.cols, out)
    return out


def top_k(scores: Array, k: int = 1) -> Tuple[Array, Array]:
    """(idx int32 [N, k], val float32 [N, k]): best first; equal scores go to the lower tile index."""
    n = _shape2(scores, "scores", "top_k")[0]
    idx, val = _empty(scores, (n, int(k)), "int32"), _empty(scores, (n, int(k)), "float32")
    _C.top_k(scores, int(k), idx, val)
    return idx, val


def route(x: Array, sig: PackedTernary, k: int = 1) -> Tuple[Array, Array]:
    """Flat routing: the k best tiles of each row of x [N, d] by score x . sig, as (idx, val) [N, k]."""
    return top_k(route_scores(x, sig), k)


def save(path: str, p: PackedTernary) -> None:
    """Write p with the 64-byte header of docs/format.md, atomically (temporary file, then rename)."""
    _C.save_packed(str(path), p.data, p.cols, p.scales)


def load(path: str) -> PackedTernary:
    """Read a file written by save(); a bad, truncated or corrupt file raises trix.FormatError."""
    data, cols, scales = _C.load_packed(str(path))
    return PackedTernary._trusted(data, cols, scales)


def from_prototype(src: Array, cols: int, scales: Optional[Array] = None) -> PackedTernary:
    """Import the prototype's packed layout: uint8 [rows, ceil(cols/4)], codes 00=0, 01=+1, 10=-1."""
    rows = _shape2(src, "src", "from_prototype")[0]
    data = _empty(src, (rows, _C.packed_row_bytes(cols)), "uint8")
    _C.import_prototype(src, int(cols), data)
    return PackedTernary._trusted(data, int(cols), _empty(src, (0,), "float32") if scales is None else scales)


def to_prototype(p: PackedTernary) -> Array:
    """Export to the prototype's layout (scales are not part of it): uint8 [rows, ceil(cols/4)]."""
    out = _empty(p.data, (p.rows, (p.cols + 3) // 4), "uint8")
    _C.export_prototype(p.data, p.cols, out)
    return out
