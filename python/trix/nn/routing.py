"""Routing results, auxiliary losses and telemetry shared by the tiled FFN modules."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch

from ..routing_methods import GATE_RULES, ROUTING_METHODS, SCORE_ROUTERS, SIGNATURE_ROUTERS  # noqa: F401

INFERENCE_OVERRIDES = (None, "emergent", "random", "first")


def unit_gate(p_sel: torch.Tensor) -> torch.Tensor:
    """Value exactly 1, gradient of p_sel: the same forward function for every routing method."""
    return 1.0 + (p_sel - p_sel.detach())


@dataclass
class RoutingInfo:
    """Where each input went. N = number of inputs (B*T tokens), T = tiles, k = tiles per input.

    tile:    LongTensor [N, k], the tile of each slot (-1: unused);
    cluster: LongTensor [N] (hierarchical: the best cluster searched) or None;
    scores:  Tensor [N, T], the routing scores (None for hash / random / dense routing);
    counts:  LongTensor [T], inputs per tile in this call;
    scored:  tiles (and cluster signatures) scored per input to make the choice, mean over inputs.
    """

    tile: torch.Tensor
    cluster: Optional[torch.Tensor]
    scores: Optional[torch.Tensor]
    counts: torch.Tensor
    scored: float = 0.0


# A pytree node (tensors as children, `scored` as context): torch.export and torch.compile can then
# return it from a traced forward.
torch.utils._pytree.register_pytree_node(
    RoutingInfo,
    lambda r: ((r.tile, r.cluster, r.scores, r.counts), r.scored),
    lambda children, scored: RoutingInfo(*children, scored),
    serialized_type_name="trix.nn.routing.RoutingInfo",
)


def switch_balance_loss(probs: torch.Tensor, tile: torch.Tensor, tiles: int) -> torch.Tensor:
    """Switch Transformer load balance N * sum_i f_i * P_i (unweighted; 1 when perfectly balanced).
    probs [N, T] differentiable router probabilities; tile [N, k] the selected tiles (f_i from counts).
    The gradient flows through P only, as in Switch."""
    used = (tile >= 0).reshape(-1)
    # counts by a fixed-shape scatter (not bincount of a masked select): one graph under torch.compile
    counts = torch.zeros(tiles, dtype=probs.dtype, device=tile.device).scatter_add_(
        0, tile.clamp(min=0).reshape(-1), used.to(probs.dtype))
    f = counts / used.sum().clamp_min(1).to(probs.dtype)
    return tiles * (f * probs.mean(0)).sum()


def signature_similarity(sig: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between distinct rows of sig [T, d] (0: orthogonal signatures).
    Differentiable; the diversity loss."""
    t = sig.shape[0]
    if t < 2:
        return sig.sum() * 0.0
    s = sig / sig.norm(dim=1, keepdim=True).clamp_min(1e-6)
    gram = s @ s.t()
    off = gram - torch.diag_embed(torch.diagonal(gram))
    return (off ** 2).sum() / (t * (t - 1))


def signature_diversity(sig: torch.Tensor) -> float:
    """Mean fraction of positions where two distinct ternary signatures [T, d] differ (0: all equal)."""
    t = sig.shape[0]
    if t < 2:
        return 0.0
    diff = (sig[:, None, :] != sig[None, :, :]).float().mean(-1)
    return float(diff.sum() / (t * (t - 1)))


class Telemetry:
    """Accumulates routing statistics as a side effect of forward passes (no extra passes over data).

    usage, entropy and dead tiles cover the inputs seen since the last check; churn is the fraction of
    the inputs kept as a probe at the last check (up to `probe` of them) whose tile is different now.
    """

    def __init__(self, tiles: int, probe: int = 1024) -> None:
        self.tiles, self.probe = tiles, probe
        self.counts = torch.zeros(tiles, dtype=torch.long)
        self.last_x: Optional[torch.Tensor] = None
        self.last_tokens: Optional[torch.Tensor] = None
        self.probe_x: Optional[torch.Tensor] = None
        self.probe_tokens: Optional[torch.Tensor] = None
        self.probe_tile: Optional[torch.Tensor] = None

    def record(self, counts: torch.Tensor, x: torch.Tensor, tokens: Optional[torch.Tensor]) -> None:
        self.counts += counts.detach().cpu()
        self.last_x = x[: self.probe].detach()
        self.last_tokens = None if tokens is None else tokens[: self.probe].detach()

    def report(self, route_top1, signatures: torch.Tensor) -> Dict[str, object]:
        """route_top1(x, tokens) -> LongTensor [n]: the module's current top-1 tile for probe inputs."""
        total = int(self.counts.sum())
        usage = self.counts.double() / max(total, 1)
        nz = usage[usage > 0]
        entropy = float(-(nz * nz.log()).sum()) if total else 0.0
        churn = None
        if self.probe_x is not None:
            now = route_top1(self.probe_x, self.probe_tokens)
            churn = float((now != self.probe_tile).double().mean())
        if self.last_x is not None:
            self.probe_x, self.probe_tokens = self.last_x, self.last_tokens
            self.probe_tile = route_top1(self.probe_x, self.probe_tokens)
        out = {
            "usage": usage.float(),
            "counts": self.counts.clone(),
            "entropy": entropy,
            "max_entropy": math.log(self.tiles),
            "dead_tiles": int((self.counts == 0).sum()) if total else self.tiles,
            "signature_diversity": signature_diversity(signatures),
            "churn": churn,
        }
        self.counts.zero_()
        return out
