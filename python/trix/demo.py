"""`trix demo`: pack a random matrix, multiply, build a tiled FFN and route inputs to tiles."""
from __future__ import annotations

import argparse

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tiles", type=int, default=4, help="number of tiles (default 4)")
    p.add_argument("--dim", type=int, default=128, help="model width d (default 128)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import trix

    for name in ("tiles", "dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"argument --{name} must be >= 1, got {getattr(args, name)}")

    rng = np.random.default_rng(args.seed)
    d, T, h = args.dim, args.tiles, 2 * args.dim
    w_up = rng.standard_normal((T * h, d)).astype(np.float32)
    up = trix.pack(w_up)
    dense_bytes = w_up.nbytes
    print(f"packed W_up {up.shape}: {up.nbytes} bytes ({dense_bytes / up.nbytes:.1f}x smaller than float32)")
    q = trix.unpack(up)
    print(f"ternary weights: {np.mean(q == -1):.2f} are -1, {np.mean(q == 0):.2f} are 0, {np.mean(q == 1):.2f} are +1")

    x = rng.standard_normal((8, d)).astype(np.float32)
    y = trix.matmul(x, up)
    ref = x @ (q.astype(np.float32) * up.scales).T
    print(f"matmul x[8, {d}] @ W_up^T -> {y.shape}, max |error| vs float reference {np.abs(y - ref).max():.2e}")

    sig = trix.tile_signatures(up, T)
    sig_packed = trix.pack_int8(sig)
    probe = sig.astype(np.float32) + 0.3 * rng.standard_normal((T, d)).astype(np.float32)
    idx, val = trix.route(probe, sig_packed, k=1)
    print(f"signatures [{T}, {d}] read from the weights; a noisy copy of each routes to tile {idx[:, 0].tolist()}")

    down = trix.pack(rng.standard_normal((T * d, h)).astype(np.float32))
    tiles = trix.route(x, sig_packed, k=1)[0]
    out = trix.tiled_ffn(x, up, down, T, tiles)
    print(f"tiled FFN: 8 inputs routed to tiles {tiles[:, 0].tolist()}, each computing 1 of {T} tiles -> {out.shape}")
    return 0
