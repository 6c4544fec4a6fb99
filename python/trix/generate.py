"""`trix generate`: sample text from a checkpoint written by `trix train` or `trix validate`.

The implementation lives in trix.train; this module only registers the subcommand.
"""
from __future__ import annotations

import argparse

from .train import add_generate_arguments, run_generate


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_generate_arguments(p)


def run(args: argparse.Namespace) -> int:
    return run_generate(args)
