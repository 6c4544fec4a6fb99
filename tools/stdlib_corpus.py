#!/usr/bin/env python3
"""Write a second text corpus for `trix validate --data`: Python standard-library sources.

The study's verdict must not hold on one corpus only. This concatenates the running interpreter's
standard-library modules (sorted by path, test packages and non-ASCII files left out so that the
character vocabulary stays small) until about as many characters as TinyShakespeare (1,115,394).
The same Python version gives the same bytes; the report records the file's sha256.

    python tools/stdlib_corpus.py -o stdlib.txt && trix validate --data stdlib.txt --out runs/stdlib
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import sysconfig
import tempfile
from pathlib import Path


def sources(root: Path):
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).parts
        if any(part in ("test", "tests", "idlelib", "site-packages", "lib2to3") for part in rel):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.isascii():
            yield rel, text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, help="output text file (written atomically)")
    ap.add_argument("--chars", type=int, default=1_115_394, help="stop after this many characters")
    args = ap.parse_args(argv)
    if args.chars < 1000:
        print(f"stdlib_corpus: --chars must be >= 1000, got {args.chars}", file=sys.stderr)
        return 2
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, n = [], 0
    for rel, text in sources(root):
        parts.append(f"# file: {'/'.join(rel)}\n{text}\n")
        n += len(parts[-1])
        if n >= args.chars:
            break
    data = "".join(parts)[: args.chars]
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"stdlib_corpus: --out's folder does not exist: {out.parent}", file=sys.stderr)
        return 2
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, out)
    print(f"{out}: {len(data):,} characters from {len(parts)} modules of Python {sys.version.split()[0]}, "
          f"{len(set(data))} distinct, sha256 {hashlib.sha256(data.encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
