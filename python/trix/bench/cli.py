"""`trix bench`: dispatches to the kernel, memory or training benchmark."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--memory", action="store_true", help="signature memory: TriX flat/hierarchy vs FAISS")
    group.add_argument("--train", action="store_true", help="training step and packed inference of the modules")
    group.add_argument("--routing", action="store_true", help="HierarchicalTriXFFN vs flat routing, wall time")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--shapes", metavar="MxK,...", help="kernel benchmark shapes (default 4096x4096,2560x6912,1024x1024)")
    p.add_argument("--no-ffn", action="store_true", help="kernel benchmark without the tiled FFN table")


def run(args: argparse.Namespace) -> int:
    if args.json and not Path(args.json).resolve().parent.is_dir():  # fail before the benchmark, not after
        raise FileNotFoundError(f"--json {args.json}: directory {Path(args.json).resolve().parent} does not exist")
    name = next((n for n in ("memory", "train", "routing") if getattr(args, n)), "kernels")
    return int(importlib.import_module(f"trix.bench.{name}").run(args) or 0)
