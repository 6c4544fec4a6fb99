"""Keys that are signatures of trained tiles (docs/memory.md "Trained-tile keys").

Trains a TriXLM on TinyShakespeare whose sparse FFNs have many single-row tiles (tiles = hidden width,
the single-neuron experts of PEER, He 2024), top-1 emergent routing with aux-loss-free bias balancing,
(no diversity loss), and saves every layer's tile signatures (libtrix's: the sign of each tile's ternary up rows) as one
int8 [layers * tiles, d] array, with how many times each tile was routed.

    python -m trix.bench.trained_keys --out runs/trained_keys.npz [--tiles 4096 --layers 4 --steps 300]
    python -m trix.bench.memory_compare --keys trained --keys-file runs/trained_keys.npz
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import List

import numpy as np


def train_keys(tiles: int, layers: int, d: int, steps: int, batch: int, block: int, seed: int,
               data_path: str = None):
    import torch

    from ..data import batch_offsets, gather_windows, load_dataset
    from ..nn import TriXLM, TriXLMConfig
    from ..train import model_loss

    torch.manual_seed(seed)
    data = load_dataset(data_path)
    cfg = TriXLMConfig(vocab_size=data.vocab.size, block_size=block, n_layer=layers, n_head=d // 64, d_model=d,
                       ffn="sparse", tiles=tiles, expansion=tiles // d, bias_rate=1e-3, seed=seed,
                       diversity_coef=0.0)  # its T x T signature Gram took half of each step at 4096 tiles
    model = TriXLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    routed = np.zeros((layers, tiles), np.int64)
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = gather_windows(data.train, batch_offsets(len(data.train), block, batch, gen), block)
        infos: List = []
        loss, ce, _ = model_loss(model, x, y, infos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for layer, info in enumerate(infos):
            routed[layer] += info.counts.numpy()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step}: loss {float(ce.detach()):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    sig = np.concatenate([b.ffn.signatures().detach().numpy().astype(np.int8) for b in model.blocks])
    meta = dict(tiles=tiles, layers=layers, d=d, steps=steps, batch=batch, block=block, seed=seed,
                final_train_ce=round(float(ce.detach()), 4), train_seconds=round(time.perf_counter() - t0, 1),
                data=data.describe())
    return sig, routed.reshape(-1), meta


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the .npz to write (keys, routed, meta)")
    ap.add_argument("--tiles", type=int, default=4096, help="tiles per layer (a multiple of --d)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="a UTF-8 text instead of TinyShakespeare")
    a = ap.parse_args(argv)
    if a.tiles < a.d or a.tiles % a.d or a.d % 64:
        ap.error(f"--tiles must be a multiple of --d and --d a multiple of 64, got {a.tiles} and {a.d}")
    from ..train import atomic_write_bytes

    sig, routed, meta = train_keys(a.tiles, a.layers, a.d, a.steps, a.batch, a.block, a.seed, a.data)
    meta.update(distinct_keys=int(len(np.unique(sig, axis=0))), never_routed=int((routed == 0).sum()),
                nonzero_fraction=round(float((sig != 0).mean()), 4))
    print(meta, flush=True)
    buf = io.BytesIO()
    np.savez(buf, keys=sig, routed=routed, meta=np.array(json.dumps(meta)))
    atomic_write_bytes(Path(a.out), buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
