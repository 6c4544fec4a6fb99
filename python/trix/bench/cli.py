"""`trix bench`: dispatches to the kernel, memory or training benchmark."""
from __future__ import annotations

import argparse
import importlib


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--memory", action="store_true", help="signature memory: TriX flat/hierarchy vs FAISS")
    group.add_argument("--train", action="store_true", help="training step and packed inference of the modules")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    name = "memory" if args.memory else ("train" if args.train else "kernels")
    return int(importlib.import_module(f"trix.bench.{name}").run(args) or 0)
