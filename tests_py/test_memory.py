"""trix.memory against numpy references: flat search, ties, top-k, tree recall vs exact, k-means,
grouping, updates, persistence, errors; the prepared (table-lookup) layout at every SIMD level."""
import numpy as np
import pytest

import trix
from trix import memory


def families(n, d, fam, flip, seed):
    rng = np.random.default_rng(seed)
    centres = rng.integers(-1, 2, size=(fam, d), dtype=np.int8)
    x = centres[rng.integers(0, fam, size=n)]
    m = rng.random((n, d)) < flip
    x[m] = rng.integers(-1, 2, size=int(m.sum()), dtype=np.int8)
    return x


def ref_topk(q, keys, ids, k):
    s = q.astype(np.float64) @ keys.astype(np.float64).T
    order = np.lexsort((np.broadcast_to(ids, s.shape), -s), axis=-1)[:, :k]
    return ids[order], np.take_along_axis(s, order, axis=1)


def test_balanced_kmeans_deterministic_and_bounded():
    x = families(3000, 128, 30, 0.3, 1)
    a = memory.balanced_kmeans(x, 30, seed=5)
    b = memory.balanced_kmeans(x, 30, seed=5)
    assert a.shape == (3000,) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    sizes = np.bincount(a, minlength=30)
    assert sizes.min() >= 1 and sizes.max() <= memory.kmeans_capacity(3000, 30, 0.1)
    a2, cent = memory.balanced_kmeans(x, 30, seed=5, return_centroids=True)
    for c in range(30):
        np.testing.assert_array_equal(cent[c], np.sign(x[a2 == c].astype(np.int64).sum(0)))


def test_flat_search_matches_numpy_int8_and_float():
    rng = np.random.default_rng(2)
    keys = rng.integers(-1, 2, size=(500, 130), dtype=np.int8)
    mem = memory.SignatureMemory.from_signatures(keys)
    ids = np.arange(500)
    qi = rng.integers(-128, 128, size=(33, 130), dtype=np.int8)
    r = mem.search(qi, k=4)
    rid, rs = ref_topk(qi, keys, ids, 4)
    np.testing.assert_array_equal(r.ids, rid)
    np.testing.assert_array_equal(r.scores, rs)
    assert (r.scored == 500).all()
    qf = rng.standard_normal((33, 130)).astype(np.float32)
    r = mem.search(qf, k=1)
    rid, rs = ref_topk(qf, keys, ids, 1)
    np.testing.assert_allclose(r.scores, rs, rtol=1e-4, atol=1e-3)
    rq = mem.search(qf, k=1, quantize=True)  # int8 rows: same winner unless near-tied
    assert np.mean(rq.ids[:, 0] == rid[:, 0]) > 0.8


def test_ties_lowest_id():
    keys = np.zeros((5, 64), np.int8)
    keys[[2, 4]] = 1
    mem = memory.SignatureMemory.from_signatures(keys)
    r = mem.search(np.ones((1, 64), np.float32), k=3)
    assert r.ids.tolist() == [[2, 4, 0]]


def test_tree_recall_measured_against_exact():
    keys = families(6000, 256, 40, 0.5, 3)
    mem = memory.SignatureMemory.from_signatures(keys)
    mem.build(seed=1)
    rng = np.random.default_rng(4)
    src = keys[rng.integers(0, 6000, 300)].astype(np.float32)
    q = src + rng.standard_normal(src.shape).astype(np.float32) * 0.8
    exact = mem.search(q, exact=True)
    recalls = []
    for p in (1, 4, mem.num_clusters):
        r = mem.search(q, probes=p)
        recalls.append(np.mean(r.scores[:, 0] == exact.scores[:, 0]))
        if p == 1:
            assert r.scored.mean() < 6000 / 10
    assert recalls == sorted(recalls) and recalls[-1] == 1.0
    assert recalls[1] >= 0.85


def test_grouping_permutation():
    rng = np.random.default_rng(5)
    keys = rng.integers(-1, 2, size=(40, 64), dtype=np.int8)
    mem = memory.SignatureMemory.from_signatures(keys)
    q = rng.standard_normal((100, 64)).astype(np.float32)
    g = mem.lookup(q, k=2)
    np.testing.assert_array_equal(np.sort(g.perm), np.arange(200))
    flat = g.ids.reshape(-1)
    for t, tile in enumerate(g.tiles):
        seg = g.perm[g.offsets[t]:g.offsets[t + 1]]
        assert (flat[seg] == tile).all() and (np.diff(seg) > 0).all()
    assert (np.diff(g.tiles) > 0).all()


def test_add_remove_replace_compose_explain():
    keys = families(800, 128, 10, 0.3, 6)
    mem = memory.SignatureMemory.from_signatures(keys)
    mem.build(auto_rebuild=False)
    new = mem.add(keys[:3] * -1)
    assert new.tolist() == [800, 801, 802] and len(mem) == 803
    mem.remove([5, 801])
    assert 5 not in mem and len(mem) == 801
    rep = np.ones((1, 128), np.int8)
    mem.replace([9], rep)
    np.testing.assert_array_equal(mem.get([9]), rep)
    r = mem.search(rep.astype(np.float32), probes=mem.num_clusters)
    assert r.ids[0, 0] == 9
    both = mem.compose([10, 11])
    np.testing.assert_array_equal(both, np.sign(keys[10].astype(int) + keys[11].astype(int)))
    e = mem.explain(keys[20].astype(np.float32), probes=2)
    assert e["exact_id"] == 20 and e["path"][-1] == mem.cluster_of(e["id"])
    assert e["margin"] == pytest.approx(e["score"] - e["runner_up_score"])


def test_persistence_and_corruption(tmp_path):
    keys = families(400, 96, 8, 0.3, 7)
    mem = memory.SignatureMemory.from_signatures(keys)
    mem.build()
    p = tmp_path / "m.trixmem"
    mem.save(p)
    back = memory.SignatureMemory.load(p)
    q = keys[:20].astype(np.float32)
    np.testing.assert_array_equal(back.search(q, k=2, probes=2).ids, mem.search(q, k=2, probes=2).ids)
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    with pytest.raises(trix.FormatError):
        memory.SignatureMemory.load(p)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 1
    p.write_bytes(bytes(bad))
    with pytest.raises(trix.FormatError):
        memory.SignatureMemory.load(p)


def test_bad_arguments_name_the_argument():
    mem = memory.SignatureMemory(16)
    with pytest.raises(ValueError, match="'signatures'"):
        mem.add(np.full((1, 16), 2, np.int8))
    with pytest.raises(ValueError, match="'ids'"):
        mem.remove([3])
    with pytest.raises(ValueError, match="'queries'"):
        mem.search(np.zeros((2, 15), np.float32))
    with pytest.raises(ValueError, match="'k'"):
        memory.balanced_kmeans(np.zeros((4, 8), np.int8), 9)
    with pytest.raises(ValueError, match="'levels'"):
        mem.build(levels=7)


def test_from_tiles_reads_tile_signatures():
    rng = np.random.default_rng(8)
    up = trix.pack(rng.standard_normal((6 * 8, 64)).astype(np.float32))
    mem = memory.SignatureMemory.from_tiles(up, 6)
    np.testing.assert_array_equal(mem.get(np.arange(6)), trix.tile_signatures(up, 6))


def test_composed_query_finds_both_parts():
    # Two keys on disjoint halves: their composition aligns with both and with nothing else as well.
    d = 128
    keys = np.zeros((50, d), np.int8)
    rng = np.random.default_rng(9)
    keys[2:] = rng.integers(-1, 2, size=(48, d), dtype=np.int8) * (rng.random((48, d)) < 0.3)
    keys[0, :64] = 1
    keys[1, 64:] = -1
    mem = memory.SignatureMemory.from_signatures(keys)
    both = mem.compose([0, 1])
    r = mem.search(both[None], k=2)
    assert sorted(r.ids[0].tolist()) == [0, 1]


@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 1000])
@pytest.mark.parametrize("d", [1, 5, 64, 129, 256])
def test_prepared_exact_matches_numpy_at_every_level(restore, n, d):
    rng = np.random.default_rng(n * 1000 + d)
    keys = families(n, d, 3, 0.2, n + d)  # few distinct keys: many ties
    if n > 9:
        keys[9] = keys[2]
    mem = memory.SignatureMemory.from_signatures(keys)
    if n >= 33:
        mem.build()
    assert mem.prepare() is mem and mem.prepared
    assert mem.prepared_nbytes >= n * ((d + 127) // 128) * 32
    ids = np.arange(n)
    qi = rng.integers(-1, 3, size=(5, d)).astype(np.float32)  # integer-valued: exact sums, ties
    qf = rng.standard_normal((5, d), dtype=np.float32)
    for level in trix.available_simd_levels():
        trix.set_simd_level(level)
        for threads in (1, 2):
            trix.set_num_threads(threads)
            r = mem.search(qi, k=3, exact=True)
            ri, si = ref_topk(qi, keys, ids, 3)
            m = min(3, n)
            np.testing.assert_array_equal(r.ids[:, :m], ri, err_msg=level)
            np.testing.assert_array_equal(r.scores[:, :m], si, err_msg=level)
            r = mem.search(qf, k=3, exact=True)
            _, sf = ref_topk(qf, keys, ids, 3)
            tol = 1e-5 * np.abs(qf).sum(1, keepdims=True) + 1e-6
            assert np.all(np.abs(r.scores[:, :m] - sf) <= tol), level
            got = np.take_along_axis(qf.astype(np.float64) @ keys.T.astype(np.float64), r.ids[:, :m], axis=1)
            assert np.all(np.abs(got - sf) <= tol), level
    mem.prepare(False)
    assert not mem.prepared and mem.prepared_nbytes == 0


def test_prepared_threads_updates_and_save(restore, tmp_path):
    keys = families(1500, 256, 30, 0.4, 7)
    mem = memory.SignatureMemory.from_signatures(keys)
    mem.build()
    mem.prepare()
    q = np.random.default_rng(8).standard_normal((300, 256), dtype=np.float32)
    for level in trix.available_simd_levels():
        trix.set_simd_level(level)
        for exact in (True, False):
            trix.set_num_threads(1)
            a = mem.search(q, k=4, probes=3, exact=exact)
            trix.set_num_threads(2)
            b = mem.search(q, k=4, probes=3, exact=exact)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)
    mem.add(families(40, 256, 3, 0.3, 9))
    mem.remove(np.array([0, 3, 1500, 1539]))
    path = tmp_path / "m.trixmem"
    mem.save(str(path))
    loaded = memory.SignatureMemory.load(str(path))
    assert not loaded.prepared and loaded.prepared_nbytes == 0
    loaded.prepare()
    np.testing.assert_array_equal(mem.search(q, k=4, exact=True).ids, loaded.search(q, k=4, exact=True).ids)
