"""Whole-model speed: the C++ engine (trix_generate --bench) against the same model in torch float32
eager and against the Python packed path (TriXLM.pack()), one thread and two, in one run.

    python -m trix.bench.model --out runs/bench-model [--quick]

Models (weights random, seeded): the study's (d 128, 4 layers, 4 heads, block 64, sparse emergent,
4 tiles, float attention) and a larger one (d 1024, 12 layers, 16 heads, block 512, sparse emergent,
8 tiles, ternary attention). torch float32 eager is the same network with every ternary matrix
dequantized to float32 (scale * q) in nn.Linear / plain matmuls, routed by the same rule.
Measures: tokens/s of generation at batch 1 (tg, KV cache, greedy) and of prompt processing (pp:
512 tokens as sequences of min(512, block_size)), and the peak RSS of a process that loads the model
and runs it (each in its own process).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # TinyShakespeare's 65
MODELS = {
    "study": dict(block_size=64, n_layer=4, n_head=4, d_model=128, ffn="sparse", tiles=4),
    "d1024": dict(block_size=512, n_layer=12, n_head=16, d_model=1024, ffn="sparse", tiles=8, ternary_attention=True),
}


def build(name: str):
    import torch

    from trix.nn import TriXLM, TriXLMConfig

    torch.manual_seed(0)
    m = TriXLM(TriXLMConfig(vocab_size=len(CHARS), seed=0, **MODELS[name]))
    return m.eval()


def float_copy(model):
    """The same network in torch float32 eager: ternary matrices dequantized, routing by the same
    signatures (argmax of normalize(x) . sig^T), only the routed tile computed."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from trix.nn import TriXFFN, TriXLinear
    from trix.nn.ffn import normalize_rows
    from trix.quant import ternary_codes

    def deq(w, cfg):
        q, s = ternary_codes(w.detach(), cfg)
        return (q * (s[:, None] if s.numel() == q.shape[0] and q.shape[0] != 1 else s)).contiguous()

    class FloatRoutedFFN(nn.Module):
        def __init__(self, f: TriXFFN) -> None:
            super().__init__()
            self.t, self.h, self.d, self.act = f.tiles, f.hidden, f.d_model, f.activation
            self.up = deq(f.up, f.quant).view(f.tiles, f.hidden, f.d_model)
            self.down = deq(f.down, f.quant).view(f.tiles, f.d_model, f.hidden)
            self.sig = f.routing_signatures().float()

        def forward(self, x, token_ids=None):
            shape = x.shape
            x2 = x.reshape(-1, self.d)
            tile = (normalize_rows(x2) @ self.sig.t()).argmax(1)
            y = torch.empty_like(x2)
            for t in tile.unique().tolist():
                rows = tile == t
                hid = F.gelu(x2[rows] @ self.up[t].t()) if self.act == "gelu" else F.relu(x2[rows] @ self.up[t].t())
                y[rows] = hid @ self.down[t].t()
            return y.reshape(shape), None, {}

    for blk in model.blocks:
        for name in ("qkv", "proj"):
            lin = getattr(blk.attn, name)
            if isinstance(lin, TriXLinear):
                new = nn.Linear(lin.in_features, lin.out_features, bias=False)
                with torch.no_grad():
                    new.weight.copy_(deq(lin.weight, lin.quant))
                setattr(blk.attn, name, new)
        blk.ffn = FloatRoutedFFN(blk.ffn)
    return model.eval()


def torch_speed(model, block: int, pp: int, tg: int, reps: int):
    import torch

    with torch.no_grad():
        length = min(pp, block)
        batch = (pp + length - 1) // length
        x = torch.randint(0, len(CHARS), (batch, length))
        model(x[:, :8])  # warm-up
        pps, tgs = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            pps.append(batch * length / (time.perf_counter() - t0))
            n = min(tg, block - 1)
            t0 = time.perf_counter()
            model.generate(torch.zeros(1, 1, dtype=torch.long), n, temperature=1e-8)
            tgs.append(n / (time.perf_counter() - t0))
    return sorted(pps)[len(pps) // 2], sorted(tgs)[len(tgs) // 2]


def peak_rss_mib() -> float:
    """VmHWM of this process (getrusage's maxrss would include the parent's memory at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1.0


def child(args) -> int:
    """One measurement in this process: --child KIND MODEL THREADS; prints a JSON line."""
    import torch

    import trix

    kind, name, threads = args.child[0], args.child[1], int(args.child[2])
    torch.set_num_threads(threads)
    trix.set_num_threads(threads)
    base = peak_rss_mib()
    model = build(name)
    model = float_copy(model) if kind == "torch" else model.pack()
    block = MODELS[name]["block_size"]
    pp, tg = torch_speed(model, block, args.pp, args.tg, args.reps)
    print(json.dumps(dict(kind=kind, model=name, threads=threads, pp=pp, tg=tg, peak_rss_mib=peak_rss_mib(),
                     import_rss_mib=base)))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trix.bench.model", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-model")
    p.add_argument("--models", default="study,d1024")
    p.add_argument("--pp", type=int, default=512)
    p.add_argument("--tg", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    from trix.export import export_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("trix_generate")
    if exe is None:
        print("trix_generate is not on the PATH (pip install . puts it there)", file=sys.stderr)
        return 2
    rows = []
    for name in args.models.split(","):
        path = out / f"{name}.trixm"
        export_model(build(name), CHARS, path)
        for threads in (1, 2):
            for kind in ("torch", "packed"):
                r = subprocess.run([sys.executable, "-m", "trix.bench.model", "--child", kind, name, str(threads),
                                    "--pp", str(args.pp), "--tg", str(args.tg), "--reps", str(args.reps)],
                                   capture_output=True, text=True, check=True)
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
            r = subprocess.run([exe, str(path), "--bench", "--bench-threads", str(threads), "--pp", str(args.pp),
                                "--tg", str(args.tg), "--reps", str(args.reps)], capture_output=True, text=True, check=True)
            vals = {ln.split("|")[2].strip()[:2]: float(ln.split("|")[3]) for ln in r.stdout.splitlines()
                    if ln.startswith("| ") and ln.split("|")[2].strip()[:2] in ("pp", "tg")}
            rss = float(r.stdout.split("peak RSS: ")[1].split()[0])
            rows.append(dict(kind="engine", model=name, threads=threads, pp=vals["pp"], tg=vals["tg"], peak_rss_mib=rss,
                             file_mib=path.stat().st_size / 2**20))
            print(rows[-1], flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
