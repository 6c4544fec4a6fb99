"""autograd Functions on the Triton kernels: the ternary linear layer and the tiled FFN.

The same functions as trix.autograd's (ternary weights by trix.quant, straight-through weight
gradients), computed with the weights packed at 2 bits on the device:

- `ternary_linear(x, w, cfg)`: forward packed_nt, input gradient packed_nn (the transposed product of
  the same packed bytes), weight gradient g^T x (STE) by torch.
- `tiled_ffn(x, up, down, tiles, tile_idx, gates, activation, cfg)`: slots (row, j) are sorted by
  tile once; a block schedule built on the device (no host synchronisation) lets each of the five
  products run as one grouped launch over all tiles: forward up and down, backward hidden gradient
  (with the activation derivative and the gate gradient in its epilogue), input gradient, and the two
  STE weight gradients (one grouped launch each). Unused slots (-1; also tile ids outside
  [0, tiles)) are dropped; a tile no slot went to does no work and gets an exactly zero gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import triton

from ..quant import QuantConfig
from . import kernels as K
from . import ops


class _TernaryLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, cfg):
        p = ops.pack(w, cfg)
        ctx.packed, ctx.w_dtype = p, w.dtype
        ctx.save_for_backward(x)
        return ops.matmul(x, p)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        dx = ops.matmul_t(g.contiguous(), ctx.packed) if ctx.needs_input_grad[0] else None
        dw = (g.t() @ x).to(ctx.w_dtype) if ctx.needs_input_grad[1] else None  # STE
        return dx, dw, None


def ternary_linear(x: torch.Tensor, w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """y [N, M] = x [N, K] @ (scale * q(w [M, K]))^T in x's dtype, with the STE weight gradient."""
    return _TernaryLinear.apply(x, w, cfg)


@dataclass
class Schedule:
    """Slots sorted by tile and the row blocks of the grouped launches (all int32 on the device).

    order:   [N*k] slot index (row * k + j) of each sorted position; unused slots last;
    src:     [N*k] input row of each sorted position (order // k);
    offsets: [T+1] sorted positions of tile t are offsets[t] .. offsets[t+1] - 1;
    blk_tile, blk_start, blk_end: [B] row block b covers sorted positions blk_start[b] .. blk_end[b]-1
             of tile blk_tile[b]; -1 marks the spare blocks of the upper bound B = cdiv(N*k, R) + T.
    """

    order: torch.Tensor
    src: torch.Tensor
    offsets: torch.Tensor
    blk_tile: torch.Tensor
    blk_start: torch.Tensor
    blk_end: torch.Tensor
    block_rows: int

    @property
    def blocks(self) -> int:
        return int(self.blk_tile.shape[0])


def build_schedule(tile_idx: torch.Tensor, tiles: int, block_rows: int) -> Schedule:
    """Sort the slots of tile_idx [N, k] by tile (stably: in slot order within a tile) and cut each
    tile's run into blocks of block_rows, with torch ops on tile_idx's device."""
    n, k = tile_idx.shape
    dev = tile_idx.device
    flat = tile_idx.reshape(-1).long()
    key = torch.where((flat >= 0) & (flat < tiles), flat, torch.full_like(flat, tiles))
    order = torch.argsort(key, stable=True)
    # scatter_add, not bincount: bincount on CUDA reads the maximum back to the host to size its output
    counts = torch.zeros(tiles + 1, dtype=torch.long, device=dev).scatter_add_(0, key, torch.ones_like(key))[:tiles]
    offsets = torch.zeros(tiles + 1, dtype=torch.long, device=dev)
    offsets[1:] = torch.cumsum(counts, 0)
    nblk = (counts + block_rows - 1) // block_rows
    cum = torch.cumsum(nblk, 0)
    b = torch.arange(triton.cdiv(n * k, block_rows) + tiles, device=dev)
    t = torch.searchsorted(cum, b, right=True)  # the tile whose blocks hold b; tiles past the last one
    tc = t.clamp(max=tiles - 1)
    start = offsets[tc] + (b - (cum[tc] - nblk[tc])) * block_rows
    end = offsets[tc] + counts[tc]
    i32 = torch.int32
    return Schedule(order.to(i32), (order // k).to(i32), offsets.to(i32),
                    torch.where(t < tiles, tc, torch.full_like(tc, -1)).to(i32), start.to(i32), end.to(i32),
                    block_rows)


def _launch_nt(a, a_rows, w: ops.PackedTernary, out, out_rows, row_scale, sch: Schedule, m, kdim, tile_rows,
               act, cdt, prec):
    d = ops._dummy(a.device)
    K.packed_nt_kernel[(sch.blocks, triton.cdiv(m, ops.blocks().weight_rows))](
        a, a.stride(0), d if a_rows is None else a_rows, w.data, w.data.shape[1], w.scales, out, out.stride(0),
        d if out_rows is None else out_rows, d if row_scale is None else row_scale,
        sch.blk_tile, sch.blk_start, sch.blk_end, 0, m, kdim, tile_rows,
        GROUPED=True, GATHER_A=a_rows is not None, SCATTER_OUT=out_rows is not None,
        ROW_SCALE=row_scale is not None, N_SCALES=1, ACT_A=act, CDT=cdt, PREC=prec,
        BLOCK_R=sch.block_rows, BLOCK_M=ops.blocks().weight_rows)


def _launch_nn(a, a_rows, w: ops.PackedTernary, out, out_rows, sch: Schedule, m, cols, tile_rows, cdt, prec,
               pre=None, gate=None, dgate=None, act=0):
    d = ops._dummy(a.device)
    groups = 4 * triton.cdiv(cols, K.BLOCK_WEIGHTS)
    K.packed_nn_kernel[(sch.blocks, groups)](
        a, a.stride(0), d if a_rows is None else a_rows, w.data, w.data.shape[1], w.scales, out, out.stride(0),
        d if out_rows is None else out_rows, d if pre is None else pre, d if gate is None else gate,
        d if dgate is None else dgate, groups, sch.blk_tile, sch.blk_start, sch.blk_end, 0, m, cols, tile_rows,
        GROUPED=True, GATHER_A=a_rows is not None, SCATTER_OUT=out_rows is not None, N_SCALES=1,
        FFN_BWD=pre is not None, HAS_GATE=gate is not None, ACT=act, CDT=cdt, PREC=prec,
        BLOCK_R=sch.block_rows, BLOCK_M=ops.blocks().weight_rows)


def _launch_wgrad(a, a_rows, a_scale, b, b_rows, sch: Schedule, tiles, p, q, out, act, cdt, prec):
    d = ops._dummy(a.device)
    bw = ops.blocks().wgrad
    K.grouped_wgrad_kernel[(tiles * triton.cdiv(p, bw), triton.cdiv(q, bw))](
        a, a.stride(0), d if a_rows is None else a_rows, d if a_scale is None else a_scale, b, b.stride(0),
        d if b_rows is None else b_rows, sch.offsets, out, p, q, GATHER_A=a_rows is not None,
        SCALE_A=a_scale is not None, GATHER_B=b_rows is not None, ACT_B=act, CDT=cdt, PREC=prec,
        BLOCK_R=sch.block_rows, BLOCK_P=bw, BLOCK_Q=bw)


class _TiledFFN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, up, down, gates, tile_idx, tiles, activation, cfg):
        n, d = x.shape
        h, k = up.shape[0] // tiles, tile_idx.shape[1]
        cdt, prec, act = ops.compute_dtype(x), ops.dot_precision(x.dtype), K.ACT_IDS[activation]
        x = x.contiguous()
        pup, pdown = ops.pack(up, cfg), ops.pack(down, cfg)
        sch = build_schedule(tile_idx, tiles, ops.rows_per_program(n * k))
        gs = None if gates is None else gates.reshape(-1)[sch.order.long()].float().contiguous()
        pre = torch.zeros(n * k, h, dtype=torch.float32, device=x.device)  # sorted order, kept for backward
        zslot = torch.zeros(n * k, d, dtype=torch.float32, device=x.device)  # slot order
        if n * k and h and d:
            _launch_nt(x, sch.src, pup, pre, None, None, sch, h, d, h, 0, cdt, prec)
            _launch_nt(pre, None, pdown, zslot, sch.order, gs, sch, d, h, d, act, cdt, prec)
        ctx.save_for_backward(x, pre, gs if gs is not None else torch.empty(0, device=x.device))
        ctx.meta = (pup, pdown, sch, tiles, act, k, gates is not None, up.dtype, down.dtype,
                    None if gates is None else gates.dtype)
        return zslot.view(n, k, d).sum(1).to(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        x, pre, gs = ctx.saved_tensors
        pup, pdown, sch, tiles, act, k, has_gates, up_dt, down_dt, gate_dt = ctx.meta
        gs = gs if has_gates else None
        n, d = x.shape
        h = pre.shape[1]
        cdt, prec = ops.compute_dtype(x), ops.dot_precision(x.dtype)
        gy = gy.to(x.dtype).contiguous()
        groups = 4 * triton.cdiv(h, K.BLOCK_WEIGHTS)
        dpre = torch.zeros(n * k, h, dtype=torch.float32, device=x.device)
        dgate_part = torch.zeros(n * k, groups, dtype=torch.float32, device=x.device) if has_gates else None
        busy = n * k and h and d
        if busy:  # dL/dpre and the gate's partial gradients, one launch
            _launch_nn(gy, sch.src, pdown, dpre, None, sch, d, h, d, cdt, prec, pre=pre, gate=gs,
                       dgate=dgate_part, act=act)
        dx = dup = ddown = dg = None
        if ctx.needs_input_grad[0]:
            dxslot = torch.zeros(n * k, d, dtype=torch.float32, device=x.device)
            if busy:
                _launch_nn(dpre, None, pup, dxslot, sch.order, sch, h, d, h, cdt, prec)
            dx = dxslot.view(n, k, d).sum(1).to(x.dtype)
        if ctx.needs_input_grad[1]:  # STE: dL/d(effective up of tile t) = dpre_t^T x_t
            dup = torch.zeros(tiles * h, d, dtype=torch.float32, device=x.device)
            if busy:
                _launch_wgrad(dpre, None, None, x, sch.src, sch, tiles, h, d, dup, 0, cdt, prec)
            dup = dup.to(up_dt)
        if ctx.needs_input_grad[2]:  # STE: dL/d(effective down of tile t) = (gate gy)_t^T act(pre_t)
            ddown = torch.zeros(tiles * d, h, dtype=torch.float32, device=x.device)
            if busy:
                _launch_wgrad(gy, sch.src, gs, pre, None, sch, tiles, d, h, ddown, act, cdt, prec)
            ddown = ddown.to(down_dt)
        if has_gates and ctx.needs_input_grad[3]:
            dg = torch.zeros(n * k, dtype=torch.float32, device=x.device)
            dg[sch.order.long()] = dgate_part.sum(1)
            dg = dg.view(n, k).to(gate_dt)
        return dx, dup, ddown, dg, None, None, None, None


def tiled_ffn(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int, tile_idx: torch.Tensor,
              gates: Optional[torch.Tensor] = None, activation: str = "relu",
              cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """The tiled FFN with STE weights, shapes as trix.autograd.tiled_ffn: x [N, d]; up [T*h, d];
    down [T*d, h]; tile_idx [N, k] (-1 = unused slot); gates [N, k] or None. Returns y [N, d] in x's
    dtype. Arguments are checked by the caller (trix.autograd.tiled_ffn)."""
    if activation not in K.ACT_IDS:
        raise ValueError(f"trix.triton.tiled_ffn: argument 'activation' must be one of {tuple(K.ACT_IDS)}, "
                         f"got {activation!r}")
    return _TiledFFN.apply(x, up, down, gates, tile_idx, tiles, activation, cfg)
