"""trix.ops (the functional API over libtrix) against numpy references written here."""
import numpy as np
import pytest

import trix

SIZES = [1, 3, 4, 5, 63, 64, 65, 127, 255, 257]


def ternary(rng, shape):
    return rng.integers(-1, 2, size=shape).astype(np.int8)


def ref_unpack_bytes(data, cols):
    """Decode the public format independently: byte j of a 32-byte block holds weights j + 32*s at bits 2s."""
    rows = data.shape[0]
    codes = np.zeros((rows, data.shape[1] * 4), dtype=np.int8)
    for s in range(4):
        part = ((data >> (2 * s)) & 3).astype(np.int8)  # [rows, bytes]
        blocks = part.reshape(rows, -1, 32)
        codes.reshape(rows, -1, 4, 32)[:, :, s, :] = blocks
    return (codes - 1)[:, :cols], (codes - 1)[:, cols:]


@pytest.mark.parametrize("cols", SIZES)
def test_pack_unpack_round_trip_and_layout(cols):
    rng = np.random.default_rng(cols)
    q = ternary(rng, (3, cols))
    p = trix.pack_int8(q)
    assert p.data.shape == (3, ((cols + 127) // 128) * 32)
    np.testing.assert_array_equal(trix.unpack(p), q)
    body, padding = ref_unpack_bytes(p.data, cols)
    np.testing.assert_array_equal(body, q)
    assert (padding == 0).all()


@pytest.mark.parametrize("cols", [1, 65, 257])
def test_pack_float_absmean_rule(cols):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, cols)).astype(np.float32)
    p = trix.pack(w)
    gamma = np.abs(w.astype(np.float64)).mean()
    assert p.scales.shape == (1,)
    assert p.scales[0] == pytest.approx(gamma, rel=1e-6)
    expect = np.clip(np.round(w / p.scales[0]), -1, 1).astype(np.int8)
    np.testing.assert_array_equal(trix.unpack(p), expect)
    pr = trix.pack(w, per_row=True)
    assert pr.scales.shape == (4,)
    np.testing.assert_allclose(pr.scales, np.abs(w).mean(axis=1), rtol=1e-6)


def test_pack_float_threshold_rule():
    w = np.array([[0.6, -0.6, 0.4, -0.5, 0.51]], dtype=np.float32)
    p = trix.pack(w, rule="threshold", threshold=0.5)
    np.testing.assert_array_equal(trix.unpack(p), [[1, -1, 0, 0, 1]])
    assert p.scales.tolist() == [1.0]


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("n", [1, 5])
def test_matmul_and_transposed_product(n, k):
    rng = np.random.default_rng(n * 1000 + k)
    m = 17
    q = ternary(rng, (m, k))
    scales = (rng.random(m) + 0.5).astype(np.float32)
    w = trix.pack_int8(q, scales)
    x = rng.standard_normal((n, k)).astype(np.float32)
    wf = q.astype(np.float64) * scales[:, None]
    np.testing.assert_allclose(trix.matmul(x, w), x @ wf.T, rtol=1e-4, atol=1e-4)
    g = rng.standard_normal((n, m)).astype(np.float32)
    np.testing.assert_allclose(trix.matmul_t(g, w), g @ wf, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", SIZES)
def test_int8_path_is_exact(k):
    rng = np.random.default_rng(k)
    q = ternary(rng, (9, k))
    w = trix.pack_int8(q, np.array([0.5], dtype=np.float32))
    x = rng.standard_normal((4, k)).astype(np.float32)
    xq, xs = trix.quantize_activations(x)
    amax = np.maximum(np.abs(x).max(axis=1), 1e-5).astype(np.float32)
    np.testing.assert_array_equal(xs, amax / np.float32(127))
    expect_q = np.clip(np.round(x * (np.float32(127) / amax)[:, None]), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(xq, expect_q)
    acc = xq.astype(np.int64) @ q.T.astype(np.int64)
    np.testing.assert_array_equal(trix.matmul_i8_acc(xq, w), acc)
    y = trix.matmul_i8(x, w)
    np.testing.assert_array_equal(y, acc.astype(np.float32) * xs[:, None] * np.float32(0.5))


def ffn_ref(x, q_up, s_up, q_down, s_down, T, idx, gates, act):
    n, d = x.shape
    h = q_up.shape[0] // T
    y = np.zeros((n, d))
    for i in range(n):
        for j in range(idx.shape[1]):
            t = idx[i, j]
            if t < 0:
                continue
            hid = act((q_up[t * h:(t + 1) * h] * s_up) @ x[i].astype(np.float64))
            y[i] += gates[i, j] * ((q_down[t * d:(t + 1) * d] * s_down) @ hid)
    return y


@pytest.mark.parametrize("d", [1, 5, 64, 129])
@pytest.mark.parametrize("k", [1, 2])
def test_tiled_ffn_matches_numpy(d, k):
    rng = np.random.default_rng(d * 10 + k)
    T, h, n = 4, 6, 11
    q_up, q_down = ternary(rng, (T * h, d)), ternary(rng, (T * d, h))
    up = trix.pack_int8(q_up, np.array([0.7], np.float32))
    down = trix.pack_int8(q_down, np.array([0.3], np.float32))
    x = rng.standard_normal((n, d)).astype(np.float32)
    idx = rng.integers(-1, T, size=(n, k)).astype(np.int32)
    gates = rng.random((n, k)).astype(np.float32)
    hidden = np.empty((n, k, h), np.float32)
    y = trix.tiled_ffn(x, up, down, T, idx, gates, activation="relu", hidden_pre=hidden)
    ref = ffn_ref(x, q_up, 0.7, q_down, 0.3, T, idx, gates, lambda v: np.maximum(v, 0))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    for i in range(n):
        for j in range(k):
            t = idx[i, j]
            expect = 0 if t < 0 else (q_up[t * h:(t + 1) * h] * 0.7) @ x[i]
            np.testing.assert_allclose(hidden[i, j], expect, rtol=1e-4, atol=1e-4)


def test_signatures_and_routing():
    rng = np.random.default_rng(1)
    T, h, d = 6, 8, 40
    q_up = ternary(rng, (T * h, d))
    up = trix.pack_int8(q_up)
    sig = trix.tile_signatures(up, T)
    np.testing.assert_array_equal(sig, np.sign(q_up.reshape(T, h, d).sum(axis=1)))
    sp = trix.pack_int8(sig)
    x = rng.standard_normal((20, d)).astype(np.float32)
    scores = trix.route_scores(x, sp)
    np.testing.assert_allclose(scores, x @ sig.T.astype(np.float32), rtol=1e-5, atol=1e-5)
    idx, val = trix.route(x, sp, k=2)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(idx, order)
    # an input equal to a tile's signature routes to that tile (signatures here are distinct enough)
    best = trix.route(sig.astype(np.float32), sp)[0][:, 0]
    self_scores = (sig.astype(np.int64) ** 2).sum(axis=1)
    cross = sig.astype(np.int64) @ sig.T.astype(np.int64)
    for t in range(T):
        if (cross[t] < self_scores[t]).sum() == T - 1:
            assert best[t] == t


def test_top_k_tie_break():
    s = np.array([[1.0, 3.0, 3.0, np.nan, 3.0]], dtype=np.float32)
    idx, val = trix.top_k(s, k=3)
    assert idx.tolist() == [[1, 2, 4]]


def test_torch_tensors_are_zero_copy_and_returned_as_torch():
    torch = pytest.importorskip("torch")
    q = torch.randint(-1, 2, (8, 100), dtype=torch.int8)
    p = trix.pack_int8(q, torch.tensor([2.0]))
    assert isinstance(p.data, torch.Tensor)
    x = torch.randn(3, 100)
    out = torch.empty(3, 8)
    y = trix.matmul(x, p, out=out)
    assert y.data_ptr() == out.data_ptr()  # written in place, no copy
    torch.testing.assert_close(y, x @ (q.float() * 2.0).T, rtol=1e-4, atol=1e-4)


def test_save_load_and_corruption(tmp_path):
    rng = np.random.default_rng(3)
    p = trix.pack(rng.standard_normal((5, 70)).astype(np.float32), per_row=True)
    path = tmp_path / "w.trix"
    trix.save(path, p)
    r = trix.load(path)
    np.testing.assert_array_equal(r.data, p.data)
    np.testing.assert_array_equal(r.scales, p.scales)
    assert r.cols == 70
    blob = path.read_bytes()
    path.write_bytes(blob[:-3])
    with pytest.raises(trix.FormatError, match="truncated"):
        trix.load(path)
    bad = bytearray(blob)
    bad[100] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(trix.FormatError, match="checksum"):
        trix.load(path)
    path.write_bytes(b"not a tensor at all" * 5)
    with pytest.raises(trix.FormatError, match="magic"):
        trix.load(path)
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temporary behind


def test_prototype_interop():
    rng = np.random.default_rng(5)
    rows, cols = 4, 37
    q = ternary(rng, (rows, cols))
    # the prototype's bytes, built independently: 00 = 0, 01 = +1, 10 = -1, weight i at bits 2i
    code = np.where(q == 0, 0, np.where(q == 1, 1, 2)).astype(np.uint8)
    padded = np.zeros((rows, (cols + 3) // 4 * 4), np.uint8)
    padded[:, :cols] = code
    proto = (padded.reshape(rows, -1, 4) << np.array([0, 2, 4, 6], np.uint8)).sum(axis=2).astype(np.uint8)
    p = trix.from_prototype(proto, cols)
    np.testing.assert_array_equal(trix.unpack(p), q)
    np.testing.assert_array_equal(trix.to_prototype(p), proto)
