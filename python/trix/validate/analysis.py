"""Routing statistics: tile usage, class x tile tables, mutual information, entropy, churn.

Everything here reads the model only through the contract: forward() -> (logits, infos, aux) with one
RoutingInfo per block (tile [N, k], counts [T]) and telemetry().
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..data import CHAR_CLASSES


def entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def mutual_information_bits(table: np.ndarray) -> float:
    """I(row; column) in bits from a joint count table."""
    n = table.sum()
    if n == 0:
        return 0.0
    pj = table / n
    return entropy_bits(pj.sum(1)) + entropy_bits(pj.sum(0)) - entropy_bits(pj.reshape(-1))


def _first_tiles(infos) -> List[Optional[np.ndarray]]:
    return [None if info is None else info.tile[:, 0].detach().cpu().numpy().astype(np.int64) for info in infos]


def make_probe(x) -> Callable[[Any], Dict[str, Any]]:
    """probe(model) for trix.train.train: top-1 tile of every probe token per layer, usage and telemetry."""

    def probe(model) -> Dict[str, Any]:
        _, infos, _ = model(x)
        tiles = _first_tiles(infos)
        out: Dict[str, Any] = {"tiles": [None if t is None else t.tolist() for t in tiles],
                               # tiles each token actually used: checks the model honours top_k
                               "active_k": [None if i is None else int(i.tile.shape[1]) for i in infos]}
        usage = []
        for info, t in zip(infos, tiles):
            if info is None:
                usage.append(None)
                continue
            counts = info.counts.detach().cpu().numpy().astype(np.float64)
            usage.append((counts / max(1.0, counts.sum())).tolist())
        out["usage"] = usage
        try:
            tel = model.telemetry()
            out["telemetry"] = [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in (d or {}).items()}
                                for d in tel]
        except (AttributeError, NotImplementedError):
            out["telemetry"] = None
        return out

    return probe


def churn_over_training(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Fraction of probe tokens whose top-1 tile changed since the previous evaluation, per layer."""
    out = []
    prev = None
    for h in history:
        tiles = (h.get("probe") or {}).get("tiles")
        if tiles is None or all(t is None for t in tiles):
            return []
        cur = [np.asarray(t) for t in tiles]
        if prev is not None:
            out.append({"iter": h["iter"], "churn": [float((a != b).mean()) for a, b in zip(prev, cur)]})
        prev = cur
    return out


def class_tile_tables(model, ids: np.ndarray, offsets_list, block_size: int, class_of: np.ndarray,
                      device: str = "cpu") -> Optional[List[np.ndarray]]:
    """Per layer, a [classes, tiles] table counting the top-1 tile chosen for each input character."""
    import torch

    from ..data import gather_windows

    tables: Optional[List[np.ndarray]] = None
    with torch.no_grad():
        for offs in offsets_list:
            x, _ = gather_windows(ids, offs, block_size)
            _, infos, _ = model(x.to(device))
            if all(i is None for i in infos):
                return None
            cls = class_of[x.reshape(-1).numpy()]
            if tables is None:
                tables = [np.zeros((len(CHAR_CLASSES), int(i.counts.numel())), dtype=np.int64) for i in infos]
            for tab, t in zip(tables, _first_tiles(infos)):
                np.add.at(tab, (cls, t), 1)
    return tables


def specialisation_summary(tables: List[np.ndarray]) -> Dict[str, Any]:
    """MI(class; tile), routing entropy, dead tiles and each class's favourite tile, per layer."""
    layers = []
    for tab in tables:
        usage = tab.sum(0) / max(1, tab.sum())
        rows = {}
        for ci, c in enumerate(CHAR_CLASSES):
            n = int(tab[ci].sum())
            if n:
                rows[c] = {"n": n, "top_tile": int(tab[ci].argmax()), "top_share": float(tab[ci].max() / n)}
        layers.append({
            "mi_bits": mutual_information_bits(tab.astype(np.float64)),
            "class_entropy_bits": entropy_bits(tab.sum(1) / max(1, tab.sum())),
            "routing_entropy_bits": entropy_bits(usage),
            "max_entropy_bits": float(np.log2(tab.shape[1])),
            "dead_tiles": int((tab.sum(0) == 0).sum()),
            "usage": usage.tolist(),
            "classes": rows,
            "table": tab.tolist(),
        })
    mis = [l["mi_bits"] for l in layers]
    return {"layers": layers, "mean_mi_bits": float(np.mean(mis)), "max_mi_bits": float(np.max(mis))}
