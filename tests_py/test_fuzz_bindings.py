"""Property-based fuzz of the bindings' argument checking (hypothesis, bounded examples): arrays of
any dtype, rank, shape and layout, and arbitrary ints and bytes, given to every entry point. Each call
must either succeed or raise TypeError / ValueError (trix.FormatError is a ValueError) naming the
function; anything else (a crash, another exception) fails. Runs in a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import trix  # noqa: E402
from trix import _C  # noqa: E402
from trix.memory import SignatureMemory  # noqa: E402

DTYPES = [np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_, np.float16]
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def arrays(draw, max_dim=6):
    """A small array of any dtype and rank, sometimes a non-contiguous view."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, max_dim), min_size=0, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    a = (rng.integers(-3, 4, shape) if np.issubdtype(dtype, np.integer) or dtype == np.bool_
         else rng.standard_normal(shape)).astype(dtype)
    if a.ndim >= 2 and draw(st.booleans()):
        a = a.T
    if a.ndim >= 1 and a.shape[0] > 1 and draw(st.booleans()):
        a = a[::2]
    return a


def packed_arrays():
    """uint8 byte arrays of plausible packed shapes (random codes, 11 included)."""
    return st.builds(lambda r, w, s: np.random.default_rng(s).integers(0, 256, (r, w)).astype(np.uint8),
                     st.integers(0, 4), st.sampled_from([0, 32, 64]), st.integers(0, 999))


ints = st.one_of(st.integers(-3, 300), st.sampled_from([2 ** 31, -(2 ** 40), 2 ** 62]))


def clean(fn, *args):
    try:
        fn(*args)
    except (TypeError, ValueError):
        pass


@FAST
@given(arrays(), packed_arrays(), ints, arrays(max_dim=3), arrays())
def test_products(x, w, cols, scales, out):
    for f in (_C.matmul, _C.matmul_t):
        clean(f, x, w, cols, scales, out)
    clean(_C.matmul_i8_acc, x, w, cols, out)
    clean(_C.matmul_i8, x, scales, w, cols, scales, out)
    clean(_C.matmul_a8, x, w, cols, scales, out)
    clean(_C.route_scores, x, w, cols, out)


@FAST
@given(arrays(), packed_arrays(), packed_arrays(), ints, arrays(), arrays(), st.sampled_from(["relu", "tanh", ""]))
def test_tiled_ffn_and_routing(x, up, down, tiles, idx, out, act):
    clean(_C.tiled_ffn, x, up, np.ones(1, np.float32), down, np.ones(1, np.float32), tiles, act, idx, None, out, None)
    clean(_C.tile_signatures, up, 64 if up.shape[1] == 32 else 0, tiles, out)
    clean(_C.top_k, x, tiles, idx, out)


@FAST
@given(arrays(), packed_arrays(), ints, arrays())
def test_packing_and_format(w, data, cols, out):
    clean(_C.pack_int8, w, out)
    clean(_C.unpack_int8, data, cols, out)
    clean(_C.validate_packed, data, cols)
    clean(trix.PackedTernary, data, cols, np.ones(1, np.float32))
    clean(_C.import_prototype, data, cols, out)
    clean(_C.export_prototype, data, cols, out)
    clean(_C.quantize_activations, w, out, out)
    clean(_C.PreparedMatrix, data, cols, np.ones(1, np.float32))


@FAST
@given(st.binary(max_size=400), st.integers(0, 63), st.integers(0, 255))
def test_loaders_on_bytes(blob, at, byte):
    """Random bytes, and valid files with one byte changed (checksums then reject most)."""
    clean(_C.deserialize, blob)
    clean(SignatureMemory.from_bytes, blob)
    good = bytearray(_C.serialize(trix.pack_int8(np.eye(3, 5, dtype=np.int8)).data, 5, np.ones(1, np.float32)))
    good[at % len(good)] = byte
    clean(_C.deserialize, bytes(good))
    mem = bytearray(SignatureMemory.from_signatures(np.eye(4, 8, dtype=np.int8)).to_bytes())
    mem[at % len(mem)] = byte
    clean(SignatureMemory.from_bytes, bytes(mem))


_MEM = SignatureMemory.from_signatures(np.random.default_rng(0).integers(-1, 2, (50, 16)).astype(np.int8))


@FAST
@given(arrays(), arrays(), ints, ints, ints, st.booleans())
def test_memory_methods(q, ids, k, probes, up, exact):
    m = _MEM
    clean(m.search, q, k, probes, up, exact)
    clean(m.lookup, q, k, probes, up, exact)
    clean(m.explain, q, probes, up)
    clean(m.get, ids)
    clean(m.compose, ids)
    clean(m._m.search, q, k, probes, up, exact, False)
    clean(m._m.search_i8, q, k, probes, up, exact)
    clean(m._m.get, ids)
    clean(m._m.remove, np.asarray(ids).reshape(-1)[:0])  # the binding checks, without emptying the memory
    clean(SignatureMemory, k)
    clean(m.build, k % 5, probes % 64, 0, up % 20, 0.1, 8)
    clean(_C.balanced_kmeans, q, k, 0, up % 20, 0.1, probes % 100)
