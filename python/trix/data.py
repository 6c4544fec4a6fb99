"""Character-level text data: TinyShakespeare by default, any UTF-8 file on request.

Where the TinyShakespeare text is looked for, in order:
  1. an explicit path (``--data PATH``); any UTF-8 file, its vocabulary is built from its characters;
  2. the environment variable ``TRIX_DATA``;
  3. the user cache: ``$XDG_CACHE_HOME/trix/tinyshakespeare/input.txt`` (default ``~/.cache/trix/...``);
  4. a data directory beside the checkout: ``<repo>/../shared/data/tinyshakespeare/input.txt``,
     resolved from this file's location (only meaningful for an editable install);
  5. a download from the usual public address into the user cache.
The TinyShakespeare text found in 2-5 must match its sha256; a file given with ``--data`` is used as is.

This module imports only numpy; torch is imported by the functions that return tensors.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TRAIN_FRACTION = 0.9  # the split every char-level TinyShakespeare result uses (1,003,854 / 111,540)


class DataError(RuntimeError):
    """The text could not be found, read or verified."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trix"


def checkout_data_path() -> Path:
    """<repo>/../shared/data/tinyshakespeare/input.txt, where <repo> holds python/trix/ (editable install)."""
    repo = Path(__file__).resolve().parent.parent.parent
    return repo.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def beside_checkout_paths() -> List[Path]:
    """shared/data/... beside a checkout that holds the working directory (an installed package no longer
    knows where its checkout is): <ancestor of cwd>/shared/data/tinyshakespeare/input.txt."""
    cwd = Path.cwd().resolve()
    return [a / "shared" / "data" / "tinyshakespeare" / "input.txt" for a in (cwd, *cwd.parents)]


def candidate_paths() -> List[Path]:
    """Places TinyShakespeare is looked for before downloading, in order."""
    out = []
    env = os.environ.get("TRIX_DATA")
    if env:
        out.append(Path(env).expanduser())
    out.append(cache_dir() / "tinyshakespeare" / "input.txt")
    out.append(checkout_data_path())
    out += [p for p in beside_checkout_paths() if p not in out]
    return out


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as r:
        payload = r.read()
    # write beside the destination and rename, so an interrupted download never leaves a partial file
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.replace(tmp, dest)


def find_tinyshakespeare(download: bool = True) -> Path:
    """Return a verified local path to TinyShakespeare, downloading it into the cache if allowed."""
    tried = []
    for p in candidate_paths():
        if p.is_file():
            digest = sha256_of(p)
            if digest == TINYSHAKESPEARE_SHA256:
                return p
            tried.append(f"{p}: sha256 {digest[:12]}... does not match TinyShakespeare")
        else:
            tried.append(f"{p}: not found")
    if download:
        dest = cache_dir() / "tinyshakespeare" / "input.txt"
        try:
            _download(TINYSHAKESPEARE_URL, dest)
        except Exception as e:  # offline, proxy, HTTP error: say so, then fall through to the message
            tried.append(f"download {TINYSHAKESPEARE_URL}: {type(e).__name__}: {e}")
        else:
            digest = sha256_of(dest)
            if digest == TINYSHAKESPEARE_SHA256:
                return dest
            dest.unlink()
            tried.append(f"download {TINYSHAKESPEARE_URL}: sha256 {digest[:12]}... does not match")
    raise DataError(
        "TinyShakespeare not available. Looked in:\n  " + "\n  ".join(tried) + "\n"
        f"Fix: download {TINYSHAKESPEARE_URL} (sha256 {TINYSHAKESPEARE_SHA256}) and pass --data PATH, "
        "or set TRIX_DATA=PATH, or put it at " + str(cache_dir() / "tinyshakespeare" / "input.txt")
    )


@dataclass
class CharVocab:
    """Sorted characters of a text; token id = index in ``chars``."""

    chars: str

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        table: Dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((table[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@dataclass
class CharDataset:
    """A text as token ids with a contiguous train/val split (first 90% train)."""

    vocab: CharVocab
    train: np.ndarray
    val: np.ndarray
    source: str
    sha256: str
    meta: Dict[str, object] = field(default_factory=dict)

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def describe(self) -> Dict[str, object]:
        # the file name only: reports are shared, and a local path says nothing to their readers
        return {"source": Path(self.source).name, "sha256": self.sha256, "vocab_size": self.vocab.size,
                "train_tokens": int(len(self.train)), "val_tokens": int(len(self.val))}


def load_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e})") from None


def load_dataset(path: Optional[str] = None, download: bool = True) -> CharDataset:
    """Load ``path`` (any UTF-8 text) or, when None, the verified TinyShakespeare text."""
    p = Path(path).expanduser() if path else find_tinyshakespeare(download=download)
    text = load_text(p)
    if len(text) < 100:
        raise DataError(f"{p} has {len(text)} characters; need at least 100 for a train/val split")
    vocab = CharVocab("".join(sorted(set(text))))
    ids = vocab.encode(text)
    n = int(TRAIN_FRACTION * len(ids))
    return CharDataset(vocab=vocab, train=ids[:n], val=ids[n:], source=str(p), sha256=sha256_of(p))


def batch_offsets(n_tokens: int, block_size: int, batch_size: int, generator) -> "object":
    """Random start offsets [batch_size] for windows of block_size + 1 tokens (torch.Generator)."""
    import torch

    hi = n_tokens - block_size - 1
    if hi <= 0:
        raise DataError(f"split has {n_tokens} tokens, fewer than block_size + 2 = {block_size + 2}")
    return torch.randint(0, hi + 1, (batch_size,), generator=generator)


def gather_windows(ids: np.ndarray, offsets, block_size: int):
    """(x, y) LongTensors [B, block_size]: y is x shifted by one token."""
    import torch

    data = torch.from_numpy(ids)
    idx = offsets.view(-1, 1) + torch.arange(block_size + 1).view(1, -1)
    w = data[idx]
    return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def eval_offsets(n_tokens: int, block_size: int, batch_size: int, n_batches: int, seed: int = 1234) -> List:
    """A fixed list of offset batches, the same for every model, so validation losses compare exactly."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [batch_offsets(n_tokens, block_size, batch_size, g) for _ in range(n_batches)]


# Character classes for the specialisation analysis. Each character belongs to exactly one.
CHAR_CLASSES = ("lower", "upper", "space", "newline", "punct", "digit")


def char_class(c: str) -> str:
    if c == "\n":
        return "newline"
    if c.isspace():
        return "space"
    if c.isdigit():
        return "digit"
    if c.isalpha():
        return "upper" if c.isupper() else "lower"
    return "punct"


def class_ids(vocab: CharVocab) -> np.ndarray:
    """[vocab] index into CHAR_CLASSES for each token id."""
    return np.array([CHAR_CLASSES.index(char_class(c)) for c in vocab.chars], dtype=np.int64)
