"""The `trix` command line. Each subcommand lives in its own module and registers itself here.

Subcommands import their heavy dependencies (torch, matplotlib) only when they run.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# name -> (module, one-line help). The module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "demo": ("trix.demo", "pack a matrix, multiply and route: a one-minute tour"),
    "bench": ("trix.bench.cli", "benchmarks against what a user would use instead (--memory, --train)"),
    "train": ("trix.train", "train one language model from a config (torchrun for several processes)"),
    "generate": ("trix.generate", "sample text from a checkpoint"),
    "export": ("trix.export", "write a checkpoint as a .trixm model file for the C++ engine (trix_generate)"),
    "validate": ("trix.validate", "the one-command study of emergent routing on TinyShakespeare (--quick, --full)"),
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="trix", description="TriX: ternary networks with parameter-free routing")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"trix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=mod)
        importlib.import_module(mod).add_arguments(p)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
