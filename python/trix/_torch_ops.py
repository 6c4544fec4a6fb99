"""The TriX training operations as torch custom ops (namespace ``trix``), so that autograd,
``torch.compile(fullgraph=True)`` and ``torch.export`` see each of them as one opaque node.

    torch.ops.trix.ternary_codes(w, rule, threshold, per_row) -> (q int8 [M, K], scale [1] or [M])
    torch.ops.trix.ternary_linear(x [N, K], w [M, K], q, scale) -> y [N, M]
    torch.ops.trix.tiled_ffn(x [N, d], up [T*h, d], down [T*d, h], upq, up_scale, downq, down_scale,
                             tile_idx [N, k], gates [N, k] | None, tiles, activation) -> (y [N, d], hidden_pre [N, k, h])
    torch.ops.trix.tile_signatures(q [T*h, d], tiles) -> sig int8 [T, d]
    torch.ops.trix.route_scores(xn [N, d], sig int8 [T, d]) -> scores [N, T]

The latent weights (w, up, down) are inputs only so that their straight-through gradient (the
gradient of the effective weight scale * q) has somewhere to go; the products read the codes.

Device dispatch: every op body calls `_pick(op, *tensors)`, the one place that chooses an
implementation: libtrix (trix._C) for CPU float32, an implementation registered for the tensors'
device type with `register_device_impl` (the Triton kernels register "cuda"), else the torch
fallback below (float64 on any device, and the reference the tests compare libtrix with).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _C

ACTIVATIONS = ("identity", "relu", "gelu", "silu")

# op name -> device type -> implementation with the op's signature.
_DEVICE_IMPLS: Dict[str, Dict[str, Callable]] = {}


def register_device_impl(op: str, device_type: str, fn: Callable) -> None:
    """Serve op (e.g. "tiled_ffn", "tiled_ffn_backward") for tensors on device_type with fn."""
    _DEVICE_IMPLS.setdefault(op, {})[device_type] = fn


def _pick(op: str, *tensors: Optional[Tensor]) -> Optional[Callable]:
    """The implementation for these tensors: None = libtrix (CPU float32), else a registered device
    implementation or the torch fallback `_FALLBACK[op]`."""
    ts = [t for t in tensors if t is not None and t.is_floating_point()]
    dev = ts[0].device.type
    if dev == "cpu" and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in ts):
        return None
    return _DEVICE_IMPLS.get(op, {}).get(dev, _FALLBACK[op])


def _c(t: Tensor) -> Tensor:
    return t.detach().contiguous()


def _scale_count(rows: int, rule: str, per_row: bool) -> int:
    return rows if rule == "absmean" and per_row else 1


# ------------------------------------------------------------------------------------- activations


def activate(a: str, v: Tensor) -> Tensor:
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


def activate_grad(a: str, v: Tensor) -> Tensor:
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


# ------------------------------------------------------------------------------------- quantizer


@torch.library.custom_op("trix::ternary_codes", mutates_args=())
def ternary_codes(w: Tensor, rule: str, threshold: float, per_row: bool) -> Tuple[Tensor, Tensor]:
    """q int8 [M, K] in {-1, 0, 1} and scale [1] or [M] (w's dtype) of latent w [M, K]."""
    impl = _pick("ternary_codes", w)
    if impl is not None:
        return impl(w, rule, threshold, per_row)
    q = torch.empty(w.shape, dtype=torch.int8)
    s = torch.empty(_scale_count(w.shape[0], rule, per_row), dtype=torch.float32)
    _C.train_quantize(_c(w), rule, float(threshold), bool(per_row), q, s)
    return q, s


@ternary_codes.register_fake
def _(w, rule, threshold, per_row):
    return (w.new_empty(w.shape, dtype=torch.int8), w.new_empty(_scale_count(w.shape[0], rule, per_row)))


def _codes_torch(w: Tensor, rule: str, threshold: float, per_row: bool) -> Tuple[Tensor, Tensor]:
    from .quant import QuantConfig, ternary_codes_torch

    q, s = ternary_codes_torch(w, QuantConfig(rule, threshold, per_row))
    return q.to(torch.int8), s


def effective_weight(q: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """scale * q [M, K] in dtype (one scale or one per row)."""
    s = scale.to(dtype)
    return q.to(dtype) * (s[:, None] if s.numel() == q.shape[0] and q.shape[0] != 1 else s.reshape(1, 1))


# ------------------------------------------------------------------------------------- ternary linear


@torch.library.custom_op("trix::ternary_linear", mutates_args=())
def ternary_linear(x: Tensor, w: Tensor, q: Tensor, scale: Tensor) -> Tensor:
    """y [N, M] = x [N, K] @ (scale * q)^T; w is the latent weight (gradient only)."""
    impl = _pick("ternary_linear", x)
    if impl is not None:
        return impl(x, w, q, scale)
    y = torch.empty(x.shape[0], q.shape[0], dtype=torch.float32)
    _C.train_linear_forward(_c(x), _c(q), _c(scale).float(), y)
    return y


@ternary_linear.register_fake
def _(x, w, q, scale):
    return x.new_empty(x.shape[0], q.shape[0])


@torch.library.custom_op("trix::ternary_linear_backward", mutates_args=())
def ternary_linear_backward(g: Tensor, x: Tensor, q: Tensor, scale: Tensor, need_dx: bool,
                            need_dw: bool) -> Tuple[Tensor, Tensor]:
    """(dx [N, K] or empty, dw [M, K] or empty): dx = g @ W, dw = g^T @ x (the STE gradient)."""
    impl = _pick("ternary_linear_backward", g, x)
    if impl is not None:
        return impl(g, x, q, scale, need_dx, need_dw)
    n, k, m = x.shape[0], x.shape[1], q.shape[0]
    dx = torch.empty(n, k) if need_dx else torch.empty(0)
    dw = torch.empty(m, k) if need_dw else torch.empty(0)
    _C.train_linear_backward(_c(g), _c(x), _c(q), _c(scale).float(), dx if need_dx else None,
                             dw if need_dw else None)
    return dx, dw


@ternary_linear_backward.register_fake
def _(g, x, q, scale, need_dx, need_dw):
    n, k, m = x.shape[0], x.shape[1], q.shape[0]
    return (x.new_empty(n, k) if need_dx else x.new_empty(0), x.new_empty(m, k) if need_dw else x.new_empty(0))


def _linear_torch(x, w, q, scale):
    return x @ effective_weight(q, scale, x.dtype).t()


def _linear_backward_torch(g, x, q, scale, need_dx, need_dw):
    dx = g @ effective_weight(q, scale, g.dtype) if need_dx else g.new_empty(0)
    dw = g.t() @ x if need_dw else g.new_empty(0)
    return dx, dw


def _linear_setup(ctx, inputs, output):
    x, w, q, scale = inputs
    ctx.save_for_backward(x, q, scale)


def _linear_grad(ctx, gy):
    x, q, scale = ctx.saved_tensors
    nx, nw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    dx, dw = torch.ops.trix.ternary_linear_backward(gy, x, q, scale, nx, nw)
    return (dx if nx else None), (dw if nw else None), None, None


ternary_linear.register_autograd(_linear_grad, setup_context=_linear_setup)


# ------------------------------------------------------------------------------------- tiled FFN


@torch.library.custom_op("trix::tiled_ffn", mutates_args=())
def tiled_ffn(x: Tensor, up: Tensor, down: Tensor, upq: Tensor, up_scale: Tensor, downq: Tensor, down_scale: Tensor,
              tile_idx: Tensor, gates: Optional[Tensor], tiles: int, activation: str) -> Tuple[Tensor, Tensor]:
    """(y [N, d], hidden_pre [N, k, h]); up/down are the latent weights (gradient only)."""
    impl = _pick("tiled_ffn", x, gates)
    if impl is not None:
        return impl(x, up, down, upq, up_scale, downq, down_scale, tile_idx, gates, tiles, activation)
    n, d = x.shape
    h = upq.shape[0] // tiles
    y = torch.empty(n, d)
    pre = torch.empty(n, tile_idx.shape[1], h)
    _C.train_ffn_forward(_c(x), _c(upq), _c(up_scale).float(), _c(downq), _c(down_scale).float(), tiles, activation,
                         tile_idx.to(torch.int32).contiguous(), None if gates is None else _c(gates), y, pre)
    return y, pre


@tiled_ffn.register_fake
def _(x, up, down, upq, up_scale, downq, down_scale, tile_idx, gates, tiles, activation):
    h = upq.shape[0] // tiles
    return x.new_empty(x.shape), x.new_empty(x.shape[0], tile_idx.shape[1], h)


@torch.library.custom_op("trix::tiled_ffn_backward", mutates_args=())
def tiled_ffn_backward(gy: Tensor, x: Tensor, upq: Tensor, up_scale: Tensor, downq: Tensor, down_scale: Tensor,
                       tile_idx: Tensor, gates: Optional[Tensor], hidden_pre: Tensor, tiles: int, activation: str,
                       need_dx: bool, need_dw: bool, need_dgates: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dx [N, d], dup [T*h, d], ddown [T*d, h], dgates [N, k]); each empty when not needed."""
    impl = _pick("tiled_ffn_backward", gy, x, gates)
    if impl is not None:
        return impl(gy, x, upq, up_scale, downq, down_scale, tile_idx, gates, hidden_pre, tiles, activation,
                    need_dx, need_dw, need_dgates)
    shapes = _ffn_grad_shapes(x, upq, downq, tile_idx, need_dx, need_dw, need_dgates and gates is not None)
    outs = [torch.empty(s) for s in shapes]
    _C.train_ffn_backward(_c(gy), _c(x), _c(upq), _c(up_scale).float(), _c(downq), _c(down_scale).float(), tiles,
                          activation, tile_idx.to(torch.int32).contiguous(), None if gates is None else _c(gates),
                          _c(hidden_pre), *[None if s == (0,) else o for o, s in zip(outs, shapes)])
    return tuple(outs)


def _ffn_grad_shapes(x, upq, downq, tile_idx, need_dx, need_dw, need_dgates) -> List[Tuple[int, ...]]:
    """Output shapes of tiled_ffn_backward; (0,) marks a gradient that is not computed."""
    none = (0,)
    return [tuple(x.shape) if need_dx else none, tuple(upq.shape) if need_dw else none,
            tuple(downq.shape) if need_dw else none, tuple(tile_idx.shape) if need_dgates else none]


@tiled_ffn_backward.register_fake
def _(gy, x, upq, up_scale, downq, down_scale, tile_idx, gates, hidden_pre, tiles, activation, need_dx, need_dw,
      need_dgates):
    shapes = _ffn_grad_shapes(x, upq, downq, tile_idx, need_dx, need_dw, need_dgates and gates is not None)
    return tuple(x.new_empty(s) for s in shapes)


def _routed_tiles(tile_idx: Tensor, tiles: int):
    """Yields (tile, slots, rows) for every tile with a slot routed to it: slots (row * k + slot) in
    increasing order and their rows; unused slots (-1) dropped."""
    k = tile_idx.shape[1]
    flat = tile_idx.reshape(-1).long()
    valid = torch.nonzero(flat >= 0).squeeze(1)
    order = valid[torch.argsort(flat[valid], stable=True)]
    start = 0
    for t, c in enumerate(torch.bincount(flat[valid], minlength=tiles).tolist()):
        if c:
            slots = order[start:start + c]
            yield t, slots, slots // k
        start += c


def _ffn_torch(x, up, down, upq, up_scale, downq, down_scale, tile_idx, gates, tiles, activation):
    n, d = x.shape
    k = tile_idx.shape[1]
    h = upq.shape[0] // tiles
    wu, wd = effective_weight(upq, up_scale, x.dtype), effective_weight(downq, down_scale, x.dtype)
    pre = x.new_zeros(n * k, h)
    y = x.new_zeros(n, d)
    for t, slots, rows in _routed_tiles(tile_idx, tiles):
        p = x[rows] @ wu[t * h:(t + 1) * h].t()
        pre[slots] = p
        z = activate(activation, p) @ wd[t * d:(t + 1) * d].t()
        if gates is not None:
            z = z * gates.reshape(-1)[slots][:, None].to(z.dtype)
        y.index_add_(0, rows, z)
    return y, pre.view(n, k, h)


def _ffn_backward_torch(gy, x, upq, up_scale, downq, down_scale, tile_idx, gates, hidden_pre, tiles, activation,
                        need_dx, need_dw, need_dgates):
    n, d = x.shape
    k = tile_idx.shape[1]
    h = upq.shape[0] // tiles
    wu, wd = effective_weight(upq, up_scale, x.dtype), effective_weight(downq, down_scale, x.dtype)
    pre_all = hidden_pre.reshape(n * k, h)
    dx, dup, ddown = x.new_zeros(n, d), x.new_zeros(tiles * h, d), x.new_zeros(tiles * d, h)
    dg = x.new_zeros(n * k)
    for t, slots, rows in _routed_tiles(tile_idx, tiles):
        pre = pre_all[slots]
        a = activate(activation, pre)
        gs = gy[rows]
        da = gs @ wd[t * d:(t + 1) * d]
        if gates is not None:
            gv = gates.reshape(-1)[slots][:, None].to(x.dtype)
            dg[slots] = (da * a).sum(1)
            da, gs = da * gv, gs * gv
        dp = da * activate_grad(activation, pre)
        dx.index_add_(0, rows, dp @ wu[t * h:(t + 1) * h])
        dup[t * h:(t + 1) * h] = dp.t() @ x[rows]
        ddown[t * d:(t + 1) * d] = gs.t() @ a
    e = x.new_empty  # a fresh empty tensor per output: custom op outputs must not alias
    return (dx if need_dx else e(0), dup if need_dw else e(0), ddown if need_dw else e(0),
            dg.view(n, k) if need_dgates and gates is not None else e(0))


def _ffn_setup(ctx, inputs, output):
    x, up, down, upq, up_scale, downq, down_scale, tile_idx, gates, tiles, activation = inputs
    ctx.tiles, ctx.activation, ctx.has_gates = tiles, activation, gates is not None
    ctx.save_for_backward(x, upq, up_scale, downq, down_scale, tile_idx, gates, output[1])


def _ffn_grad(ctx, gy, _gpre):
    x, upq, up_scale, downq, down_scale, tile_idx, gates, pre = ctx.saved_tensors
    nx, nu, nd, ng = (ctx.needs_input_grad[i] for i in (0, 1, 2, 8))
    dx, dup, ddown, dg = torch.ops.trix.tiled_ffn_backward(
        gy, x, upq, up_scale, downq, down_scale, tile_idx, gates, pre, ctx.tiles, ctx.activation, nx, nu or nd,
        ng and ctx.has_gates)
    return ((dx if nx else None), (dup if nu else None), (ddown if nd else None), None, None, None, None, None,
            (dg if ng and ctx.has_gates else None), None, None)


tiled_ffn.register_autograd(_ffn_grad, setup_context=_ffn_setup)


# ------------------------------------------------------------------------------------- signatures, routing


@torch.library.custom_op("trix::tile_signatures", mutates_args=())
def tile_signatures(q: Tensor, tiles: int) -> Tensor:
    """sig [T, d] int8 = sign of the sum of each tile's ternary up rows (libtrix's rule)."""
    if q.device.type != "cpu":
        return torch.sign(q.view(tiles, -1, q.shape[1]).sum(1, dtype=torch.int32)).to(torch.int8)
    sig = torch.empty(tiles, q.shape[1], dtype=torch.int8)
    _C.tile_signatures_codes(_c(q), tiles, sig)
    return sig


@tile_signatures.register_fake
def _(q, tiles):
    return q.new_empty(tiles, q.shape[1])


@torch.library.custom_op("trix::route_scores", mutates_args=())
def route_scores(xn: Tensor, sig: Tensor) -> Tensor:
    """scores [N, T] = xn [N, d] . sig [T, d]^T (sig int8 ternary; libtrix's routing product)."""
    impl = _pick("route_scores", xn)
    if impl is not None:
        return impl(xn, sig)
    from . import ops

    return ops.route_scores(_c(xn), ops.pack_int8(_c(sig).to(torch.int8)))


@route_scores.register_fake
def _(xn, sig):
    return xn.new_empty(xn.shape[0], sig.shape[0])


@torch.library.custom_op("trix::top_k", mutates_args=())
def top_k(scores: Tensor, k: int) -> Tensor:
    """Indices [N, k] (int64) of the k largest scores per row, best first, ties to the lower index."""
    impl = _pick("top_k", scores)
    if impl is not None:
        return impl(scores, k)
    from . import ops

    idx, _ = ops.top_k(_c(scores), k)
    return idx.long()


@top_k.register_fake
def _(scores, k):
    return scores.new_empty(scores.shape[0], k, dtype=torch.long)


def _top_k_torch(scores, k):
    # A stable descending sort keeps equal scores in index order (libtrix's rule).
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k].contiguous()


def _route_scores_torch(xn, sig):
    return xn @ sig.to(xn.dtype).t()


_FALLBACK = {
    "ternary_codes": _codes_torch,
    "ternary_linear": _linear_torch,
    "ternary_linear_backward": _linear_backward_torch,
    "tiled_ffn": _ffn_torch,
    "tiled_ffn_backward": _ffn_backward_torch,
    "route_scores": _route_scores_torch,
    "top_k": _top_k_torch,
}
