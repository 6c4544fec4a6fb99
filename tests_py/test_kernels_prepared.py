"""trix.prepare: a PreparedMatrix gives the results of its PackedTernary at every level (float within
the documented tolerance, int8 identical), for numpy and torch inputs, and owns its copy."""
import numpy as np
import pytest

import trix


def _tol(x, k):
    s = np.abs(x).astype(np.float64).sum(axis=1, keepdims=True)
    return 4.0 * k * 1.2e-7 * s / np.sqrt(k) + 1e-6 * s + 1e-30


@pytest.mark.parametrize("m,k", [(1, 1), (15, 17), (16, 128), (17, 129), (33, 257), (65, 4096)])
@pytest.mark.parametrize("n", [1, 3])
def test_prepared_matches_packed_at_every_level(restore, m, k, n):
    rng = np.random.default_rng(m * 1000 + k)
    w = rng.integers(-1, 2, size=(m, k)).astype(np.int8)
    scales = (np.abs(rng.standard_normal(m)) + 0.1).astype(np.float32)
    p = trix.pack_int8(w, scales)
    pp = trix.prepare(p)
    assert pp.shape == (m, k) and pp.nbytes > p.nbytes
    x = rng.standard_normal((n, k)).astype(np.float32)
    ref = (x.astype(np.float64) @ w.T.astype(np.float64)) * scales
    for lv in trix.available_simd_levels():
        trix.set_simd_level(lv)
        y = trix.matmul(x, pp)
        assert np.all(np.abs(y - ref) <= _tol(x, k) * scales.max() + 1e-5), lv
        np.testing.assert_array_equal(trix.matmul_i8(x, pp), trix.matmul_i8(x, p))
        xq, _ = trix.quantize_activations(x)
        np.testing.assert_array_equal(trix.matmul_i8_acc(xq, pp), trix.matmul_i8_acc(xq, p))
        g = rng.standard_normal((n, m)).astype(np.float32)
        np.testing.assert_array_equal(trix.matmul_t(g, pp), trix.matmul_t(g, p))


def test_prepared_owns_its_copy_and_threads_agree(restore):
    rng = np.random.default_rng(5)
    w = rng.integers(-1, 2, size=(100, 1000)).astype(np.int8)
    p = trix.pack_int8(w)
    pp = trix.prepare(p)
    x = rng.standard_normal((4, 1000)).astype(np.float32)
    trix.set_num_threads(1)
    before = trix.matmul(x, pp)
    p.data[:] = 0x55  # all zero weights now; the prepared copy is unchanged
    trix.set_num_threads(2)
    np.testing.assert_array_equal(trix.matmul(x, pp), before)
    assert not np.any(trix.matmul(x, p))


def test_prepared_torch_inputs_and_shape_errors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    w = rng.integers(-1, 2, size=(20, 300)).astype(np.int8)
    pp = trix.prepare(trix.pack_int8(w).torch())
    x = torch.randn(2, 300)
    y = trix.matmul(x, pp)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 20)
    np.testing.assert_allclose(y.numpy(), x.numpy() @ w.T.astype(np.float32), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="matmul"):
        trix.matmul(torch.randn(2, 299), pp)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_prepared_empty_shapes(restore, shape):
    pp = trix.prepare(trix.pack_int8(np.zeros(shape, np.int8)))
    for lv in trix.available_simd_levels():
        trix.set_simd_level(lv)
        y = trix.matmul(np.ones((2, shape[1]), np.float32), pp)
        assert y.shape == (2, shape[0]) and not np.any(y)
