"""SIMD level switching and thread counts from Python: every level gives the scalar's int8 results
exactly and float results within the documented tolerance; thread counts never change results."""
import numpy as np
import pytest

import trix


def _packed(rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, size=(rows, cols)).astype(np.int8)
    return w, trix.pack_int8(w)


def test_levels_listed_and_switchable(restore):
    levels = trix.available_simd_levels()
    assert levels[0] == "scalar"
    assert trix.simd_level() in levels
    for lv in levels:
        trix.set_simd_level(lv)
        assert trix.simd_level() == lv
    with pytest.raises(ValueError, match="sse9"):
        trix.set_simd_level("sse9")
    missing = [lv for lv in ("avx2", "avx512", "avx512_vnni", "neon", "neon_dotprod") if lv not in levels]
    for lv in missing:
        with pytest.raises(ValueError, match="set_simd_level"):
            trix.set_simd_level(lv)


@pytest.mark.parametrize("k", [1, 17, 128, 129, 257, 4096])
def test_every_level_matches_scalar(restore, k):
    w, p = _packed(37, k, k)
    rng = np.random.default_rng(k + 1)
    x = rng.standard_normal((3, k)).astype(np.float32)
    xq = rng.integers(-128, 128, size=(3, k)).astype(np.int8)
    exact = xq.astype(np.int64) @ w.T.astype(np.int64)  # independent of libtrix
    dense = x.astype(np.float64) @ w.T.astype(np.float64)
    for lv in trix.available_simd_levels():
        trix.set_simd_level(lv)
        np.testing.assert_array_equal(trix.matmul_i8_acc(xq, p), exact, err_msg=lv)
        y = trix.matmul(x, p)  # no scales: every row scale is 1
        tol = 1e-5 * np.abs(x).sum(axis=1, keepdims=True) + 1e-6
        assert np.all(np.abs(y - dense) <= tol), lv


def test_adversarial_int8_all_levels(restore):
    k = 16384
    w = -np.ones((3, k), dtype=np.int8)
    p = trix.pack_int8(w)
    xq = np.stack([np.full(k, 127), np.full(k, -128), np.where(np.arange(k) % 2, 127, -128)]).astype(np.int8)
    for lv in trix.available_simd_levels():
        trix.set_simd_level(lv)
        acc = trix.matmul_i8_acc(xq, p)
        np.testing.assert_array_equal(acc[:, 0], [-127 * k, 128 * k, -(127 - 128) * k // 2], err_msg=lv)


def test_threads_do_not_change_results(restore):
    _, p = _packed(300, 700, 5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 700)).astype(np.float32)
    xq = rng.integers(-128, 128, size=(8, 700)).astype(np.int8)
    trix.set_num_threads(1)
    y1, a1 = trix.matmul(x, p), trix.matmul_i8_acc(xq, p)
    for t in (2, 3):
        trix.set_num_threads(t)
        assert trix.get_num_threads() == t
        np.testing.assert_array_equal(trix.matmul(x, p), y1)
        np.testing.assert_array_equal(trix.matmul_i8_acc(xq, p), a1)
    with pytest.raises(ValueError, match="set_num_threads"):
        trix.set_num_threads(0)
