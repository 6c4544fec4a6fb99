"""Tiled ternary FFNs with emergent routing: TriXFFN (Option A or B) and SparseTriXFFN (Option B).

Weights: up [T*h, d] and down [T*d, h] (tile t = rows t*d .. t*d+d-1; libtrix's layout), latent
float, ternary by the STE (trix.quant). A tile's signature is sign(sum of its h ternary up rows).
Emergent routing scores the L2-normalised input against the signatures and takes the argmax
(ties to the lower tile). Only routed tiles compute, and only they receive gradient.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..autograd import (ACTIVATIONS, activate, pack_weight, tiled_ffn, use_libtrix, weight_codes, weight_packed,
                        weight_signatures)
from ..quant import QuantConfig, ternary_codes, ternary_ste, ternary_ste_codes
from ..triton import dispatch as triton_dispatch
from .packing import Packable
from .routing import (GATE_RULES, ROUTING_METHODS, SCORE_ROUTERS, SIGNATURE_ROUTERS, RoutingInfo, Telemetry,
                      signature_similarity, switch_balance_loss, unit_gate)

TRAIN_MODES = ("sparse", "dense")


def _choice(func: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{func}: argument '{name}' must be one of {tuple(allowed)}, got {value!r}")


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """x / ||x||_2 per row (0 rows stay 0): the routing input, the same in every path."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def select_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [N, k] of the k largest scores per row, best first, ties to the lower index
    (libtrix's top_k rule)."""
    if triton_dispatch.applies(scores):  # GPU path (trix.triton): CUDA tensors, or forced under the interpreter
        return triton_dispatch.select_top(scores, k)
    return torch.ops.trix.top_k(scores.detach(), k)  # libtrix on CPU float32, a stable sort elsewhere


class TriXFFN(Packable):
    """The tiled FFN with emergent (or another) routing.

    d_model: d; tiles: T; expansion: total hidden width expansion*d split into T tiles of h each;
    train_mode: "sparse" (train and infer with the routed tile(s)) or "dense" (Option A: train all
    tiles with gate 1; infer with all, or with one via set_inference_routing); routing: one of
    ROUTING_METHODS; top_k: tiles per input; vocab_size: needed for routing="hash".
    balance_coef / diversity_coef: weights of the Switch balance loss and the signature diversity
    loss (0 switches them off; the aux dict keeps the keys; the balance loss applies to every router
    in SCORE_ROUTERS, the diversity loss to emergent). ema_decay > 0: route by the sign of an EMA of
    the signatures. bias_rate > 0: aux-loss-free balancing bias, used only to select.
    gate: "unit" (the chosen tile's output is not scaled, for every method; score routers get
    Switch's router gradient) or "prob" (scaled by the router probability). See trix.nn.routing.

    forward(x [..., d], token_ids [...] or None) -> (y [..., d], RoutingInfo, aux dict of scalars).
    """

    residual = False  # the block adds the residual around this module
    _flat_packed_path = True  # the lean packed path below applies (flat emergent routing, no norm/residual)

    def __init__(self, d_model: int, tiles: int = 4, expansion: int = 4, activation: str = "relu",
                 train_mode: str = "sparse", routing: str = "emergent", top_k: int = 1, vocab_size: int = 0,
                 balance_coef: float = 0.0, diversity_coef: float = 0.0, ema_decay: float = 0.0,
                 bias_rate: float = 0.0, temperature: float = 1.0, quant: QuantConfig = QuantConfig(),
                 init_std: float = 0.02, seed: int = 0, gate: str = "unit") -> None:
        super().__init__()
        name = type(self).__name__
        _choice(name, "train_mode", train_mode, TRAIN_MODES)
        _choice(name, "routing", routing, ROUTING_METHODS)
        _choice(name, "activation", activation, ACTIVATIONS)
        _choice(name, "gate", gate, GATE_RULES)
        if tiles < 1 or (expansion * d_model) % tiles:
            raise ValueError(f"{name}: argument 'tiles' must divide expansion*d_model = {expansion * d_model}, "
                             f"got {tiles}")
        if not 1 <= top_k <= tiles:
            raise ValueError(f"{name}: argument 'top_k' must be in [1, tiles={tiles}], got {top_k}")
        if routing == "hash" and vocab_size < 1:
            raise ValueError(f"{name}: argument 'vocab_size' must be >= 1 for routing='hash', got {vocab_size}")
        if quant.per_row:
            raise ValueError(f"{name}: argument 'quant' must have per_row=False")
        self.d_model, self.tiles, self.hidden = d_model, tiles, expansion * d_model // tiles
        self.activation, self.train_mode, self.routing, self.top_k = activation, train_mode, routing, top_k
        self.balance_coef, self.diversity_coef = balance_coef, diversity_coef
        self.ema_decay, self.bias_rate, self.temperature, self.quant = ema_decay, bias_rate, temperature, quant
        self.gate_rule, self.init_std = gate, init_std
        self.inference_routing: Optional[str] = None
        self.inference_scale = 1.0  # Option A: one tile's output times T restores the all-tile magnitude
        g = torch.Generator().manual_seed(seed)
        h, d, t = self.hidden, d_model, tiles
        self.up = nn.Parameter(torch.randn(t * h, d, generator=g) * init_std)
        self.down = nn.Parameter(torch.randn(t * d, h, generator=g) * init_std)
        self.gate = nn.Linear(d, t, bias=False) if routing == "learned" else None
        self.register_buffer("ema_signatures", torch.zeros(t, d))
        self.register_buffer("ema_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("select_bias", torch.zeros(t))
        if routing == "hash":  # Hash Layers: a fixed balanced random assignment of token ids to tiles
            perm = torch.randperm(vocab_size, generator=torch.Generator().manual_seed(seed + 1))
            self.register_buffer("hash_table", perm % t)
        if routing == "random_signatures":  # distributed like the signature of a random tile
            gs = torch.Generator().manual_seed(seed + 2)
            codes = torch.randint(-1, 2, (t, h, d), generator=gs, dtype=torch.int8).sum(1, dtype=torch.int32)
            self.register_buffer("fixed_signatures", codes.sign().float())
        self._packed: Optional[Tuple[ops.PackedTernary, ops.PackedTernary, torch.Tensor]] = None
        self._telemetry = Telemetry(t)
        self._call_cache: Optional[Dict[str, object]] = None  # quantized weights, for one forward call
        self._packed_np = None

    # ---------------------------------------------------------------- signatures
    def _up_codes(self):
        """ternary_codes(up): computed once per forward call (cached for its duration)."""
        if self._call_cache is not None and "up" in self._call_cache:
            return self._call_cache["up"]
        q, s = weight_codes(self.up, self.quant)  # libtrix's quantizer, cached while up is unchanged
        codes = (q.to(self.up.dtype), s.to(self.up.dtype))
        if self._call_cache is not None:
            self._call_cache["up"] = codes
        return codes

    def signatures(self) -> torch.Tensor:
        """The tiles' current ternary signatures [T, d] (float, values in {-1, 0, 1})."""
        return weight_signatures(self.up, self.tiles, self.quant)  # libtrix's, cached while up is unchanged

    def routing_signatures(self, method: Optional[str] = None) -> torch.Tensor:
        """The signature matrix S [T, d] a signature router scores against (method: default the
        module's routing; other methods get emergent's): the tiles' own ternary signatures (or the
        sign of their EMA), the fixed random ones, or the tiles' mean ternary up rows (float)."""
        method = method or self.routing
        if method == "random_signatures":
            return self.fixed_signatures
        if method == "mean_signature":
            q, _ = self._up_codes()
            return q.view(self.tiles, self.hidden, self.d_model).mean(1)
        if self.ema_decay > 0 and bool(self.ema_ready):
            return torch.sign(self.ema_signatures)
        return self.signatures()

    def _diff_signatures(self, method: str) -> torch.Tensor:
        """routing_signatures(method) with a gradient to the up weights where they are read from them."""
        if method == "random_signatures":
            return self.fixed_signatures
        if method == "mean_signature":
            q = ternary_ste_codes(self.up, self.quant, self._up_codes())
            return q.view(self.tiles, self.hidden, self.d_model).mean(1)
        return self.signatures_ste()

    def signatures_ste(self) -> torch.Tensor:
        """Signatures [T, d] whose value is the hard sign and whose gradient reaches the up weights
        (d/dW of the mean of the tile's ternary rows, each by the STE)."""
        if self._call_cache is not None and "ste" in self._call_cache:
            return self._call_cache["ste"]
        q = ternary_ste_codes(self.up, self.quant, self._up_codes()).view(self.tiles, self.hidden, self.d_model)
        soft = q.sum(1) / math.sqrt(self.hidden)
        sig = soft + (torch.sign(q.detach().sum(1)) - soft).detach()
        if self._call_cache is not None:
            self._call_cache["ste"] = sig
        return sig

    # ---------------------------------------------------------------- packing
    def pack(self) -> "TriXFFN":
        """Cache the packed weights and routing signatures; eval forward then runs only libtrix products."""
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.pack: call model.eval() first (packed inference has no gradient)")
        if self.up.device.type != "cpu":
            raise RuntimeError(f"{type(self).__name__}.pack: packed inference runs on the CPU through libtrix; "
                               f"the weights are on {self.up.device}")
        sig = self.routing_signatures().detach().cpu().contiguous()
        if self.routing != "mean_signature":  # ternary signatures: exact int8 scores in libtrix
            sig = sig.to(torch.int8)
        self._packed = (pack_weight(self.up, self.quant), pack_weight(self.down, self.quant), sig)
        # numpy views of the same bytes: the batch-1 path below crosses into libtrix without DLPack.
        psig = ops.pack_int8(sig.numpy()) if sig.dtype == torch.int8 else None
        self._packed_np = (self._packed[0].numpy(), self._packed[1].numpy(), psig,
                           self.select_bias.detach().cpu().numpy().copy())
        self._auto_key = None
        return self

    # ---------------------------------------------------------------- routing
    def _scores(self, xn: torch.Tensor, sig: torch.Tensor, packed_sig: Optional[ops.PackedTernary],
                ternary: Optional[bool] = None) -> torch.Tensor:
        """Routing scores [N, T] = xn . sig^T: libtrix for ternary signatures on CPU float32 (also
        when packed), else torch (float signatures, other devices). ternary: whether sig holds only
        -1 / 0 / 1 (None: look at it; torch.compile passes what the method guarantees)."""
        if ternary is None:
            ternary = packed_sig is not None or not sig.is_floating_point() or bool((sig == sig.round()).all())
        if not ternary:
            return xn.detach() @ sig.to(xn.dtype).t()
        if packed_sig is None and triton_dispatch.applies(xn):  # GPU path (trix.triton)
            return triton_dispatch.route_scores(xn, sig)
        if packed_sig is not None and use_libtrix(xn):
            return ops.route_scores(xn.detach().contiguous(), packed_sig)
        return torch.ops.trix.route_scores(xn.detach(), sig.to(torch.int8))  # libtrix on CPU float32

    def _mode(self) -> str:
        """The routing in effect for this call."""
        if not self.training and self.inference_routing is not None:
            return self.inference_routing
        if self.train_mode == "dense":
            return "dense"
        return self.routing

    def _route(self, x: torch.Tensor, token_ids: Optional[torch.Tensor]):
        """-> (tile_idx [N, k], scores [N, T] or None, cluster [N] or None, probs [N, T] or None
        (differentiable router probabilities where the method has them and they are needed),
        xn [N, d] (the normalised routing input), tiles scored per input)."""
        n, t = x.shape[0], self.tiles
        mode = self._mode()
        xn = normalize_rows(x)
        need_p = self.training or self.gate_rule == "prob"
        probs = scores = None
        scored = 0.0
        if mode == "dense":
            tile = torch.arange(t, device=x.device).expand(n, t)
            if self.routing in SIGNATURE_ROUTERS:  # what the router would score (telemetry, Option A)
                scores = self._signature_scores(xn, self.routing)
        elif mode == "first":
            tile = torch.zeros(n, 1, dtype=torch.long, device=x.device)
        elif mode == "random":
            tile = torch.randint(0, t, (n, self.top_k), device=x.device)
        elif mode == "hash":
            if token_ids is None:
                raise ValueError(f"{type(self).__name__}.forward: argument 'token_ids' is required for routing='hash'")
            tile = self.hash_table[token_ids.reshape(-1)][:, None]
        else:
            if mode == "learned":
                logits = self.gate(x)
                probs = F.softmax(logits.float(), dim=-1).to(x.dtype)
                scores = logits.detach()
                sel = probs.detach()
            elif mode == "autonomy":
                norms = self._autonomy_norms(x)
                scores = sel = norms.detach()
                if need_p:
                    probs = F.softmax(norms / self.temperature, dim=-1)
            else:  # signature routers
                scores = sel = self._signature_scores(xn, mode)
                if need_p:
                    probs = self._probs(xn, mode)
            if self.bias_rate > 0:
                sel = sel + self.select_bias.to(sel.dtype)
            tile = select_top(sel, self.top_k)
            scored = float(t)
        return tile, scores, None, probs, xn, scored

    def _signature_scores(self, xn: torch.Tensor, mode: str) -> torch.Tensor:
        if self._packed is not None and mode == self.routing:
            sig = self._packed[2]
            psig = ops.pack_int8(sig) if sig.dtype == torch.int8 else None
            return self._scores(xn, sig.float(), psig)
        ternary = (mode != "mean_signature") if torch.compiler.is_compiling() else None
        return self._scores(xn, self.routing_signatures(mode), None, ternary)

    def _autonomy_norms(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T]: the L2 norm of each tile's own hidden activation act(up_t x) (the product the FFN
        computes for the chosen tile), differentiable in training (STE weights)."""
        if self._packed is not None and use_libtrix(x):
            pre = ops.matmul(x.detach().contiguous(), self._packed[0])
        elif self.training:
            pre = x @ ternary_ste(self.up, self.quant).t()
        else:
            q, s = self._up_codes()
            pre = x @ (q * s).t()
        return activate(self.activation, pre).view(x.shape[0], self.tiles, self.hidden).norm(dim=-1)

    def _probs(self, xn: torch.Tensor, mode: str = "emergent") -> torch.Tensor:
        """Differentiable router probabilities [N, T] of a signature router: a softmax over scores
        against its signatures (STE where read from the weights, so the gradient reaches them)."""
        return F.softmax(xn @ self._diff_signatures(mode).to(xn.dtype).t() / self.temperature, dim=-1)

    def _gates(self, tile: torch.Tensor, probs: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Gates [N, k] on the chosen tiles, or None (all 1)."""
        if not self.training and self.inference_routing is not None and self.inference_scale != 1.0:
            return torch.full(tile.shape, float(self.inference_scale), device=tile.device)
        if probs is None:
            return None
        sel = probs.gather(1, tile.clamp(min=0))
        if self.gate_rule == "prob":
            return sel / sel.sum(1, keepdim=True) if sel.shape[1] > 1 else sel
        return unit_gate(sel) if self.training else None

    # ---------------------------------------------------------------- forward
    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _post(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y

    def _extra_aux(self, aux: Dict[str, torch.Tensor], xn: torch.Tensor, tile: torch.Tensor,
                   cluster: Optional[torch.Tensor]) -> None:
        pass

    def forward(self, x: torch.Tensor, token_ids: Optional[torch.Tensor] = None):
        if x.shape[-1] != self.d_model:
            raise ValueError(f"{type(self).__name__}.forward: argument 'x' must have last dim {self.d_model}, "
                             f"got shape {list(x.shape)}")
        if self._packed is not None and self.training:
            raise RuntimeError(f"{type(self).__name__}: packed modules run in eval mode only; call unpack()")
        self._sync_auto_pack(x)
        shape = x.shape
        x2 = x.reshape(-1, self.d_model)
        tok = None if token_ids is None else token_ids.reshape(-1)
        mode = self._mode()
        if (self._packed_np is not None and self._flat_packed_path and mode in ("emergent", "random_signatures")
                and self.routing in (mode, "dense") and self._packed_np[2] is not None
                and self.inference_scale == 1.0 and use_libtrix(x2)):
            return self._forward_packed(x2, tok, shape)
        self._call_cache = {}
        try:
            hin = self._pre(x2)
            tile, scores, cluster, probs, xn, scored = self._route(hin, tok)
            gates = self._gates(tile, probs)
            if self._packed is not None:
                packed = self._packed[:2]
            elif not self.training and use_libtrix(hin, self.up) and not torch.compiler.is_compiling():
                # eval without pack(): the packed inference kernels on weights packed once per change
                packed = (weight_packed(self.up, self.quant), weight_packed(self.down, self.quant))
            else:
                packed = None
            codes = (weight_codes(self.up, self.quant), weight_codes(self.down, self.quant))
            y = tiled_ffn(hin, self.up, self.down, self.tiles, tile, gates, self.activation, self.quant, packed, codes)
            y = self._post(x2, y)
            # counts [T] of used slots: a fixed-shape scatter (torch.compile traces it as one graph)
            used = tile >= 0
            counts = torch.zeros(self.tiles, dtype=torch.long, device=tile.device).scatter_add_(
                0, tile.clamp(min=0).reshape(-1), used.reshape(-1).long())
            aux = self._aux(hin, xn, tile, probs, cluster)
        finally:
            self._call_cache = None
        if self.training:
            self._update_selection_state(counts)
        if not torch.compiler.is_compiling():  # telemetry accumulates on the host (eager only)
            self._telemetry.record(counts, hin, tok)
        return y.reshape(shape), RoutingInfo(tile, cluster, scores, counts, scored), aux

    @torch.no_grad()
    def _forward_packed(self, x2: torch.Tensor, tok: Optional[torch.Tensor], shape):
        """Packed inference with emergent routing: the same libtrix calls as the unpacked eval path
        (so the same routing and bits), on numpy views to keep per-call overhead low at batch 1."""
        pup, pdown, psig, bias = self._packed_np
        x2 = x2.detach().contiguous()
        xn = normalize_rows(x2).numpy()
        scores = ops.route_scores(xn, psig)
        idx, _ = ops.top_k(scores + bias if self.bias_rate > 0 else scores, self.top_k)
        y = ops.tiled_ffn(x2.numpy(), pup, pdown, self.tiles, idx, None, self.activation)
        tile = torch.from_numpy(idx).long()
        counts = torch.from_numpy(np.bincount(idx.reshape(-1), minlength=self.tiles)).long()
        self._telemetry.record(counts, x2, tok)
        zero = x2.new_zeros(())
        aux = {"balance": zero, "diversity": zero}
        return (torch.from_numpy(y).reshape(shape),
                RoutingInfo(tile, None, torch.from_numpy(scores), counts, float(self.tiles)), aux)

    def _aux(self, hin, xn, tile, probs, cluster) -> Dict[str, torch.Tensor]:
        zero = hin.new_zeros(())
        aux = {"balance": zero, "diversity": zero}
        if self._packed is not None or self.tiles < 2:
            return aux
        if self.balance_coef > 0 and probs is not None and self._mode() in SCORE_ROUTERS:
            aux["balance"] = self.balance_coef * switch_balance_loss(probs, tile, self.tiles)
        if self.diversity_coef > 0 and self.routing == "emergent":
            aux["diversity"] = self.diversity_coef * signature_similarity(self.signatures_ste())
        self._extra_aux(aux, xn, tile, cluster)
        return aux

    @torch.no_grad()
    def _update_selection_state(self, counts: torch.Tensor) -> None:
        if self.ema_decay > 0:
            sig = self.signatures().to(self.ema_signatures.dtype)
            if not bool(self.ema_ready):
                self.ema_signatures.copy_(sig)
                self.ema_ready.fill_(True)
            else:
                self.ema_signatures.mul_(self.ema_decay).add_(sig, alpha=1 - self.ema_decay)
        if self.bias_rate > 0:  # aux-loss-free balancing: raise under-used tiles, lower over-used ones
            c = counts.to(self.select_bias.dtype)
            self.select_bias.add_(self.bias_rate * torch.sign(c.mean() - c))

    # ---------------------------------------------------------------- telemetry
    @torch.no_grad()
    def _top1(self, x: torch.Tensor, tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """Current top-1 tile of probe inputs (churn). Under dense training with signatures, the tile
        emergent routing would pick; random routing has no stable tile (reported as tile 0)."""
        mode = self._mode()
        if mode == "dense" and self.routing == "emergent":
            return select_top(self._scores(normalize_rows(x), self.routing_signatures(), None), 1)[:, 0]
        if mode == "random":
            return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return self._route(x, tokens)[0][:, 0]

    def telemetry(self) -> Dict[str, object]:
        """Routing statistics since the last call: usage [T], counts [T], entropy, dead_tiles,
        signature_diversity, churn (None at the first call), select_bias [T]."""
        out = self._telemetry.report(self._top1, self.routing_signatures())
        out["select_bias"] = self.select_bias.detach().cpu().clone()  # aux-loss-free balancing state
        return out

    def routing_parameters(self) -> int:
        """Parameters that exist only to route (0 for emergent routing)."""
        return sum(p.numel() for p in self.gate.parameters()) if self.gate is not None else 0

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, tiles={self.tiles}, hidden={self.hidden}, routing={self.routing}, "
                f"train_mode={self.train_mode}, top_k={self.top_k}, activation={self.activation}")


class SparseTriXFFN(TriXFFN):
    """Option B: trains and infers with the routed tile(s) only (top-1 or top-k), with a Switch-style
    balance loss and a signature diversity loss on by default, optional EMA signatures and an optional
    aux-loss-free balancing bias. Arguments as TriXFFN (train_mode is always "sparse")."""

    def __init__(self, d_model: int, tiles: int = 4, expansion: int = 4, balance_coef: float = 0.01,
                 diversity_coef: float = 0.01, **kw) -> None:
        if kw.get("train_mode", "sparse") != "sparse":
            raise ValueError(f"SparseTriXFFN: argument 'train_mode' must be 'sparse', got {kw['train_mode']!r}")
        kw["train_mode"] = "sparse"
        super().__init__(d_model, tiles, expansion, balance_coef=balance_coef, diversity_coef=diversity_coef, **kw)
