"""`python -m trix bench --routing`: HierarchicalTriXFFN against flat emergent routing, in wall time.

Both modules are packed (eval, libtrix). Flat (SparseTriXFFN) scores every token against all T tile
signatures; hierarchical routes through a libtrix SignatureMemory: sqrt(T) cluster signatures, then the
members of the best cluster. Each tile keeps h = 8 hidden units (expansion grows with T), one tile per
token. The hierarchical module also pays for its LayerNorm and residual; the routing-only rows time
the lookups alone. Medians, both sides timed in alternation.
"""
from __future__ import annotations

import argparse
import json
import platform
from typing import Dict, List

from .train import _median_times


def bench_routing(tiles_list: List[int], tokens: int, d: int, repeats: int) -> List[Dict[str, float]]:
    import torch

    from trix import ops
    from trix.nn import HierarchicalTriXFFN, SparseTriXFFN
    from trix.nn.ffn import normalize_rows

    rows = []
    x = torch.randn(tokens, d, generator=torch.Generator().manual_seed(0))
    for t in tiles_list:
        expansion = max(1, 8 * t // d)
        flat = SparseTriXFFN(d, tiles=t, expansion=expansion, seed=1).eval().pack()
        hier = HierarchicalTriXFFN(d, tiles=t, expansion=expansion, top_p=1, seed=1).eval().pack()
        xn = normalize_rows(x).numpy()
        sig = flat._packed_np[2]

        def flat_route():
            return ops.top_k(ops.route_scores(xn, sig), 1)

        def hier_route():
            return hier._memory.search(xn, k=1, probes=1)

        with torch.no_grad():
            t_flat, t_hier, r_flat, r_hier = _median_times(
                [lambda: flat(x), lambda: hier(x), flat_route, hier_route], repeats)
        scored = float(hier._memory.search(xn, k=1, probes=1).scored.mean())
        rows.append({"tiles": t, "clusters": hier.clusters, "tokens": tokens, "flat_forward_s": t_flat,
                     "hier_forward_s": t_hier, "flat_route_s": r_flat, "hier_route_s": r_hier,
                     "hier_scored_per_token": scored, "forward_speedup": t_flat / t_hier,
                     "route_speedup": r_flat / r_hier})
    return rows


def run(args: argparse.Namespace) -> int:
    import torch

    import trix

    quick = bool(getattr(args, "quick", False))
    tiles = [16, 64, 256] if quick else [16, 64, 256, 1024, 4096]
    d, repeats = 256, 3 if quick else 7
    print(f"trix {trix.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{trix.get_num_threads()} libtrix threads, {trix.simd_level()}, {platform.machine()}")
    results = {}
    for tokens in ([1, 256] if quick else [1, 4096]):
        rows = bench_routing(tiles, tokens, d, repeats)
        results[tokens] = rows
        print(f"\n{tokens} token(s), d {d}, h 8 per tile, top-1; median ms (flat / hierarchical, speed-up)")
        print(f"{'tiles':>6} {'clusters':>8} {'forward flat':>13} {'hier':>9} {'x':>6}   {'routing flat':>13} "
              f"{'hier':>9} {'x':>6} {'scored/token':>13}")
        for r in rows:
            print(f"{r['tiles']:6d} {r['clusters']:8d} {r['flat_forward_s'] * 1e3:13.3f} {r['hier_forward_s'] * 1e3:9.3f} "
                  f"{r['forward_speedup']:6.2f}   {r['flat_route_s'] * 1e3:13.3f} {r['hier_route_s'] * 1e3:9.3f} "
                  f"{r['route_speedup']:6.2f} {r['hier_scored_per_token']:13.0f}")
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump({"routing": results, "quick": quick}, f, indent=2)
    return 0
