"""HierarchicalTriXFFN: tiles grouped into clusters; route to the top-p clusters, then the best tile.

Clusters come from balanced k-means over the tiles' ternary signatures with a fixed seed
(trix.memory.balanced_kmeans, in libtrix). A cluster's signature is the sign of the sum of its
member tiles' signatures, recomputed from the weights at every call; the membership is rebuilt every
`rebuild_every` training calls and saved in the state_dict (buffer `cluster_of`); under torch.compile
the training loop applies the rebuild (rebuild_if_due). With wrapper=True
(the default) the module owns its residual: y = x + scale * tiles(LayerNorm(x)) (learnable
per-channel scale); with wrapper=False it is a plain FFN like the flat ones (the block adds its norm
and residual), which is what a comparison against flat routing needs.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..quant import ternary_ste_codes
from .ffn import TriXFFN, normalize_rows, select_top
from .routing import RoutingInfo, switch_balance_loss


def balanced_clusters(signatures: torch.Tensor, clusters: int, seed: int) -> torch.Tensor:
    """Cluster id [T] (long) of each signature [T, d] by libtrix's balanced k-means (fixed seed)."""
    from .. import memory

    sig = signatures.detach().to(torch.int8).cpu().contiguous()
    res = memory.balanced_kmeans(sig, int(clusters), int(seed))
    assign = res[0] if isinstance(res, tuple) else getattr(res, "assignment", res)
    return torch.as_tensor(assign).long().reshape(-1)


class HierarchicalTriXFFN(TriXFFN):
    """Two-level routing over T tiles in C clusters (C = 0: round(sqrt(T))): the top_p clusters by
    cluster signature, then the top_k best tiles among their members (gate 1 each, as flat top-k;
    a slot stays -1 when the searched clusters hold fewer than top_k tiles).
    rebuild_every: training calls between hierarchy rebuilds (0: never after init). Other arguments as
    TriXFFN; train_mode is "sparse". aux adds "cluster_balance" (balance at the cluster level, weight
    cluster_balance_coef; None: balance_coef)."""

    residual = True  # y = x + scale * tiles(norm(x)): the block must not add it again
    _flat_packed_path = False

    def __init__(self, d_model: int, tiles: int = 16, expansion: int = 4, clusters: int = 0, top_p: int = 1,
                 rebuild_every: int = 100, balance_coef: float = 0.01, diversity_coef: float = 0.01,
                 kmeans_seed: int = 0, residual: bool = True, wrapper: bool = True,
                 cluster_balance_coef: Optional[float] = None, **kw) -> None:
        if kw.get("train_mode", "sparse") != "sparse":
            raise ValueError(f"HierarchicalTriXFFN: argument 'train_mode' must be 'sparse', got {kw['train_mode']!r}")
        super().__init__(d_model, tiles, expansion, balance_coef=balance_coef, diversity_coef=diversity_coef, **kw)
        c = clusters if clusters > 0 else max(1, round(math.sqrt(tiles)))
        if not 1 <= c <= tiles:
            raise ValueError(f"HierarchicalTriXFFN: argument 'clusters' must be in [1, tiles={tiles}], got {clusters}")
        if not 1 <= top_p <= c:
            raise ValueError(f"HierarchicalTriXFFN: argument 'top_p' must be in [1, clusters={c}], got {top_p}")
        self.clusters, self.top_p, self.rebuild_every, self.kmeans_seed = c, top_p, rebuild_every, kmeans_seed
        self.wrapper = wrapper
        self.residual = residual and wrapper
        self.cluster_balance_coef = self.balance_coef if cluster_balance_coef is None else cluster_balance_coef
        self._memory = None  # a libtrix SignatureMemory over the packed signatures (pack() builds it)
        self.norm = nn.LayerNorm(d_model) if wrapper else None
        self.out_scale = nn.Parameter(torch.ones(d_model)) if wrapper else None
        self.register_buffer("cluster_of", torch.zeros(tiles, dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        # Set by a compiled forward when a rebuild is due (the k-means runs on the host, outside the
        # graph); rebuild_if_due() applies it. Not saved: a loaded module has nothing pending.
        self.register_buffer("rebuild_pending", torch.zeros((), dtype=torch.bool), persistent=False)
        self.rebuild()

    _derived = TriXFFN._derived + ("_memory", "_cluster_sig", "_cluster_sig_packed")

    # ---------------------------------------------------------------- packed inference
    def pack(self) -> "HierarchicalTriXFFN":
        """Packs the tiles and loads their signatures into a libtrix SignatureMemory with this module's
        clusters, so packed emergent routing scores top_p clusters plus their members, not all T tiles."""
        super().pack()
        if self._packed[2].dtype != torch.int8:  # float signatures (mean_signature) route flat, no tree
            return self
        from ..memory import SignatureMemory

        mem = SignatureMemory.from_signatures(self._packed[2].numpy())
        # the tree ranks clusters by the module's own cluster signatures: the routing it trained with
        mem.build_from_assignment(self.cluster_of.cpu().numpy(), self.clusters, sign_routes=True)
        self._memory = mem
        self._cluster_sig = self.cluster_signatures(self._packed[2].float())
        self._cluster_sig_packed = ops.pack_int8(self._cluster_sig.to(torch.int8).contiguous())
        return self

    def unpack(self) -> "HierarchicalTriXFFN":
        self._memory = None
        return super().unpack()

    def train(self, mode: bool = True) -> "HierarchicalTriXFFN":
        if mode:
            self._memory = None
        return super().train(mode)

    def _route_packed(self, x: torch.Tensor):
        """Tree lookup in libtrix: the same clusters and signatures as the unpacked path, so the same
        routing up to float summation order. scores is None: only the searched tiles are scored."""
        xn = normalize_rows(x)
        res = self._memory.search(xn.detach().contiguous().numpy(), k=self.top_k, probes=self.top_p)
        tile = torch.from_numpy(res.ids).long()
        return tile, None, self._best_cluster(xn, tile), None, xn, self._scored_per_input()

    def _scored_per_input(self) -> float:
        """Cluster signatures plus the member tiles of top_p clusters (the largest ones: an upper bound
        for unbalanced clusters; balanced k-means keeps them within one of T/C)."""
        sizes = torch.bincount(self.cluster_of, minlength=self.clusters).sort(descending=True).values
        return float(self.clusters + int(sizes[: self.top_p].sum()))

    def _best_cluster(self, xn: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
        """RoutingInfo.cluster as the unpacked path reports it: the best-scoring cluster. With one probe
        that is the chosen tile's cluster; with more, the C = sqrt(T) cluster signatures are scored."""
        if self.top_p == 1:
            return self.cluster_of[tile[:, 0].clamp(min=0)]
        return select_top(self._scores(xn, self._cluster_sig, self._cluster_sig_packed), 1)[:, 0]

    @torch.no_grad()
    def _forward_tree(self, x2: torch.Tensor, tok: Optional[torch.Tensor], shape):
        """Packed emergent inference: the unpacked eval path's operations (LayerNorm, libtrix tree
        lookup, libtrix tiled FFN, scaled residual) without autograd bookkeeping."""
        pup, pdown = self._packed_np[0], self._packed_np[1]
        hin = self._pre(x2).contiguous()
        tile, _, cluster, _, _, scored = self._route_packed(hin)
        y = ops.tiled_ffn(hin.numpy(), pup, pdown, self.tiles, tile.to(torch.int32).numpy(), None, self.activation)
        y = self._post(x2, torch.from_numpy(y))
        counts = torch.bincount(tile[tile >= 0], minlength=self.tiles)
        self._telemetry.record(counts, hin, tok)
        zero = x2.new_zeros(())
        aux = {"balance": zero, "diversity": zero, "cluster_balance": zero}
        return y.reshape(shape), RoutingInfo(tile, cluster, None, counts, scored), aux

    @torch.no_grad()
    def rebuild(self) -> None:
        """Recluster the tiles from their current signatures (deterministic: fixed seed)."""
        self.cluster_of.copy_(balanced_clusters(self.signatures(), self.clusters, self.kmeans_seed))
        if self._memory is not None:  # packed: the tree must follow the new clusters
            self.pack()

    def cluster_signatures(self, sig: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[C, d]: sign of the sum of each cluster's member tile signatures."""
        sig = self.routing_signatures() if sig is None else sig
        one_hot = F.one_hot(self.cluster_of, self.clusters).to(sig.dtype)  # [T, C]
        return torch.sign(one_hot.t() @ sig)

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.norm is not None else x

    def _post(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.out_scale is not None:
            y = y * self.out_scale
        return x + y if self.residual else y

    def _route(self, x: torch.Tensor, token_ids: Optional[torch.Tensor]):
        mode = self._mode()
        if mode == "emergent" and self._memory is not None and self.bias_rate == 0 and x.dtype == torch.float32:
            return self._route_packed(x)
        if mode != "emergent":
            return super()._route(x, token_ids)
        xn = normalize_rows(x)
        sig = self._packed[2].float() if self._packed is not None else self.routing_signatures()
        csig = self.cluster_signatures(sig)
        cscores = self._scores(xn, csig, None, ternary=True)  # signs of sums: always ternary
        best_c = select_top(cscores, self.top_p)  # [N, p]
        # what the method guarantees under torch.compile (no data-dependent check in the graph)
        ternary = (self.routing != "mean_signature") if torch.compiler.is_compiling() else None
        scores = self._scores(xn, sig, None if self._packed is None else ops.pack_int8(self._packed[2]), ternary)
        allowed = (self.cluster_of[None, None, :] == best_c[:, :, None]).any(1)  # [N, T]
        masked = scores.masked_fill(~allowed, float("-inf"))
        sel = masked + self.select_bias.to(scores.dtype) if self.bias_rate > 0 else masked
        tile = select_top(sel, self.top_k)
        if self.top_k > 1:  # fewer member tiles than top_k in the searched clusters: unused slots (-1)
            tile = tile.masked_fill(torch.isinf(masked.gather(1, tile)), -1)
        probs = self._probs(xn, "emergent") if self.training or self.gate_rule == "prob" else None
        if torch.compiler.is_compiling():
            # a graph cannot return a data-dependent constant: the bound balanced clusters keep (no
            # cluster holds more than ceil(T / C) tiles), exact when C divides T
            scored = float(self.clusters + self.top_p * -(-self.tiles // self.clusters))
        else:
            scored = self.clusters + float(allowed.sum(1, dtype=torch.float32).mean())
        return tile, scores, best_c[:, 0], probs, xn, scored

    def _extra_aux(self, aux: Dict[str, torch.Tensor], xn: torch.Tensor, tile: torch.Tensor,
                   cluster: Optional[torch.Tensor]) -> None:
        aux["cluster_balance"] = xn.new_zeros(())
        if self.cluster_balance_coef > 0 and cluster is not None and self.clusters > 1:
            q = ternary_ste_codes(self.up, self.quant, self._up_codes()).view(self.tiles, self.hidden, self.d_model).sum(1)
            member = F.one_hot(self.cluster_of, self.clusters).to(q.dtype)
            soft = (member.t() @ q) / math.sqrt(self.hidden)  # STE cluster signatures: value irrelevant, gradient real
            csig = soft + (self.cluster_signatures() - soft).detach()
            p = F.softmax(xn.detach() @ csig.t() / self.temperature, dim=-1)
            aux["cluster_balance"] = self.cluster_balance_coef * switch_balance_loss(p, cluster[:, None], self.clusters)

    def _aux(self, hin, xn, tile, probs, cluster):
        aux = super()._aux(hin, xn, tile, probs, cluster)
        aux.setdefault("cluster_balance", hin.new_zeros(()))
        return aux

    def forward(self, x: torch.Tensor, token_ids: Optional[torch.Tensor] = None):
        if x.shape[-1] == self.d_model:
            self._sync_auto_pack(x)
        if (self._memory is not None and not self.training and self._mode() == "emergent" and self.bias_rate == 0
                and x.dtype == torch.float32 and x.shape[-1] == self.d_model):
            tok = None if token_ids is None else token_ids.reshape(-1)
            return self._forward_tree(x.reshape(-1, self.d_model), tok, x.shape)
        out = super().forward(x, token_ids)
        if self.training:
            self.calls += 1
            if self.rebuild_every > 0 and torch.compiler.is_compiling():  # left to rebuild_if_due()
                self.rebuild_pending.copy_(torch.remainder(self.calls, self.rebuild_every) == 0)
            elif self.rebuild_every > 0 and int(self.calls) % self.rebuild_every == 0:
                self.rebuild()
        return out

    def rebuild_if_due(self) -> bool:
        """Rebuilds the hierarchy if a compiled training forward marked it due (every rebuild_every
        calls); returns whether it did. An eager forward rebuilds by itself, right after computing its
        output. A compiled one (torch.compile, torch.export) cannot run the host-side k-means, so it
        only marks the rebuild; a training loop over a compiled model applies it by calling this, or
        TriXLM.rebuild_due(), after the forward and before the optimizer step. Called there, it
        rebuilds from the same weights as the eager forward would, so both train the same."""
        if not bool(self.rebuild_pending):
            return False
        self.rebuild_pending.fill_(False)
        self.rebuild()
        return True
