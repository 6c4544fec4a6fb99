"""TriXLM and TriXBlock against docs/design/lm_contract.md; KV-cache generation; packing; convert."""
import pytest

torch = pytest.importorskip("torch")

import trix  # noqa: E402
from trix.nn import RoutingInfo, TriXBlock, TriXLinear, TriXLM, TriXLMConfig  # noqa: E402

SMALL = dict(vocab_size=13, block_size=12, n_layer=2, n_head=2, d_model=32)
CASES = [dict(ffn="float"), dict(ffn="tiled", train_mode="dense"), dict(ffn="tiled"), dict(ffn="sparse"),
         dict(ffn="sparse", routing="learned", top_k=2), dict(ffn="sparse", routing="random"),
         dict(ffn="sparse", routing="hash"), dict(ffn="sparse", routing="dense"),
         dict(ffn="hierarchical", tiles=8, top_p=2, ternary_attention=True),
         dict(ffn="hierarchical", tiles=8, top_p=2, top_k=2)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _idx(b=3, t=12, seed=0):
    return torch.randint(0, 13, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", CASES)
def test_contract_forward(kw):
    m = TriXLM(TriXLMConfig(**SMALL, **kw))
    idx = _idx()
    for train in (True, False):
        m.train(train)
        logits, infos, aux = m(idx)
        assert logits.shape == (3, 12, 13) and len(infos) == 2
        assert set(aux) >= {"balance", "diversity"} and all(v.dim() == 0 for v in aux.values())
        for info in infos:
            if kw["ffn"] == "float":
                assert info is None
                continue
            tiles = 8 if kw["ffn"] == "hierarchical" else 4
            assert isinstance(info, RoutingInfo) and info.counts.shape == (tiles,)
            assert info.tile.shape == (36, kw.get("top_k", 1)) or kw.get("routing") == "dense" or "train_mode" in kw
            assert (info.cluster is not None) == (kw["ffn"] == "hierarchical")
            assert (info.scores is None) == (kw.get("routing") in ("random", "hash", "dense"))
    m.train()
    logits, _, aux = m(idx)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 13), idx.reshape(-1)) + sum(aux.values())
    loss.backward()
    assert m.head.weight.grad.abs().sum() > 0 and m.tok_emb.weight.grad.abs().sum() > 0


def test_parameter_count_does_not_depend_on_tiles_and_routing_params_are_counted():
    counts = [TriXLM(TriXLMConfig(**SMALL, tiles=t)).param_counts() for t in (1, 2, 4, 8)]
    assert len({c["total"] for c in counts}) == 1 and counts[0]["routing"] == 0
    emb = 13 * 32 + 12 * 32
    assert counts[0]["non_embedding"] == counts[0]["total"] - emb
    learned = TriXLM(TriXLMConfig(**SMALL, routing="learned")).param_counts()
    assert learned["routing"] == 2 * 32 * 4


@pytest.mark.parametrize("kw", [dict(ffn="sparse"), dict(ffn="tiled", train_mode="dense"),
                                dict(ffn="hierarchical", tiles=8, ternary_attention=True),
                                dict(ffn="sparse", routing="learned", top_k=2)])
def test_packed_logits_equal_unpacked_eval(kw):
    m = TriXLM(TriXLMConfig(**SMALL, **kw)).eval().set_auto_pack(False)  # l0, l2: the general unpacked path
    idx = _idx(seed=1)
    with torch.no_grad():
        l0, i0, _ = m(idx)
        m.pack()
        l1, i1, _ = m(idx)
        m.unpack()
        l2, _, _ = m(idx)
    for a, b in zip(i0, i1):
        assert torch.equal(a.tile, b.tile)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    assert torch.equal(l2, l0)


def _greedy_no_cache(m, idx, n):
    out = idx
    for _ in range(n):
        logits, _, _ = m(out[:, -m.cfg.block_size:])
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return out


@pytest.mark.parametrize("kw", [dict(ffn="sparse"), dict(ffn="hierarchical", tiles=8, routing="hash")])
def test_generate_with_kv_cache_equals_recomputation(kw):
    m = TriXLM(TriXLMConfig(**SMALL, **kw)).eval()
    idx = _idx(2, 5, seed=3)
    with torch.no_grad():
        ref = _greedy_no_cache(m, idx, 15)  # runs past block_size (12)
    out = m.generate(idx, 15, top_k=1)
    assert out.shape == (2, 20) and torch.equal(out, ref)
    m.pack()
    assert torch.equal(m.generate(idx, 15, top_k=1), ref)


def test_inference_routing_override_and_errors():
    m = TriXLM(TriXLMConfig(**SMALL, ffn="tiled", train_mode="dense")).eval()
    idx = _idx()
    assert m(idx)[1][0].counts.tolist() == [36] * 4
    m.set_inference_routing("first")
    assert m(idx)[1][0].counts.tolist() == [36, 0, 0, 0]
    m.set_inference_routing(None)
    with pytest.raises(ValueError, match="'mode'"):
        m.set_inference_routing("best")
    with pytest.raises(ValueError, match="'ffn'"):
        TriXLMConfig(ffn="moe")
    with pytest.raises(ValueError, match="block_size"):
        m(_idx(1, 13))
    with pytest.raises(RuntimeError, match="eval"):
        TriXLM(TriXLMConfig(**SMALL)).pack()


def test_telemetry_one_dict_per_block():
    m = TriXLM(TriXLMConfig(**{**SMALL, "n_layer": 3}))
    m(_idx())
    tel = m.telemetry()
    assert len(tel) == 3
    for t in tel:
        assert t["usage"].shape == (4,) and abs(float(t["usage"].sum()) - 1.0) < 1e-6
        assert {"entropy", "dead_tiles", "signature_diversity", "churn"} <= set(t)


def test_state_dict_round_trip_exact_with_hierarchy():
    cfg = TriXLMConfig(**SMALL, ffn="hierarchical", tiles=8, rebuild_every=1)
    a = TriXLM(cfg)
    a(_idx())  # rebuilds the hierarchy from trained weights
    b = TriXLM(TriXLMConfig(**SMALL, ffn="hierarchical", tiles=8, rebuild_every=1, seed=5))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    la, ia, _ = a(_idx(seed=2))
    lb, ib, _ = b(_idx(seed=2))
    assert torch.equal(la, lb)
    assert all(torch.equal(x.cluster, y.cluster) for x, y in zip(ia, ib))


def test_block_adds_the_residual_once():
    cfg = TriXLMConfig(**SMALL, ffn="hierarchical", tiles=8)
    blk = TriXBlock(cfg).eval()
    with torch.no_grad():
        blk.ffn.out_scale.zero_()  # the FFN then returns its input: the block output is x + attn
        x = torch.randn(2, 5, 32)
        y, _, _, _ = blk(x)
        a, _ = blk.attn(blk.ln1(x))
    torch.testing.assert_close(y, x + a)


def test_convert_swaps_linear_layers():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(5, 8)
    trix.convert(model, filter_fn=lambda mod, name: name == "0")
    assert isinstance(model[0], TriXLinear) and isinstance(model[2], torch.nn.Linear)
    from trix.nn import convert
    convert(model)
    assert isinstance(model[2], TriXLinear)
    from trix.quant import ternary_ste
    w0, w2 = ternary_ste(model[0].weight).detach(), ternary_ste(model[2].weight).detach()
    ref = torch.relu(x @ w0.t() + model[0].bias) @ w2.t() + model[2].bias
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_construction_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = TriXLM(TriXLMConfig(**SMALL)), TriXLM(TriXLMConfig(**SMALL))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_import_trix_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, trix; assert 'torch' not in sys.modules; "
            "f = trix.convert; assert callable(f) and 'torch' in sys.modules; trix.nn.TriXLM")
    subprocess.run([sys.executable, "-c", code], check=True)
