"""The one quantizer: ternary weights and int8 activations, with straight-through estimators.

The rules are exactly libtrix's (libtrix/include/trix/quantize.h), so training, packing and signatures
agree bit for bit:

- absmean (default, BitNet b1.58): gamma = max(mean|W|, 1e-5) (mean accumulated in float64, then
  float32, as libtrix does), q = clip(round(W / gamma), -1, 1) with round half to even; W ~ gamma * q.
- threshold (the prototype): q = +1 if W > t, -1 if W < -t, else 0; scale 1.
- activations: amax = max(max|x[n, :]|, 1e-5) per row, xq = clamp(round(x * (127 / amax)), -128, 127),
  x ~ xq * (amax / 127).

The straight-through estimators pass the gradient unchanged: d(quantized)/d(latent) = identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

ABSMEAN_EPS = 1e-5
ACTIVATION_EPS = 1e-5
RULES = ("absmean", "threshold")


@dataclass(frozen=True)
class QuantConfig:
    """How latent weights become ternary. rule: "absmean" | "threshold"; threshold only for "threshold";
    per_row: one absmean scale per output row instead of one per matrix."""

    rule: str = "absmean"
    threshold: float = 0.5
    per_row: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"QuantConfig: argument 'rule' must be one of {RULES}, got {self.rule!r}")
        if not self.threshold >= 0.0:
            raise ValueError(f"QuantConfig: argument 'threshold' must be >= 0, got {self.threshold}")


def ternary_codes(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> Tuple[torch.Tensor, torch.Tensor]:
    """Quantize w [M, K] (no gradient). Returns (q [M, K] in {-1, 0, 1}, same dtype as w;
    scale [1] or [M] (per_row), same dtype as w) with w ~ q * scale (scale broadcast over rows).
    On CPU float32 this is libtrix's quantizer (torch.ops.trix.ternary_codes), the one packing uses."""
    if w.dim() != 2:
        raise ValueError(f"ternary_codes: argument 'w' must be 2-D [M, K], got shape {list(w.shape)}")
    from . import _torch_ops  # noqa: F401  (registers torch.ops.trix)

    q, s = torch.ops.trix.ternary_codes(w.detach(), cfg.rule, float(cfg.threshold), bool(cfg.per_row))
    return q.to(w.dtype), s.to(w.dtype)


def ternary_codes_torch(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> Tuple[torch.Tensor, torch.Tensor]:
    """ternary_codes on torch ops (any dtype and device): the fallback of torch.ops.trix.ternary_codes
    and the reference the tests hold libtrix's quantizer to."""
    w = w.detach()
    if cfg.rule == "threshold":
        q = (w > cfg.threshold).to(w.dtype) - (w < -cfg.threshold).to(w.dtype)
        return q, torch.ones(1, dtype=w.dtype, device=w.device)
    # float64 accumulation then a cast to w's dtype: libtrix's absmean, bit for bit in float32.
    if cfg.per_row:
        g = (w.abs().sum(dim=1, dtype=torch.float64) / max(w.shape[1], 1)).to(w.dtype).clamp_min(ABSMEAN_EPS)
        q = torch.round(w / g[:, None]).clamp_(-1, 1)
    else:
        g = (w.abs().sum(dtype=torch.float64) / max(w.numel(), 1)).to(w.dtype).clamp_min(ABSMEAN_EPS).reshape(1)
        q = torch.round(w / g).clamp_(-1, 1)
    return q, g


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized value exactly (not w + (q - w), which rounds); backward: g * factor."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, value: torch.Tensor, factor):
        ctx.factor = factor
        return value

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return (g if ctx.factor is None else g * ctx.factor), None, None


def _expand_scale(scale: torch.Tensor, rows: int) -> torch.Tensor:
    return scale[:, None] if scale.numel() == rows and rows != 1 else scale.reshape(1, 1)


def ternary_ste(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> torch.Tensor:
    """The effective weight scale * q [M, K], with the straight-through gradient d/dw = identity."""
    q, s = ternary_codes(w, cfg)
    return _StraightThrough.apply(w, q * _expand_scale(s, w.shape[0]), None)


def ternary_ste_codes(w: torch.Tensor, cfg: QuantConfig = QuantConfig(),
                      codes: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """The codes q [M, K] as a differentiable tensor: forward q, gradient d/dw = 1 / scale
    (the STE of q = w / scale rounded). Used where the codes themselves feed a loss (signatures).
    codes: ternary_codes(w, cfg) if already computed."""
    q, s = ternary_codes(w, cfg) if codes is None else codes
    return _StraightThrough.apply(w, q, 1.0 / _expand_scale(s, w.shape[0]))


def quantize_activations(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-row absmax int8 quantization of x [..., K] (no gradient): (xq int8 [..., K], xscale [...])
    with x ~ xq * xscale[..., None]; identical to trix.quantize_activations / libtrix."""
    x = x.detach()
    amax = x.abs().amax(dim=-1).clamp_min(ACTIVATION_EPS)
    xq = torch.round(x * (127.0 / amax)[..., None]).clamp_(-128, 127).to(torch.int8)
    return xq, amax / 127.0


def fake_quant_activations(x: torch.Tensor) -> torch.Tensor:
    """x [..., K] rounded to what the int8 kernels see (xq * xscale), with the straight-through gradient."""
    xq, xs = quantize_activations(x)
    return _StraightThrough.apply(x, xq.to(x.dtype) * xs[..., None], None)


def nonzero_fraction(w: torch.Tensor, cfg: QuantConfig = QuantConfig()) -> float:
    """Share of non-zero ternary codes of w [M, K]: a dead tile has 0."""
    q, _ = ternary_codes(w, cfg)
    return float((q != 0).float().mean())
