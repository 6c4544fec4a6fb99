"""Differentiable ternary layers: the autograd wiring over the torch custom ops of trix._torch_ops.

- `ternary_linear(x, w, cfg)`: y = x @ (gamma q)^T, one op forward (torch.ops.trix.ternary_linear) and
  one op backward (input gradient and the STE weight gradient together, in libtrix on CPU float32).
- `tiled_ffn(x, up, down, tiles, tile_idx, gates)`: y[i] = sum_j gate[i,j] down_t(act(up_t(x[i]))),
  one libtrix call forward (tokens grouped by tile once, pre-activations kept) and one backward
  (input, gate and both STE weight gradients; tiles nothing was routed to do no work and get an
  exactly zero gradient).

The ternary codes come from libtrix's quantizer (torch.ops.trix.ternary_codes), computed once per
weight per step and cached while the weight is unchanged (`cached_codes`). bfloat16 activations are
computed in float32 and returned in bfloat16. On devices libtrix does not serve the same ops run
their registered device implementation or the torch fallback (`trix._torch_ops._pick`); CUDA
tensors go to the Triton kernels of trix.triton first when triton is installed (trix.triton.dispatch).

`*_reference` are the same functions written on torch autograd through `ternary_ste`: the
independent reference the tests compare with.
"""
from __future__ import annotations

import weakref
from typing import Dict, Optional, Tuple

import torch

from . import _torch_ops  # noqa: F401  (registers torch.ops.trix)
from . import ops
from ._torch_ops import ACTIVATIONS, activate, activate_grad  # noqa: F401  (re-exported)
from .quant import QuantConfig, ternary_codes, ternary_ste
from .triton import dispatch as triton_dispatch  # GPU path hook (issue 15): CUDA tensors -> Triton kernels

Codes = Tuple[torch.Tensor, torch.Tensor]  # (q int8 [M, K], scale [1] or [M])


def use_libtrix(*tensors: torch.Tensor) -> bool:
    """True when libtrix serves these tensors: all on CPU in float32."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def pack_weight(w: torch.Tensor, cfg: QuantConfig = QuantConfig(),
                codes: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> ops.PackedTernary:
    """Pack the ternary codes of latent w [M, K] (torch CPU) with the scale(s) of the same rule.
    codes: ternary_codes(w, cfg) or weight_codes(w, cfg) if already computed."""
    q, s = ternary_codes(w.detach().float().cpu(), cfg) if codes is None else codes
    return ops.pack_int8(q.to(torch.int8).contiguous(), s.float().contiguous())


# --------------------------------------------------------------------------------------------------
# Quantized weights, cached while the latent weight is unchanged

# (id(weight), kind) -> (weakref to it, (version, data_ptr, cfg, kind), value). A tensor's _version counts its in-place
# changes (optimizer steps, load_state_dict's copy_, any `with torch.no_grad(): w.add_(...)`); assigning a
# new tensor is a new entry; `w.data = ...` changes data_ptr. An entry goes when its weight does.
# (Keyed by id: a WeakKeyDictionary would compare tensors with ==, which is elementwise.)
_CODES_CACHE: Dict[int, tuple] = {}


def _cached(w: torch.Tensor, cfg: QuantConfig, what: str, make):
    key = (w._version, w.data_ptr(), cfg, what)
    wid = (id(w), what)
    hit = _CODES_CACHE.get(wid)
    if hit is not None and hit[0]() is w and hit[1] == key:
        return hit[2]
    value = make()
    _CODES_CACHE[wid] = (weakref.ref(w, lambda _r, wid=wid: _CODES_CACHE.pop(wid, None)), key, value)
    return value


def weight_codes(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> Codes:
    """(q int8 [M, K], scale [1] or [M], float32 on CPU) of latent w: libtrix's quantizer, computed
    once while w is unchanged (not cached inside torch.compile, which traces the op itself)."""
    def make():
        return torch.ops.trix.ternary_codes(w.detach(), cfg.rule, float(cfg.threshold), bool(cfg.per_row))
    return make() if torch.compiler.is_compiling() else _cached(w, cfg, "codes", make)


def weight_signatures(w: torch.Tensor, tiles: int, cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """Tile signatures [T, d] (w's dtype, values in {-1, 0, 1}) of an up weight w [T*h, d]: libtrix's
    tile_signatures on the cached codes, computed once while w is unchanged."""
    def make():
        return torch.ops.trix.tile_signatures(weight_codes(w, cfg)[0], tiles).to(w.dtype)
    return make() if torch.compiler.is_compiling() else _cached(w, cfg, f"signatures/{tiles}", make)


def weight_packed(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> ops.PackedTernary:
    """pack_weight(w, cfg) from the cached codes, itself cached while w is unchanged: what an
    unpacked model in eval mode runs on (the same bits as after pack())."""
    return _cached(w, cfg, "packed", lambda: pack_weight(w, cfg, weight_codes(w, cfg)))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """bfloat16 / float16 activations run in float32 (libtrix's kernels, and the fallback's accuracy)."""
    return torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype


# --------------------------------------------------------------------------------------------------
# Eager inference path: forward on the packed inference kernels (the bits pack() gives), backward
# by the same training ops (a gradient through an eval-mode module still works).


class _PackedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, q, s, packed):
        ctx.save_for_backward(x, q, s)
        return ops.matmul(x.detach().contiguous(), packed)

    @staticmethod
    def backward(ctx, gy):
        x, q, s = ctx.saved_tensors
        nx, nw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dw = torch.ops.trix.ternary_linear_backward(gy.contiguous(), x, q, s, nx, nw)
        return (dx if nx else None), (dw if nw else None), None, None, None


class _PackedTiledFFN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, up, down, gates, idx32, packed, codes, tiles, activation):
        x = x.detach().contiguous()
        g = None if gates is None else gates.detach().contiguous()
        need_grad = any(ctx.needs_input_grad[:4])
        pre = torch.empty(x.shape[0], idx32.shape[1], up.shape[0] // tiles) if need_grad else None
        y = ops.tiled_ffn(x, packed[0], packed[1], tiles, idx32, g, activation, hidden_pre=pre)
        if need_grad:
            ctx.save_for_backward(x, idx32, gates, pre, *codes)
            ctx.meta = (tiles, activation)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, idx32, gates, pre, upq, ups, downq, downs = ctx.saved_tensors
        tiles, activation = ctx.meta
        nx, nu, nd, ng = ctx.needs_input_grad[:4]
        dx, dup, ddown, dg = torch.ops.trix.tiled_ffn_backward(
            gy.contiguous(), x, upq, ups, downq, downs, idx32, gates, pre, tiles, activation, nx, nu or nd,
            ng and gates is not None)
        return ((dx if nx else None), (dup if nu else None), (ddown if nd else None),
                (dg if ng and gates is not None else None), None, None, None, None, None)


# --------------------------------------------------------------------------------------------------
# Ternary linear


def ternary_linear_reference(x: torch.Tensor, w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """x [N, K] @ ternary_ste(w [M, K])^T on torch ops (any dtype/device)."""
    return x @ ternary_ste(w, cfg).t()


def ternary_linear(x: torch.Tensor, w: torch.Tensor, cfg: QuantConfig = QuantConfig(),
                   packed: Optional[ops.PackedTernary] = None, codes: Optional[Codes] = None) -> torch.Tensor:
    """y [N, M] = x [N, K] @ (scale * q(w))^T, differentiable in x and w (STE).
    packed: the packed codes of w: the forward then runs the inference kernels (eager eval mode);
    codes: weight_codes(w, cfg) if already computed."""
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"ternary_linear: arguments 'x' [N, K] and 'w' [M, K] must agree, got "
                         f"{list(x.shape)} and {list(w.shape)}")
    if triton_dispatch.applies(x, w):  # GPU path hook (issue 15)
        return triton_dispatch.ternary_linear(x, w, cfg)
    dt = _compute_dtype(x)
    q, s = codes if codes is not None else weight_codes(w, cfg)
    if packed is not None and use_libtrix(x) and not torch.compiler.is_compiling():
        return _PackedLinear.apply(x, w, q, s, packed)
    y = torch.ops.trix.ternary_linear(x.to(dt), w, q, s)
    return y.to(x.dtype)


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


def tiled_ffn_reference(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int,
                        tile_idx: torch.Tensor, gates: Optional[torch.Tensor] = None, activation: str = "relu",
                        cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """The tiled FFN on torch autograd (STE on the weights), one row slot at a time. Shapes as `tiled_ffn`."""
    n, d, h, k = _check_ffn(x, up, down, tiles, tile_idx, gates)
    upq, downq = ternary_ste(up, cfg), ternary_ste(down, cfg)
    y = x.new_zeros(n, d)
    for j in range(k):
        col = tile_idx[:, j].long()
        for t in range(tiles):
            rows = torch.nonzero(col == t).squeeze(1)
            if rows.numel() == 0:
                continue
            z = activate(activation, x[rows] @ upq[t * h:(t + 1) * h].t()) @ downq[t * d:(t + 1) * d].t()
            if gates is not None:
                z = z * gates[rows, j][:, None]
            y = y.index_add(0, rows, z)
    return y


def tiled_ffn(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, tiles: int, tile_idx: torch.Tensor,
              gates: Optional[torch.Tensor] = None, activation: str = "relu", cfg: QuantConfig = QuantConfig(),
              packed: Optional[Tuple[ops.PackedTernary, ops.PackedTernary]] = None,
              codes: Optional[Tuple[Codes, Codes]] = None) -> torch.Tensor:
    """The tiled FFN with STE weights. x [N, d]; up [T*h, d]; down [T*d, h] (tile t = rows t*d..t*d+d-1,
    libtrix's layout); tile_idx [N, k] (int, -1 = unused slot); gates [N, k] or None (all 1).
    Returns y [N, d]. packed: (up, down) packed under cfg: the forward then runs the inference
    kernels, bit for bit what pack() gives (eager eval mode); codes: (weight_codes(up), weight_codes(down)) if already computed."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"tiled_ffn: argument 'activation' must be one of {ACTIVATIONS}, got {activation!r}")
    _check_ffn(x, up, down, tiles, tile_idx, gates)
    if cfg.per_row:
        raise ValueError("tiled_ffn: argument 'cfg' must have per_row=False (one scale per projection)")
    if triton_dispatch.applies(x, up, down, gates):  # GPU path hook (issue 15)
        return triton_dispatch.tiled_ffn(x, up, down, tiles, tile_idx, gates, activation, cfg)
    dt = _compute_dtype(x)
    (upq, ups), (downq, downs) = codes if codes is not None else (weight_codes(up, cfg), weight_codes(down, cfg))
    if (packed is not None and use_libtrix(x) and (gates is None or use_libtrix(gates))
            and not torch.compiler.is_compiling()):
        return _PackedTiledFFN.apply(x, up, down, gates, tile_idx.to(torch.int32).contiguous(), packed,
                                     (upq, ups, downq, downs), tiles, activation)
    y, _ = torch.ops.trix.tiled_ffn(x.to(dt), up, down, upq, ups, downq, downs, tile_idx,
                                    None if gates is None else gates.to(dt), tiles, activation)
    return y.to(x.dtype)
