"""The `trix` command line. Each subcommand lives in its own module and registers itself here.

Subcommands import their heavy dependencies (torch, matplotlib) only when they run.
"""
from __future__ import annotations

import argparse
import importlib
import os
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


# What bad input raises, from the standard library, torch, numpy and trix (FormatError and
# CheckpointError are ValueErrors, DataError a RuntimeError); MemoryError for absurd sizes.
BAD_INPUT = (ValueError, TypeError, KeyError, IndexError, OSError, RuntimeError, MemoryError, OverflowError)


# torch (through libgomp) and libtrix keep separate thread pools. After each parallel region libgomp's
# workers spin for GOMP_SPINCOUNT iterations (300,000 by default, about a millisecond) and hold the
# cores the next libtrix call needs; a shorter spin serves both (docs/benchmarks.md, "two threads").
# It must be set before torch loads; a value the user set wins.
GOMP_SPINCOUNT = "20000"


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
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
        factory = getattr(args, "model_factory", None)
        if factory:  # typed by the user: the one place a 'module:function' is imported
            from .train import import_model_factory

            import_model_factory(factory)
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BAD_INPUT as e:
        # Bad input (a missing or corrupt file, a wrong value) is one line, never a traceback;
        # TRIX_DEBUG=1 shows the traceback of a suspected bug.
        if os.environ.get("TRIX_DEBUG"):
            raise
        print(f"trix {args.command}: {_describe(e)}", file=sys.stderr)
        return 2


def _describe(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(e, (ValueError, OSError)) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
