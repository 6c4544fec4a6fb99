"""Which tensors the torch fallback of trix.autograd sends to the Triton kernels (the GPU path).

`applies(*tensors)` is True when every tensor is on CUDA in float32, bfloat16 or float16 and the
`triton` package is installed, or when TRIX_FORCE_TRITON=1 asks for the Triton path on CPU tensors,
which then run under Triton's interpreter (TRITON_INTERPRET=1, required): the way to test on a
machine without a GPU that a CUDA run takes this path. float64 keeps the torch reference (gradcheck).
Importing this module does not import triton.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from collections import Counter
from typing import Optional

import torch

FORCE_ENV = "TRIX_FORCE_TRITON"
DTYPES = (torch.float32, torch.bfloat16, torch.float16)

calls: Counter = Counter()  # how often each op took the Triton path (tests read it)
_available: Optional[bool] = None


def available() -> bool:
    """True when the triton package can be imported."""
    global _available
    if _available is None:
        _available = importlib.util.find_spec("triton") is not None
    return _available


def forced() -> bool:
    return os.environ.get(FORCE_ENV, "") == "1"


def applies(*tensors: Optional[torch.Tensor]) -> bool:
    """Whether these tensors (None entries ignored) take the Triton path."""
    ts = [t for t in tensors if t is not None]
    if not ts or any(t.dtype not in DTYPES for t in ts):
        return False
    if all(t.device.type == "cuda" for t in ts):
        if available():
            return True
        warnings.warn("trix: the triton package is not installed; CUDA tensors use the torch reference ops",
                      RuntimeWarning, stacklevel=3)
        return False
    if forced() and all(t.device.type == "cpu" for t in ts):
        if not available():
            raise RuntimeError(f"trix: {FORCE_ENV}=1 needs the triton package, which is not installed")
        if os.environ.get("TRITON_INTERPRET", "") != "1":
            raise RuntimeError(f"trix: {FORCE_ENV}=1 on CPU tensors needs TRITON_INTERPRET=1 (Triton's "
                               f"interpreter), set before the process starts")
        return True
    return False


def ternary_linear(x, w, cfg):
    from .autograd import ternary_linear as f

    calls["ternary_linear"] += 1
    return f(x, w, cfg)


def tiled_ffn(x, up, down, tiles, tile_idx, gates, activation, cfg):
    from .autograd import tiled_ffn as f

    calls["tiled_ffn"] += 1
    return f(x, up, down, tiles, tile_idx, gates, activation, cfg)


# Routing, for trix.nn's emergent routing (TriXFFN._scores and select_top) to call on the same
# condition; no gradient flows through either, as on the CPU path.

def route_scores(xn: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """scores [N, T] float32 = xn [N, d] @ sig^T for ternary signatures sig [T, d] (values -1/0/1)."""
    from . import ops

    calls["route_scores"] += 1
    return ops.route_scores(xn.detach(), ops.pack_codes(sig.detach()))


def select_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [N, k] (long) of the k best scores per row, ties to the lower index (trix.top_k's rule)."""
    from . import ops

    calls["select_top"] += 1
    return ops.top_k(scores.detach(), k)[0].long()
