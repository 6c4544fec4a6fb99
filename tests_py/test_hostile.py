"""Hostile inputs through the Python API (issue 13): users' packed bytes, out= aliasing, the int8
depth limit, misused arguments, stale packed caches and SignatureMemory under concurrent threads."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import trix
from trix import _C
from trix.memory import SignatureMemory


def packed(rows=4, cols=130, seed=0):
    rng = np.random.default_rng(seed)
    return trix.pack_int8(rng.integers(-1, 2, (rows, cols)).astype(np.int8))


# ---------------------------------------------------------------- packed bytes from users

def test_packed_ternary_refuses_code_11_and_padding_where_bytes_enter():
    p = packed()
    bad = p.data.copy()
    bad[1, 3] |= 0x03
    with pytest.raises(trix.FormatError, match=r"PackedTernary: invalid code 11 at row 1, column 3"):
        trix.PackedTernary(bad, p.cols, p.scales)
    pad = p.data.copy()
    pad[0, 63] = 0x56  # column 159 >= 130: a padding weight of +1
    with pytest.raises(trix.FormatError, match=r"non-zero padding weight at row 0"):
        trix.PackedTernary(pad, p.cols, p.scales)
    with pytest.raises(TypeError, match=r"argument 'data' must have dtype uint8, got int8"):
        trix.PackedTernary(p.data.view(np.int8), p.cols, p.scales)
    with pytest.raises(ValueError, match=r"argument 'data' must have shape \[\*, 96\]"):
        trix.PackedTernary(p.data, 300, p.scales)
    with pytest.raises(TypeError, match=r"argument 'cols' must be an int"):
        trix.PackedTernary(p.data, 130.0, p.scales)
    ok = trix.PackedTernary(p.data.copy(), p.cols, p.scales)  # valid bytes pass, torch tensors too
    torch = pytest.importorskip("torch")
    trix.PackedTernary(torch.from_numpy(ok.data), ok.cols, torch.from_numpy(ok.scales))


def test_code_11_cannot_reach_a_kernel_through_prepare_or_memory():
    p = packed(4, 64)
    raw = p.data.copy()
    raw[2, 0] = 0xFF
    with pytest.raises(trix.FormatError, match="invalid code 11"):
        _C.PreparedMatrix(raw, 64, p.scales)
    with pytest.raises(trix.FormatError, match="invalid code 11"):
        _C.SignatureMemory.from_tiles(raw, 64, p.scales, 2)


# ---------------------------------------------------------------- out= aliasing and the K limit, every level

@pytest.mark.usefixtures("restore")
def test_out_overlapping_an_input_is_an_error_on_every_level():
    w = packed(8, 8)
    for level in trix.available_simd_levels():
        trix.set_simd_level(level)
        x = np.ones((8, 8), np.float32)
        with pytest.raises(ValueError, match=r"matmul: argument 'out' must not overlap argument 'x'"):
            trix.matmul(x, w, out=x)
        with pytest.raises(ValueError, match=r"matmul_t: argument 'out' must not overlap argument 'g'"):
            trix.matmul_t(x, w, out=x)
        with pytest.raises(ValueError, match=r"must not overlap argument 'x'"):
            trix.matmul(x, trix.prepare(w), out=x)
        with pytest.raises(ValueError, match=r"route_scores: argument 'out' must not overlap argument 'x'"):
            trix.route_scores(x, w, out=x)
        acc_over_xq = np.zeros(64, np.int32)
        xq8 = acc_over_xq.view(np.int8)[:64].reshape(8, 8)
        with pytest.raises(ValueError, match=r"matmul_i8_acc: argument 'out' must not overlap argument 'xq'"):
            trix.matmul_i8_acc(xq8, w, out=acc_over_xq.reshape(8, 8))
        up, down = packed(8, 8, 1), packed(16, 4, 2)
        with pytest.raises(ValueError, match=r"tiled_ffn: argument 'out' must not overlap argument 'x'"):
            trix.tiled_ffn(x, up, down, 2, np.zeros((8, 1), np.int32), out=x)
        y = trix.matmul(x, w)  # separate buffers: fine, and the same answer on every level
        np.testing.assert_allclose(y, x @ trix.unpack(w).astype(np.float32).T, rtol=1e-6)


@pytest.mark.usefixtures("restore")
def test_int8_depth_above_the_limit_is_refused_on_every_level():
    k = (1 << 23) + 1
    w = trix.PackedTernary(np.full((1, _C.packed_row_bytes(k)), 0x55, np.uint8), k, np.ones(1, np.float32))
    xq = np.zeros((1, k), np.int8)
    for level in trix.available_simd_levels():
        trix.set_simd_level(level)
        with pytest.raises(ValueError, match=r"at most 8388608 columns for an int8 product"):
            trix.matmul_i8_acc(xq, w)
    with pytest.raises(ValueError, match=r"argument 'dim' must be in \[1, 8388608\]"):
        SignatureMemory((1 << 23) + 1)


# ---------------------------------------------------------------- misused arguments

def test_signature_memory_given_keys_where_a_dimension_is_expected():
    keys = np.ones((5, 16), np.int8)
    with pytest.raises(TypeError, match=r"argument 'dim' must be the key dimension d .*from_signatures\(keys\)"):
        SignatureMemory(keys)
    with pytest.raises(TypeError, match=r"argument 'dim' must be an int, got float"):
        SignatureMemory(16.0)
    m = SignatureMemory.from_signatures(keys)
    with pytest.raises(TypeError, match=r"search: argument 'k' must be an int, got an array"):
        m.search(np.ones((1, 16), np.float32), k=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"argument 'ids' must hold whole numbers"):
        m.remove([0.5])
    with pytest.raises(TypeError, match=r"argument 'ids' must hold integers"):
        m.get(["a"])
    with pytest.raises(ValueError, match=r"argument 'assignment' must hold values in"):
        m.build_from_assignment(np.array([0, 0, 0, 0, 2 ** 40]), 1)
    with pytest.raises(TypeError, match=r"argument 'queries' must be a float32 array, got dtype <U1"):
        m.search(np.array([["a"] * 16]))
    with pytest.raises(TypeError, match=r"from_tiles: argument 'up' must be a trix.PackedTernary"):
        SignatureMemory.from_tiles(keys, 1)
    with pytest.raises(TypeError, match=r"from_bytes: argument 'data' must be bytes"):
        SignatureMemory.from_bytes("TRIXMEMO")


def test_memory_bytes_that_ask_for_too_much_are_refused():
    m = SignatureMemory.from_signatures(np.ones((4, 16), np.int8))
    b = bytearray(m.to_bytes())
    b[32:40] = (1 << 40).to_bytes(8, "little")  # next_id
    import zlib
    b[60:64] = zlib.crc32(bytes(b[:60])).to_bytes(4, "little")
    with pytest.raises(trix.FormatError, match=r"field 'next_id'"):
        SignatureMemory.from_bytes(bytes(b))


# ---------------------------------------------------------------- stale packed caches

torch = pytest.importorskip("torch")


def _fresh(module_cls, **kw):
    torch.manual_seed(0)
    return module_cls(**kw).eval()


def test_packed_linear_follows_load_state_dict_assignment_and_to(one_torch_thread):
    from trix.nn import TriXLinear

    a, b = _fresh(TriXLinear, in_features=32, out_features=16), TriXLinear(32, 16).eval()
    with torch.no_grad():
        b.weight.mul_(-3)
    x = torch.randn(5, 32)
    with torch.no_grad():
        want_b, want_a = b(x), a(x)
        a.pack()
        assert torch.allclose(a(x), want_a, atol=1e-5)
        a.load_state_dict(b.state_dict())
        assert not a.packed
        assert torch.allclose(a(x), want_b, atol=1e-5)  # the new weights, not the packed old ones
        a.pack()
        a.weight = torch.nn.Parameter(torch.zeros(16, 32))
        assert not a.packed and torch.allclose(a(x), a.bias.expand(5, 16))
        a.pack()
        a.to("cpu")  # nothing moves: the cache stays
        assert a.packed
        a.double()
        assert not a.packed
        assert a(x.double()).dtype == torch.float64


def test_packed_ffn_and_lm_follow_load_state_dict(one_torch_thread):
    from trix.nn import TriXFFN, TriXLM, TriXLMConfig
    from trix.nn.hierarchical import HierarchicalTriXFFN

    x = torch.randn(6, 32)
    for cls, kw in ((TriXFFN, dict(d_model=32, tiles=4)), (HierarchicalTriXFFN, dict(d_model=32, tiles=8))):
        old, new = _fresh(cls, **kw), cls(**kw, seed=5).eval()
        with torch.no_grad():
            want = new(x)[0]
            old.pack()
            old.load_state_dict(new.state_dict())
            assert not old.packed
            assert getattr(old, "_memory", None) is None
            assert torch.allclose(old(x)[0], want, atol=1e-5), cls.__name__
    cfg = TriXLMConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=16, tiles=2)
    torch.manual_seed(1)
    lm_old, lm_new = TriXLM(cfg).eval(), TriXLM(cfg).eval()
    idx = torch.randint(0, 11, (2, 8))
    with torch.no_grad():
        want = lm_new(idx)[0]
        lm_old.pack()
        lm_old.load_state_dict(lm_new.state_dict())
        assert torch.allclose(lm_old(idx)[0], want, atol=1e-5)


# ---------------------------------------------------------------- SignatureMemory under threads

def test_concurrent_search_add_remove_save_match_a_serial_replay(tmp_path):
    """Readers, a writer and a saver at once (the GIL is released inside): every lookup and every saved
    file must equal the memory at some point of the writer's sequence, replayed serially."""
    d, steps = 64, 24
    rng = np.random.default_rng(3)
    base = rng.integers(-1, 2, (300, d)).astype(np.int8)
    batches = [rng.integers(-1, 2, (12, d)).astype(np.int8) for _ in range(steps)]
    queries = rng.standard_normal((40, d)).astype(np.float32)

    def make():
        m = SignatureMemory.from_signatures(base)
        m.build(leaf_size=16, seed=1)
        return m

    def ops(m):  # the writer's sequence; yields after every state change
        for i, b in enumerate(batches):
            ids = m.add(b)
            yield
            m.remove(ids[::3] if i % 2 else np.arange(i * 5, i * 5 + 4))
            yield

    ref = make()
    states = {ref.to_bytes()}
    answers = [ref.search(queries, k=3, probes=2)]
    for _ in ops(ref):
        states.add(ref.to_bytes())
        answers.append(ref.search(queries, k=3, probes=2))
    keys = {(a.ids.tobytes(), a.scores.tobytes()) for a in answers}

    live = make()
    done = threading.Event()
    seen, saved, errors = [], [], []

    def reader():
        try:
            while not done.is_set():
                r = live.search(queries, k=3, probes=2)
                seen.append((r.ids.tobytes(), r.scores.tobytes()))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def saver():
        try:
            i = 0
            while not done.is_set():
                p = tmp_path / f"m{i % 3}.trixmem"
                live.save(str(p))
                saved.append(SignatureMemory.load(str(p)).to_bytes())
                i += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=saver)]
    for t in threads:
        t.start()
    try:
        for _ in ops(live):
            time.sleep(0.002)  # let the readers and the saver in between the writer's operations
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert live.to_bytes() == ref.to_bytes()
    assert len(set(seen)) > 2 and saved  # the threads did interleave
    print(f"lookups {len(seen)} ({len(set(seen))} states), saves {len(saved)} ({len(set(saved))} states)")
    assert all(s in keys for s in seen), "a lookup saw a state the serial replay never had"
    assert all(s in states for s in saved), "a saved file is not a state of the serial replay"
