"""TriX: ternary {-1, 0, +1} networks with 2-bit packed weights and parameter-free tile routing.

The compiled core (libtrix, through ``trix._C``) does the packing and the arithmetic; this package
adds a functional API over numpy arrays and torch CPU tensors (``trix.ops``), and PyTorch modules.
Importing ``trix`` loads neither torch nor matplotlib; they load on first use.
"""
from ._C import __version__, FormatError
from ._C import simd_level, set_simd_level, available_simd_levels, set_num_threads, get_num_threads
from . import memory  # the signature memory (numpy only, no torch)
from .model import Model  # the C++ model engine on .trixm files (no torch)
from .ops import (
    PackedTernary,
    PreparedMatrix,
    prepare,
    pack,
    pack_int8,
    unpack,
    quantize_activations,
    matmul,
    matmul_t,
    matmul_i8,
    matmul_i8_acc,
    tiled_ffn,
    tile_signatures,
    route_scores,
    top_k,
    route,
    save,
    load,
    from_prototype,
    to_prototype,
)

__all__ = [
    "__version__", "FormatError", "PackedTernary", "pack", "pack_int8", "unpack", "quantize_activations",
    "matmul", "matmul_t", "matmul_i8", "matmul_i8_acc", "tiled_ffn", "tile_signatures", "route_scores",
    "top_k", "route", "save", "load", "from_prototype", "to_prototype",
]
__all__ += ["PreparedMatrix", "prepare", "Model"]
__all__ += ["simd_level", "set_simd_level", "available_simd_levels", "set_num_threads", "get_num_threads"]

# torch-using parts load lazily on first attribute access, so `import trix` does not import torch.
_LAZY_MODULES = ("nn", "quant", "autograd")


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "convert":
        return importlib.import_module(f"{__name__}.nn.convert").convert
    raise AttributeError(f"module 'trix' has no attribute {name!r}")
