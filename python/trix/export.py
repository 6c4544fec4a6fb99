"""`trix export CKPT -o model.trixm`: a checkpoint of `trix train` / `trix validate` as one .trixm file
(docs/model_format.md) that libtrix runs without Python (trix_generate, trix::Model, trix.Model).

Every ternary matrix is packed exactly as the module's own ``pack()`` does (the same codes and
scales), and the routing state is what packed inference uses (signatures, clusters, gate, hash table,
select bias), so the engine routes as the packed torch path does. Imports torch (it reads checkpoints).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from . import _C

Tensor = Tuple[str, np.ndarray, int, np.ndarray]
_NO_SCALES = np.zeros(0, dtype=np.float32)
# The routing methods of trix::Model (libtrix/include/trix/model.h), in its numbering.
_C_ROUTINGS = ("emergent", "learned", "random", "hash", "dense", "random_signatures", "mean_signature", "autonomy")


def _f32(name: str, t) -> Tensor:
    a = np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32)
    return (name, a, int(a.shape[1]) if a.ndim == 2 else 1, _NO_SCALES)


def _i32(name: str, t) -> Tensor:
    a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.int32))
    return (name, a, 1, _NO_SCALES)


def _ternary(name: str, packed) -> Tensor:
    p = packed.numpy()
    return (name, np.ascontiguousarray(p.data), int(p.cols), np.ascontiguousarray(p.scales, dtype=np.float32))


def _norm(prefix: str, ln) -> List[Tensor]:
    return [_f32(prefix + ".weight", ln.weight), _f32(prefix + ".bias", ln.bias)]


def _linear(name: str, lin) -> Tuple[Tensor, bool]:
    """(tensor, int8 activations) of an attention projection: float nn.Linear or TriXLinear."""
    from .autograd import pack_weight
    from .nn import TriXLinear

    if lin.bias is not None:
        raise ValueError(f"trix export: {name} has a bias; the model format has none for attention")
    if isinstance(lin, TriXLinear):
        return _ternary(name, pack_weight(lin.weight, lin.quant)), bool(lin.act_quant)
    return _f32(name, lin.weight), False


def _ffn_tensors(p: str, ffn, mode: str) -> List[Tensor]:
    """Tensors of one tiled FFN under inference routing `mode`, as its pack() caches them."""
    import torch

    from .autograd import pack_weight
    from .nn import HierarchicalTriXFFN
    from . import ops

    out = [_ternary(p + "up", pack_weight(ffn.up, ffn.quant)), _ternary(p + "down", pack_weight(ffn.down, ffn.quant))]
    if getattr(ffn, "norm", None) is not None and hasattr(ffn, "out_scale"):
        out += _norm(p + "norm", ffn.norm) + [_f32(p + "out_scale", ffn.out_scale)]
    if mode in ("emergent", "random_signatures"):
        sig = ffn.routing_signatures().to(torch.int8).cpu().contiguous()
        out.append(_ternary(p + "signatures", ops.pack_int8(sig.numpy())))
        if isinstance(ffn, HierarchicalTriXFFN) and mode == "emergent":  # the tree; other methods route flat
            out.append(_i32(p + "cluster_of", ffn.cluster_of))
    elif mode == "mean_signature":
        out.append(_f32(p + "signatures", ffn.routing_signatures()))
    elif mode == "learned":
        out.append(_f32(p + "gate", ffn.gate.weight))
    elif mode == "hash":
        out.append(_i32(p + "hash", ffn.hash_table))
    if ffn.bias_rate > 0:
        out.append(_f32(p + "select_bias", ffn.select_bias))
    return out


def model_tensors(model) -> Tuple[Dict[str, Any], List[Tensor]]:
    """(config dict for trix._C.save_model, tensors) of a trix.nn.TriXLM in eval mode."""
    import torch.nn as nn

    from .nn import TriXFFN, TriXLinear

    cfg = model.cfg
    blocks = list(model.blocks)
    ffns = [b.ffn for b in blocks]
    tiled = isinstance(ffns[0], TriXFFN)
    if any(isinstance(f, TriXFFN) != tiled for f in ffns):
        raise ValueError("trix export: every block must have the same FFN kind")
    modes = {f._mode() for f in ffns} if tiled else {"dense"}
    if len(modes) != 1:
        raise ValueError(f"trix export: every block must route the same way, got {sorted(modes)}")
    mode = modes.pop()
    if mode not in _C_ROUTINGS:
        raise ValueError(f"trix export: inference routing {mode!r} is not supported by the engine")
    for f in ffns if tiled else []:
        if getattr(f, "gate_rule", "unit") != "unit":
            raise ValueError(f"trix export: gate={f.gate_rule!r} is not supported by the engine (gate 'unit' is)")
        if getattr(f, "inference_scale", 1.0) != 1.0:
            raise ValueError("trix export: a rescaled inference routing override (Option A) is not supported")
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) != 1:
        raise ValueError(f"trix export: every LayerNorm must have the same eps, got {sorted(eps)}")
    attn_ternary = isinstance(blocks[0].attn.qkv, TriXLinear)
    f0 = ffns[0]
    config: Dict[str, Any] = dict(
        vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
        d_model=cfg.d_model, ffn=cfg.ffn, routing=mode if tiled else "dense",
        tiles=f0.tiles if tiled else 1, hidden=f0.hidden if tiled else ffns[0][0].out_features,
        top_k=f0.top_k if tiled else 1, clusters=getattr(f0, "clusters", 0), top_p=getattr(f0, "top_p", 0),
        activation=f0.activation if tiled else "gelu", norm_eps=float(eps.pop()),
        ternary_attention=attn_ternary, attention_int8=False, block_norm2=blocks[0].ln2 is not None,
        ffn_norm=tiled and getattr(f0, "norm", None) is not None and hasattr(f0, "out_scale"),
        select_bias=tiled and f0.bias_rate > 0)
    tensors = [_f32("tok_emb", model.tok_emb.weight), _f32("pos_emb", model.pos_emb.weight)]
    int8 = set()
    for i, b in enumerate(blocks):
        p = f"blocks.{i}."
        tensors += _norm(p + "ln1", b.ln1)
        for name, lin in (("attn.qkv", b.attn.qkv), ("attn.proj", b.attn.proj)):
            t, q8 = _linear(p + name, lin)
            tensors.append(t)
            int8.add(q8)
        if b.ln2 is not None:
            tensors += _norm(p + "ln2", b.ln2)
        if tiled:
            tensors += _ffn_tensors(p + "ffn.", b.ffn, mode)
        else:
            fc1, act, fc2 = b.ffn
            if not isinstance(act, nn.GELU) or act.approximate != "none":
                raise ValueError("trix export: the float FFN must be Linear, GELU (exact), Linear")
            tensors += [_f32(p + "ffn.fc1.weight", fc1.weight), _f32(p + "ffn.fc1.bias", fc1.bias),
                        _f32(p + "ffn.fc2.weight", fc2.weight), _f32(p + "ffn.fc2.bias", fc2.bias)]
    if len(int8) != 1:
        raise ValueError("trix export: attention layers must all use int8 activations or none")
    config["attention_int8"] = int8.pop()
    tensors += _norm("ln_f", model.ln_f) + [_f32("head", model.head.weight)]
    return config, tensors


def export_model(model, vocab_chars: str, path) -> Path:
    """Write a trix.nn.TriXLM (any mode; it is put in eval mode) and its vocabulary to path (.trixm)."""
    model.eval()
    if len(vocab_chars) != model.cfg.vocab_size:
        raise ValueError(f"trix export: the vocabulary has {len(vocab_chars)} characters, the model {model.cfg.vocab_size}")
    config, tensors = model_tensors(model)
    _C.save_model(str(path), config, [ord(c) for c in vocab_chars], tensors)
    return Path(path)


def export_checkpoint(checkpoint, path) -> Path:
    """A ckpt.pt of trix train / trix validate -> path (.trixm)."""
    from .nn import TriXLM
    from .train import load_checkpoint

    model, chars, _ = load_checkpoint(Path(checkpoint), "cpu")
    if not isinstance(model, TriXLM):
        raise ValueError(f"trix export: the checkpoint holds a {type(model).__name__}, only trix.nn.TriXLM is supported")
    return export_model(model, chars, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="ckpt.pt written by trix train or trix validate")
    p.add_argument("-o", "--output", required=True, help="the .trixm file to write")


def run(args: argparse.Namespace) -> int:
    try:
        out = export_checkpoint(args.checkpoint, args.output)
    except (FileNotFoundError, ValueError) as e:
        print(f"trix export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0
