"""TriXBlock and TriXLM: a character-level language model with TriX FFNs (docs/design/lm_contract.md)."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ffn import TriXFFN, SparseTriXFFN, _choice
from .hierarchical import HierarchicalTriXFFN
from .linear import TriXLinear
from .routing import GATE_RULES, INFERENCE_OVERRIDES, ROUTING_METHODS, RoutingInfo

FFN_KINDS = ("float", "tiled", "sparse", "hierarchical")
Cache = Tuple[torch.Tensor, torch.Tensor]


@dataclass
class TriXLMConfig:
    """See docs/design/lm_contract.md. The total FFN hidden width is expansion * d_model whatever tiles is."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    ffn: str = "sparse"
    routing: str = "emergent"
    tiles: int = 4
    expansion: int = 4
    top_k: int = 1
    clusters: int = 0
    top_p: int = 1
    ternary_attention: bool = False
    train_mode: str = "sparse"
    balance_coef: float = 0.01
    diversity_coef: float = 0.01
    activation: str = "gelu"
    ema_decay: float = 0.0
    bias_rate: float = 0.0
    rebuild_every: int = 100
    gate: str = "unit"
    hier_wrapper: bool = True
    cluster_balance_coef: Optional[float] = None
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("TriXLMConfig", "ffn", self.ffn, FFN_KINDS)
        _choice("TriXLMConfig", "routing", self.routing, ROUTING_METHODS)
        _choice("TriXLMConfig", "gate", self.gate, GATE_RULES)
        if self.d_model % self.n_head:
            raise ValueError(f"TriXLMConfig: argument 'n_head' must divide d_model={self.d_model}, got {self.n_head}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model", "tiles", "expansion"):
            if getattr(self, name) < 1:
                raise ValueError(f"TriXLMConfig: argument '{name}' must be >= 1, got {getattr(self, name)}")


def _linear(cfg: TriXLMConfig, i: int, o: int) -> nn.Module:
    return TriXLinear(i, o, bias=False) if cfg.ternary_attention else nn.Linear(i, o, bias=False)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional KV cache. x [B, T, d] -> [B, T, d]."""

    def __init__(self, cfg: TriXLMConfig) -> None:
        super().__init__()
        self.n_head, self.d = cfg.n_head, cfg.d_model
        self.qkv = _linear(cfg, cfg.d_model, 3 * cfg.d_model)
        self.proj = _linear(cfg, cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: Optional[Cache] = None) -> Tuple[torch.Tensor, Cache]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        if cache is None or t > 1:
            past = k.shape[2] - t  # new queries see all cached keys and the causal part of the new ones
            mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(past) if past else None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, d)), (k, v)


def make_ffn(cfg: TriXLMConfig, layer: int) -> nn.Module:
    """The FFN of one block for cfg.ffn."""
    d, seed = cfg.d_model, cfg.seed * 1000 + layer
    if cfg.ffn == "float":
        return nn.Sequential(nn.Linear(d, cfg.expansion * d), nn.GELU(), nn.Linear(cfg.expansion * d, d))
    common = dict(activation=cfg.activation, routing=cfg.routing, vocab_size=cfg.vocab_size,
                  balance_coef=cfg.balance_coef, diversity_coef=cfg.diversity_coef, ema_decay=cfg.ema_decay,
                  bias_rate=cfg.bias_rate, seed=seed, gate=cfg.gate)
    if cfg.ffn == "tiled":
        return TriXFFN(d, cfg.tiles, cfg.expansion, train_mode=cfg.train_mode, top_k=cfg.top_k, **common)
    if cfg.ffn == "sparse":
        return SparseTriXFFN(d, cfg.tiles, cfg.expansion, top_k=cfg.top_k, **common)
    return HierarchicalTriXFFN(d, cfg.tiles, cfg.expansion, clusters=cfg.clusters, top_p=cfg.top_p, top_k=cfg.top_k,
                               rebuild_every=cfg.rebuild_every, kmeans_seed=seed, wrapper=cfg.hier_wrapper,
                               cluster_balance_coef=cfg.cluster_balance_coef, **common)


class TriXBlock(nn.Module):
    """Pre-norm block: x + attn(ln1(x)), then x + ffn(ln2(x)) (a hierarchical FFN owns its norm and
    residual, so it gets x itself: the residual is added exactly once).
    forward(x [B, T, d], token_ids [B, T], cache) -> (x, RoutingInfo or None, aux, cache)."""

    def __init__(self, cfg: TriXLMConfig, layer: int = 0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ffn = make_ffn(cfg, layer)
        self.ln2 = None if getattr(self.ffn, "residual", False) else nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, token_ids: Optional[torch.Tensor] = None, cache: Optional[Cache] = None):
        a, cache = self.attn(self.ln1(x), cache)
        x = x + self.drop(a)
        if isinstance(self.ffn, nn.Sequential):
            return x + self.drop(self.ffn(self.ln2(x))), None, {}, cache
        if self.ln2 is None:
            y, info, aux = self.ffn(x, token_ids)
            return y, info, aux, cache
        y, info, aux = self.ffn(self.ln2(x), token_ids)
        return x + self.drop(y), info, aux, cache


class TriXLM(nn.Module):
    """Character-level LM: token + position embeddings, n_layer TriXBlocks, final norm, head.
    forward(idx LongTensor [B, T]) -> (logits [B, T, vocab], [RoutingInfo or None per block], aux dict)."""

    AUX_KEYS = ("balance", "diversity", "cluster_balance")

    def __init__(self, cfg: TriXLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):  # default initialisers must not move the caller's RNG
            self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
            self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
            self.blocks = nn.ModuleList([TriXBlock(cfg, i) for i in range(cfg.n_layer)])
            self.ln_f = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        seeded_init_(self, cfg.seed, cfg.n_layer)

    def _tiled(self) -> List[TriXFFN]:
        return [b.ffn for b in self.blocks if isinstance(b.ffn, TriXFFN)]

    def forward(self, idx: torch.Tensor, caches: Optional[List[Cache]] = None, return_caches: bool = False):
        if idx.dim() != 2:
            raise ValueError(f"TriXLM.forward: argument 'idx' must be [B, T], got shape {list(idx.shape)}")
        b, t = idx.shape
        start = 0 if caches is None else caches[0][0].shape[2]
        if start + t > self.cfg.block_size:
            raise ValueError(f"TriXLM.forward: sequence length {start + t} exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        infos: List[Optional[RoutingInfo]] = []
        aux: Dict[str, torch.Tensor] = {k: x.new_zeros(()) for k in self.AUX_KEYS}
        new_caches: List[Cache] = []
        for i, blk in enumerate(self.blocks):
            x, info, a, c = blk(x, idx, None if caches is None else caches[i])
            infos.append(info)
            new_caches.append(c)
            for k, v in a.items():
                aux[k] = aux[k] + v if k in aux else v
        logits = self.head(self.ln_f(x))
        if return_caches:
            return logits, infos, aux, new_caches
        return logits, infos, aux

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: Optional[int] = None) -> torch.Tensor:
        """Sample max_new_tokens after idx [B, T] with a KV cache; returns [B, T + max_new_tokens].
        The context is the last block_size tokens, as without a cache (past it, the window is re-encoded)."""
        was_training = self.training
        self.eval()
        bs = self.cfg.block_size
        out = idx
        logits, _, _, caches = self(out[:, -bs:], return_caches=True)
        for _ in range(max_new_tokens):
            nxt = logits[:, -1, :] / max(temperature, 1e-8)
            if top_k is not None:
                v, _ = torch.topk(nxt, min(top_k, nxt.shape[-1]))
                nxt = nxt.masked_fill(nxt < v[:, [-1]], float("-inf"))
            tok = torch.multinomial(F.softmax(nxt, dim=-1), 1)
            out = torch.cat([out, tok], 1)
            if caches[0][0].shape[2] < bs:
                logits, _, _, caches = self(tok, caches, return_caches=True)
            else:
                logits, _, _, caches = self(out[:, -bs:], return_caches=True)
        self.train(was_training)
        return out

    def param_counts(self) -> Dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        emb = self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return {"total": total, "non_embedding": total - emb,
                "routing": sum(f.routing_parameters() for f in self._tiled())}

    def set_inference_routing(self, mode: Optional[str], rescale: bool = False) -> None:
        """Eval-time routing override for every tiled FFN (Option A): "emergent" | "random" | "first" | None.
        rescale: multiply the chosen tile's output by tiles / top_k (the magnitude all tiles had)."""
        _choice("TriXLM.set_inference_routing", "mode", mode, INFERENCE_OVERRIDES)
        for f in self._tiled():
            f.inference_routing = mode
            f.inference_scale = f.tiles / f.top_k if rescale and mode is not None else 1.0

    def pack(self) -> "TriXLM":
        """Packed inference through libtrix for every ternary layer (eval mode only)."""
        if self.training:
            raise RuntimeError("TriXLM.pack: call model.eval() first (packed inference has no gradient)")
        for m in self.modules():
            if isinstance(m, (TriXLinear, TriXFFN)):
                m.pack()
        return self

    def unpack(self) -> "TriXLM":
        for m in self.modules():
            if isinstance(m, (TriXLinear, TriXFFN)):
                m.unpack()
        return self

    def rebuild_due(self) -> int:
        """Applies the hierarchy rebuilds that compiled forwards marked due (HierarchicalTriXFFN
        .rebuild_if_due); returns how many ran. A no-op after eager forwards, which rebuild themselves.
        A training loop over a torch.compile'd model calls it after each forward, before the
        optimizer step."""
        return sum(int(m.rebuild_if_due()) for m in self.modules() if hasattr(m, "rebuild_if_due"))

    def set_auto_pack(self, on: bool) -> "TriXLM":
        """Whether eval calls without autograd pack the ternary layers automatically (default on; see
        trix.nn.packing.Packable). Off: they run the general unpacked path (a reference, or to debug)."""
        for m in self.modules():
            if isinstance(m, (TriXLinear, TriXFFN)):
                m.auto_pack = bool(on)
        return self

    def telemetry(self) -> List[Dict[str, object]]:
        """One dict per block (empty for a float FFN): usage, entropy, dead_tiles, signature_diversity, churn."""
        return [b.ffn.telemetry() if isinstance(b.ffn, TriXFFN) else {} for b in self.blocks]


def _param_seed(seed: int, name: str) -> int:
    """A 63-bit seed for one named parameter: stable across runs, processes and model variants."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") >> 1


def seeded_init_(model: nn.Module, seed: int, n_layer: int) -> None:
    """Initialise every parameter from its own generator, seeded by (seed, parameter name).

    Two models with the same seed therefore share every parameter they both have (same name and shape)
    whatever else differs (a learned gate, another FFN kind), and a different seed changes them all.
    Float parts follow nanoGPT (normal 0.02, residual projections 0.02 / sqrt(2 n_layer), zero biases,
    LayerNorm 1 / 0); tile weights are normal with the module's init_std.
    """
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            g = torch.Generator().manual_seed(_param_seed(seed, full))
            with torch.no_grad():
                if isinstance(m, nn.LayerNorm) or pname == "out_scale":
                    p.fill_(1.0 if pname in ("weight", "out_scale") else 0.0)
                elif pname == "bias":
                    p.zero_()
                elif isinstance(m, TriXFFN):
                    p.copy_(torch.randn(p.shape, generator=g) * m.init_std)
                else:  # nn.Linear, nn.Embedding, TriXLinear weights
                    residual_proj = full.endswith("attn.proj.weight") or full.endswith("ffn.2.weight")
                    std = 0.02 / math.sqrt(2 * n_layer) if residual_proj else 0.02
                    p.copy_(torch.randn(p.shape, generator=g) * std)
    for m in model.modules():
        if isinstance(m, HierarchicalTriXFFN):
            m.rebuild()  # the clusters follow the new tile weights
