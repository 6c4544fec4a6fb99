"""torch.autograd Functions whose forward and input gradient run in libtrix.

- `ternary_linear(x, w, cfg)`: y = x @ (gamma q)^T. On CPU float32: forward trix.matmul, input gradient
  trix.matmul_t (the transposed product of the same packed matrix), weight gradient by the STE in torch.
- `tiled_ffn(x, up, down, tiles, tile_idx, gates)`: y[i] = sum_j gate[i,j] down_t(act(up_t(x[i]))).
  On CPU float32: forward trix.tiled_ffn (rows grouped by tile, pre-activations kept for the backward),
  input gradient by per-tile trix.matmul_t on row slices of the same packed matrices, weight gradient
  by the STE in torch, one small matmul per routed tile. Tiles no input was routed to do no work and
  get an exactly zero gradient.

CUDA tensors (float32/bf16/fp16) go to the Triton kernels of trix.triton when triton is installed
(trix.triton.dispatch; TRIX_FORCE_TRITON=1 sends CPU tensors there too, under TRITON_INTERPRET=1).
Everywhere else (float64, CUDA without triton) the same functions run on torch ops (`*_reference`), which is also
what gradcheck verifies. Both paths compute the same function: equal up to float32 summation order.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from . import ops
from .quant import QuantConfig, ternary_codes, ternary_ste
from .triton import dispatch as triton_dispatch  # GPU path hook (issue 15): CUDA tensors -> Triton kernels

ACTIVATIONS = ("identity", "relu", "gelu", "silu")


def use_libtrix(*tensors: torch.Tensor) -> bool:
    """True when libtrix serves these tensors: all on CPU in float32."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def pack_weight(w: torch.Tensor, cfg: QuantConfig = QuantConfig(),
                codes: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> ops.PackedTernary:
    """Pack the ternary codes of latent w [M, K] (torch CPU) with the scale(s) of the same rule.
    codes: ternary_codes(w, cfg) if already computed."""
    q, s = ternary_codes(w.detach().float().cpu(), cfg) if codes is None else codes
    return ops.pack_int8(q.to(torch.int8).contiguous(), s.float().contiguous())


def activate(a: str, v: torch.Tensor) -> torch.Tensor:
    """act(v) as libtrix computes it (gelu: the exact erf form)."""
    if a == "relu":
        return F.relu(v)
    if a == "gelu":
        return F.gelu(v)
    if a == "silu":
        return F.silu(v)
    if a == "identity":
        return v
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {a!r}")


def activate_grad(a: str, v: torch.Tensor) -> torch.Tensor:
    """d act / dv at v."""
    if a == "relu":
        return (v > 0).to(v.dtype)
    if a == "gelu":
        return 0.5 * (1.0 + torch.erf(v * (1.0 / math.sqrt(2.0)))) + v * torch.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
    if a == "silu":
        s = torch.sigmoid(v)
        return s * (1.0 + v * (1.0 - s))
    if a == "identity":
        return torch.ones_like(v)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {a!r}")


# --------------------------------------------------------------------------------------------------
# Ternary linear


class _TernaryLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, packed: ops.PackedTernary) -> torch.Tensor:
        ctx.packed = packed
        ctx.save_for_backward(x)
        return ops.matmul(x.contiguous(), packed)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        g = g.contiguous()
        dx = ops.matmul_t(g, ctx.packed) if ctx.needs_input_grad[0] else None
        dw = g.t() @ x if ctx.needs_input_grad[1] else None  # STE: the gradient of the effective weight
        return dx, dw, None


def ternary_linear_reference(x: torch.Tensor, w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """x [N, K] @ ternary_ste(w [M, K])^T on torch ops (any dtype/device)."""
    return x @ ternary_ste(w, cfg).t()


def ternary_linear(x: torch.Tensor, w: torch.Tensor, cfg: QuantConfig = QuantConfig(),
                   packed: Optional[ops.PackedTernary] = None) -> torch.Tensor:
    """y [N, M] = x [N, K] @ (scale * q(w))^T; libtrix on CPU float32, torch otherwise.
    packed: the already packed codes of w under cfg (skips re-packing)."""
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"ternary_linear: arguments 'x' [N, K] and 'w' [M, K] must agree, got "
                         f"{list(x.shape)} and {list(w.shape)}")
    if triton_dispatch.applies(x, w):  # GPU path hook (issue 15)
        return triton_dispatch.ternary_linear(x, w, cfg)
    if not use_libtrix(x, w):
        return ternary_linear_reference(x, w, cfg)
    return _TernaryLinearFn.apply(x, w, packed if packed is not None else pack_weight(w, cfg))


# --------------------------------------------------------------------------------------------------
# Tiled FFN


def _check_ffn(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int, tile_idx: torch.Tensor,
               gates: Optional[torch.Tensor]) -> Tuple[int, int, int, int]:
    n, d = x.shape
    if up.dim() != 2 or up.shape[1] != d or up.shape[0] % tiles:
        raise ValueError(f"tiled_ffn: argument 'up' must be [tiles*h, d] = [{tiles}*h, {d}], got {list(up.shape)}")
    h = up.shape[0] // tiles
    if tuple(down.shape) != (tiles * d, h):
        raise ValueError(f"tiled_ffn: argument 'down' must be [tiles*d, h] = {[tiles * d, h]}, got {list(down.shape)}")
    if tile_idx.dim() != 2 or tile_idx.shape[0] != n:
        raise ValueError(f"tiled_ffn: argument 'tile_idx' must be [N, k] with N = {n}, got {list(tile_idx.shape)}")
    if gates is not None and tuple(gates.shape) != tuple(tile_idx.shape):
        raise ValueError(f"tiled_ffn: argument 'gates' must have the shape of tile_idx {list(tile_idx.shape)}, "
                         f"got {list(gates.shape)}")
    return n, d, h, tile_idx.shape[1]


def _group(tile_idx: torch.Tensor, tiles: int):
    """Slots (row * k + slot) sorted by tile, and per-tile counts (unused slots, -1, dropped)."""
    flat = tile_idx.reshape(-1).long()
    valid = torch.nonzero(flat >= 0).squeeze(1)
    order = valid[torch.argsort(flat[valid], stable=True)]
    counts = torch.bincount(flat[valid], minlength=tiles)
    return order, counts.tolist()


def tiled_ffn_reference(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int,
                        tile_idx: torch.Tensor, gates: Optional[torch.Tensor] = None, activation: str = "relu",
                        cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """The tiled FFN on torch ops, differentiable (STE on the weights). Shapes as `tiled_ffn`."""
    n, d, h, k = _check_ffn(x, up, down, tiles, tile_idx, gates)
    upq, downq = ternary_ste(up, cfg), ternary_ste(down, cfg)
    order, counts = _group(tile_idx, tiles)
    y = x.new_zeros(n, d)
    start = 0
    for t, c in enumerate(counts):
        if c == 0:
            continue
        slots = order[start:start + c]
        start += c
        rows = slots // k
        a = activate(activation, x[rows] @ upq[t * h:(t + 1) * h].t())
        z = a @ downq[t * d:(t + 1) * d].t()
        if gates is not None:
            z = z * gates.reshape(-1)[slots][:, None]
        y = y.index_add(0, rows, z)
    return y


class _TiledFFNFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, up, down, gates, tile_idx, pup, pdown, tiles, activation, h):
        n, d = x.shape
        k = tile_idx.shape[1]
        hidden_pre = torch.empty(n, k, h, dtype=torch.float32)
        idx32 = tile_idx.to(torch.int32).contiguous()
        g32 = None if gates is None else gates.detach().contiguous()
        y = ops.tiled_ffn(x.detach().contiguous(), pup, pdown, tiles, idx32, g32, activation, hidden_pre=hidden_pre)
        ctx.save_for_backward(x, hidden_pre, tile_idx, gates if gates is not None else torch.empty(0))
        ctx.meta = (pup, pdown, tiles, activation, h, gates is not None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, hidden_pre, tile_idx, gates = ctx.saved_tensors
        pup, pdown, tiles, activation, h, has_gates = ctx.meta
        n, d = x.shape
        k = tile_idx.shape[1]
        # Gather once in tile order: each tile's rows are then a contiguous slice [a, b).
        order, counts = _group(tile_idx, tiles)
        m = order.numel()
        rows = order // k
        gs = gy.contiguous().index_select(0, rows)
        pre = hidden_pre.reshape(n * k, h).index_select(0, order)
        bounds, a0 = [], 0
        for c in counts:
            bounds.append((a0, a0 + c))
            a0 += c
        # Row slices of the packed matrices are tile t's own packed [d, h] and [h, d] matrices.
        down_t = [ops.PackedTernary(pdown.data[t * d:(t + 1) * d], pdown.cols, pdown.scales) for t in range(tiles)]
        up_t = [ops.PackedTernary(pup.data[t * h:(t + 1) * h], pup.cols, pup.scales) for t in range(tiles)]
        dh = torch.empty(m, h)
        for t, (a, b) in enumerate(bounds):
            if b > a:  # an unrouted tile does no work and keeps an exactly zero gradient
                ops.matmul_t(gs[a:b], down_t[t], out=dh[a:b])
        act = activate(activation, pre)
        dgate = None
        if has_gates:
            gv = gates.reshape(-1).index_select(0, order)[:, None]
            dgate = torch.zeros(n * k, dtype=x.dtype)
            dgate[order] = (dh * act).sum(1)
            dh = dh * gv
            gs = gs * gv
        dpre = (dh * activate_grad(activation, pre)).contiguous()
        dx = dup = ddown = None
        if ctx.needs_input_grad[0]:
            dxs = torch.empty(m, d)
            for t, (a, b) in enumerate(bounds):
                if b > a:
                    ops.matmul_t(dpre[a:b], up_t[t], out=dxs[a:b])
            dslot = torch.zeros(n * k, d, dtype=x.dtype)
            dslot[order] = dxs
            dx = dslot.view(n, k, d).sum(1) if k > 1 else dslot
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            xs = x.index_select(0, rows)
            dup = torch.zeros(tiles * h, d, dtype=x.dtype)
            ddown = torch.zeros(tiles * d, h, dtype=x.dtype)
            for t, (a, b) in enumerate(bounds):
                if b > a:  # STE: gradients of the effective weights of tile t
                    torch.mm(dpre[a:b].t(), xs[a:b], out=dup[t * h:(t + 1) * h])
                    torch.mm(gs[a:b].t(), act[a:b], out=ddown[t * d:(t + 1) * d])
        dg = dgate.reshape(n, k) if has_gates and ctx.needs_input_grad[3] else None
        return dx, dup, ddown, dg, None, None, None, None, None, None


def tiled_ffn(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int, tile_idx: torch.Tensor,
              gates: Optional[torch.Tensor] = None, activation: str = "relu", cfg: QuantConfig = QuantConfig(),
              packed: Optional[Tuple[ops.PackedTernary, ops.PackedTernary]] = None) -> torch.Tensor:
    """The tiled FFN with STE weights. x [N, d]; up [T*h, d]; down [T*d, h] (tile t = rows t*d..t*d+d-1,
    libtrix's layout); tile_idx [N, k] (int, -1 = unused slot); gates [N, k] or None (all 1).
    Returns y [N, d]. packed: (up, down) already packed under cfg (skips re-packing)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"tiled_ffn: argument 'activation' must be one of {ACTIVATIONS}, got {activation!r}")
    n, d, h, k = _check_ffn(x, up, down, tiles, tile_idx, gates)
    if cfg.per_row:
        raise ValueError("tiled_ffn: argument 'cfg' must have per_row=False (one scale per projection)")
    if triton_dispatch.applies(x, up, down, gates):  # GPU path hook (issue 15)
        return triton_dispatch.tiled_ffn(x, up, down, tiles, tile_idx, gates, activation, cfg)
    if not use_libtrix(x, up, down) or (gates is not None and not use_libtrix(gates)):
        return tiled_ffn_reference(x, up, down, tiles, tile_idx, gates, activation, cfg)
    pup, pdown = packed if packed is not None else (pack_weight(up, cfg), pack_weight(down, cfg))
    return _TiledFFNFn.apply(x, up, down, gates, tile_idx, pup, pdown, tiles, activation, h)
