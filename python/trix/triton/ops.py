"""Launchers of the Triton kernels: the packed ternary product, packing, signatures and routing.

Tensors are torch tensors on one device: CUDA, or CPU under Triton's interpreter (TRITON_INTERPRET=1,
set before the first import of this module). A packed matrix is a `trix.ops.PackedTernary` whose data
and scales are torch tensors on that device: the public format's bytes (docs/format.md), unchanged.
Activations: float32, bfloat16 or float16; products accumulate in float32 and come back in the
activations' dtype. Nothing here synchronises with the host.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ..ops import PackedTernary
from ..quant import QuantConfig, ternary_codes
from . import kernels as K

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_TL = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}



@dataclass(frozen=True)
class Blocks:
    """Program tile sizes. rows: activation rows per program (tl.dot needs >= 16); small_rows: the same
    when there are at most that many rows (a batch-1 GEMV pads to 16); weight_rows: weight rows (or
    reduction rows of a transposed product) per program; gemv_weight_rows: weight rows per program
    for small batches (more programs to spread the weight bytes over); wgrad: weight-gradient tile side."""

    rows: int
    small_rows: int
    weight_rows: int
    gemv_weight_rows: int
    wgrad: int


# Not tuned on a GPU yet (none was available when they were written): tools/gpu_bench.py measures them.
GPU_BLOCKS = Blocks(rows=64, small_rows=16, weight_rows=64, gemv_weight_rows=32, wgrad=64)
# The interpreter pays per operation, not per element: fewer, larger programs, the same code and masks.
INTERPRETER_BLOCKS = Blocks(rows=32, small_rows=16, weight_rows=128, gemv_weight_rows=64, wgrad=64)


def row_bytes(cols: int) -> int:
    """Bytes per packed row: ceil(cols / 128) * 32."""
    return triton.cdiv(cols, K.BLOCK_WEIGHTS) * K.BLOCK_BYTES


def interpreting() -> bool:
    """True when the kernels run under Triton's interpreter (TRITON_INTERPRET=1 at import)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(K.pack_kernel, InterpretedFunction)


def compute_dtype(x: torch.Tensor) -> tl.dtype:
    """The dtype of tl.dot's operands for activations x (products accumulate in float32).
    Triton 3.7's interpreter multiplies bfloat16 operands as their raw 16-bit patterns, so there
    bfloat16 operands are widened to float32 first: exact, as the products of bfloat16 values by
    -1/0/+1 are, and the accumulation is float32 either way."""
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"trix.triton: activations must be float32, bfloat16 or float16, got {x.dtype}")
    if x.dtype == torch.bfloat16 and interpreting():
        return tl.float32
    return _TL[x.dtype]


def dot_precision(dtype: torch.dtype) -> Optional[str]:
    """tl.dot's input_precision: for float32 activations full precision ("ieee") unless torch allows
    TF32 for matmuls (as it does cuBLAS); None (Triton's default) for bfloat16/float16 operands."""
    if dtype != torch.float32:
        return None
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


def blocks() -> Blocks:
    return INTERPRETER_BLOCKS if interpreting() else GPU_BLOCKS


def rows_per_program(n: int) -> int:
    b = blocks()
    return b.small_rows if n <= b.small_rows else b.rows


def n_scales_mode(p: PackedTernary) -> int:
    """0: no scales (all 1); 1: one scale; 2: one per row (the kernels' N_SCALES)."""
    n = int(p.scales.shape[0])
    if n not in (0, 1, p.rows):
        raise ValueError(f"trix.triton: packed scales must number 0, 1 or rows = {p.rows}, got {n}")
    return min(n, 1) if n <= 1 else 2


def _check_2d(a: torch.Tensor, name: str, func: str) -> None:
    if a.dim() != 2:
        raise ValueError(f"{func}: argument '{name}' must be 2-D, got shape {list(a.shape)}")


def _check_same_device(func: str, **tensors: torch.Tensor) -> None:
    devs = {k: v.device for k, v in tensors.items()}
    if len(set(devs.values())) != 1:
        raise ValueError(f"{func}: all arguments must be on one device, got {devs}")


def _dummy(device) -> torch.Tensor:
    """A pointer argument a kernel never reads (its flag is off)."""
    return torch.empty(1, dtype=torch.int32, device=device)


# ------------------------------------------------------------------------------------------------ packing

def pack_codes(q: torch.Tensor, scales: Optional[torch.Tensor] = None) -> PackedTernary:
    """Pack ternary values q [M, K] (-1, 0, 1; any numeric dtype) into the public format on q's device.
    scales: float32 [1] or [M]; None means none (all scales 1). Byte-identical to trix.pack_int8."""
    _check_2d(q, "q", "trix.triton.pack_codes")
    m, k = q.shape
    q = q.contiguous()
    rb = row_bytes(k)
    data = torch.empty(m, rb, dtype=torch.uint8, device=q.device)
    if m and k:
        br = 32
        K.pack_kernel[(triton.cdiv(m, br), rb // K.BLOCK_BYTES)](q, q.stride(0), data, rb, k, BLOCK_ROWS=br, ROWS=m)
    elif m:
        data.fill_(0x55)
    sc = torch.empty(0, dtype=torch.float32, device=q.device) if scales is None else scales.float().reshape(-1)
    return PackedTernary(data, int(k), sc.contiguous())


def pack(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> PackedTernary:
    """Quantize latent weights w [M, K] by trix.quant's rule (the CPU path's, bit for bit) and pack them
    on w's device."""
    q, s = ternary_codes(w.detach(), cfg)
    return pack_codes(q, s.float())


def to_device(p: PackedTernary, device) -> PackedTernary:
    """The same packed bytes and scales as torch tensors on `device` (e.g. a file loaded by trix.load)."""
    return PackedTernary(torch.as_tensor(p.data).to(device).contiguous(), int(p.cols),
                         torch.as_tensor(p.scales).float().to(device).contiguous())


def _check_packed(p: PackedTernary, func: str, device) -> None:
    if not isinstance(p.data, torch.Tensor) or p.data.dtype != torch.uint8 or p.data.dim() != 2:
        raise TypeError(f"{func}: packed data must be a uint8 torch tensor [rows, row_bytes], got {type(p.data)}")
    if p.data.shape[1] != row_bytes(p.cols):
        raise ValueError(f"{func}: packed data must have {row_bytes(p.cols)} bytes per row for {p.cols} columns, "
                         f"got {p.data.shape[1]}")
    if p.data.device != device or p.scales.device != device:
        raise ValueError(f"{func}: packed weights must be on {device}, got {p.data.device}")
    if not p.data.is_contiguous():
        raise ValueError(f"{func}: packed data must be contiguous")


# ------------------------------------------------------------------------------------------------ products

def _product_operands(a: torch.Tensor, name: str, w: PackedTernary, func: str, a_cols: int, out_cols: int):
    """Checked operands of a packed product: (a contiguous, an empty output [N, out_cols] in a's dtype,
    the dot dtype)."""
    _check_2d(a, name, func)
    _check_packed(w, func, a.device)
    if a.shape[1] != a_cols:
        raise ValueError(f"{func}: argument '{name}' must have {a_cols} columns, got {list(a.shape)}")
    cdt = compute_dtype(a)
    return a.contiguous(), torch.empty(a.shape[0], out_cols, dtype=a.dtype, device=a.device), cdt


def matmul(x: torch.Tensor, w: PackedTernary, scaled: bool = True) -> torch.Tensor:
    """y [N, M] = x [N, K] @ W^T times the scale(s) of W (scaled=False: the scales are ignored).
    y has x's dtype."""
    x, y, cdt = _product_operands(x, "x", w, "trix.triton.matmul", w.cols, w.rows)
    n, m = x.shape[0], w.rows
    if n == 0 or m == 0:
        return y
    if w.cols == 0:
        return y.zero_()
    ns = n_scales_mode(w) if scaled else 0
    br = rows_per_program(n)
    bm = blocks().gemv_weight_rows if n <= blocks().small_rows else blocks().weight_rows
    d = _dummy(x.device)
    K.packed_nt_kernel[(triton.cdiv(n, br), triton.cdiv(m, bm))](
        x, x.stride(0), d, w.data, w.data.shape[1], w.scales if ns else d, y, y.stride(0), d, d, d, d, d,
        n, m, w.cols, 0, GROUPED=False, GATHER_A=False, SCATTER_OUT=False, ROW_SCALE=False, N_SCALES=ns, ACT_A=0,
        CDT=cdt, PREC=dot_precision(x.dtype), BLOCK_R=br, BLOCK_M=bm)
    return y


def matmul_t(g: torch.Tensor, w: PackedTernary) -> torch.Tensor:
    """dx [N, K] = (g [N, M] * scales) @ W: the input gradient of matmul, in g's dtype."""
    g, dx, cdt = _product_operands(g, "g", w, "trix.triton.matmul_t", w.rows, w.cols)
    n = g.shape[0]
    if n == 0 or w.cols == 0:
        return dx
    if w.rows == 0:
        return dx.zero_()
    ns = n_scales_mode(w)
    br = rows_per_program(n)
    d = _dummy(g.device)
    K.packed_nn_kernel[(triton.cdiv(n, br), triton.cdiv(w.cols, 32))](
        g, g.stride(0), d, w.data, w.data.shape[1], w.scales if ns else d, dx, dx.stride(0), d, d, d, d, 0,
        d, d, d, n, w.rows, w.cols, 0, GROUPED=False, GATHER_A=False, SCATTER_OUT=False, N_SCALES=ns,
        FFN_BWD=False, HAS_GATE=False, ACT=0, CDT=cdt, PREC=dot_precision(g.dtype), BLOCK_R=br,
        BLOCK_M=blocks().weight_rows)
    return dx


# ------------------------------------------------------------------------------------------------ routing

def tile_signatures(up: PackedTernary, tiles: int) -> torch.Tensor:
    """Signatures int8 [T, d] read from the packed up projection [T*h, d]: the sign of the sum of each
    tile's h rows (0 where the sum is 0), as trix.tile_signatures."""
    func = "trix.triton.tile_signatures"
    _check_packed(up, func, up.data.device)
    if tiles < 1 or up.rows % tiles:
        raise ValueError(f"{func}: argument 'tiles' must divide the {up.rows} rows, got {tiles}")
    h, dcols = up.rows // tiles, up.cols
    out = torch.empty(tiles, dcols, dtype=torch.int8, device=up.data.device)
    if dcols == 0:
        return out
    K.signatures_kernel[(tiles, up.data.shape[1] // K.BLOCK_BYTES)](up.data, up.data.shape[1], out, h, dcols,
                                                                     BLOCK_H=32)
    return out


def route_scores(x: torch.Tensor, sig: PackedTernary) -> torch.Tensor:
    """scores float32 [N, T] = x [N, d] @ sig^T for packed signatures [T, d] (their scales are ignored)."""
    return matmul(x, sig, scaled=False).float()


MAX_TOP_K_TILES = 4096  # one row of scores per program


def top_k(scores: torch.Tensor, k: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """(idx int32 [N, k], val float32 [N, k]) of scores [N, T]: best first, NaN last, equal scores to the
    lower tile index (trix.top_k's rule)."""
    func = "trix.triton.top_k"
    _check_2d(scores, "scores", func)
    n, t = scores.shape
    if t < 1 or t > MAX_TOP_K_TILES:
        raise ValueError(f"{func}: argument 'scores' must have 1 .. {MAX_TOP_K_TILES} columns, got {t}")
    if not 1 <= k <= t:
        raise ValueError(f"{func}: argument 'k' must be in [1, {t}], got {k}")
    s = scores.float().contiguous()
    idx = torch.empty(n, k, dtype=torch.int32, device=s.device)
    val = torch.empty(n, k, dtype=torch.float32, device=s.device)
    if n:
        bt = triton.next_power_of_2(t)
        bn = max(1, min(64, 4096 // bt))
        K.top_k_kernel[(triton.cdiv(n, bn),)](s, idx, val, n, t, K_SEL=int(k), BLOCK_N=bn, BLOCK_T=bt)
    return idx, val


def route(x: torch.Tensor, sig: PackedTernary, k: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat routing: the k best tiles of each row of x [N, d] by score x . sig, as (idx, val) [N, k]."""
    return top_k(route_scores(x, sig), k)
