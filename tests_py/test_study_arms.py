"""The study's arms: seeds vary every initial weight, arms of one seed share every non-routing weight,
routing methods differ only in the routing decision, hierarchical arms choose among tiles."""
from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from trix.nn import TriXLM, TriXLMConfig  # noqa: E402
from trix.train import state_sha256  # noqa: E402
from trix.validate.plan import ARMS, BUDGETS  # noqa: E402

BASE = dict(BUDGETS["quick"].model, vocab_size=20)


def build(arm, seed):
    return TriXLM(TriXLMConfig(**dict(BASE, **arm.overrides, seed=seed)))


def test_seeds_change_every_initial_weight():
    for arm in ARMS:
        a, b = build(arm, 1).state_dict(), build(arm, 2).state_dict()
        assert state_sha256(build(arm, 1)) == state_sha256(build(arm, 1))
        for k, v in a.items():
            if v.is_floating_point() and v.numel() > 1 and v.std() > 0:  # random tensors, not ones/zeros
                assert not torch.equal(v, b[k]), (arm.name, k)


def test_arms_with_one_seed_share_every_weight_they_both_have():
    models = {arm.name: build(arm, 7).state_dict() for arm in ARMS}
    for (na, a), (nb, b) in itertools.combinations(models.items(), 2):
        common = [k for k in a if k in b and a[k].shape == b[k].shape]
        assert any(k.endswith("attn.qkv.weight") for k in common)
        for k in common:
            assert torch.equal(a[k], b[k]), (na, nb, k)
    # the routing state that only some arms have is seeded too
    h1 = build(next(a for a in ARMS if a.name == "hash"), 1).state_dict()["blocks.0.ffn.hash_table"]
    h2 = build(next(a for a in ARMS if a.name == "hash"), 2).state_dict()["blocks.0.ffn.hash_table"]
    r1 = build(next(a for a in ARMS if a.name == "random_signatures"), 1).state_dict()["blocks.0.ffn.fixed_signatures"]
    r2 = build(next(a for a in ARMS if a.name == "random_signatures"), 2).state_dict()["blocks.0.ffn.fixed_signatures"]
    assert not torch.equal(h1, h2) and not torch.equal(r1, r2)
    assert set(r1.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_routing_arms_compute_the_same_function_given_the_same_choice():
    """Gate value 1 for every method: forcing two arms' routing to the same tile gives the same output."""
    x = torch.randint(0, 20, (2, 12))
    outs = []
    for arm in ARMS:
        if arm.overrides.get("ffn") != "sparse" or arm.overrides.get("tiles", 4) != 4 or arm.name == "ternary_dense":
            continue
        m = build(arm, 3)
        m.train()
        for blk in m.blocks:
            blk.ffn.inference_routing = "first"
        m.eval()
        outs.append((arm.name, m(x)[0]))
    assert len(outs) >= 7
    for name, y in outs[1:]:
        torch.testing.assert_close(y, outs[0][1], rtol=0, atol=0, msg=name)


def test_unit_gate_passes_the_router_gradient():
    for routing in ("emergent", "learned", "mean_signature", "autonomy", "random_signatures"):
        arm = next(a for a in ARMS if a.name == routing)
        m = build(arm, 0)
        m.train()
        for blk in m.blocks:
            blk.ffn.balance_coef = 0.0
        logits, infos, aux = m(torch.randint(0, 20, (2, 12)))
        logits.square().mean().backward()
        ffn = m.blocks[0].ffn
        # the router reads these weights: the gate gradient must reach them
        target = ffn.gate.weight if routing == "learned" else ffn.up
        assert target.grad is not None and target.grad.abs().sum() > 0, routing


def test_hierarchical_arms_choose_among_tiles():
    x = torch.randint(0, 20, (2, 12))
    hier = [a for a in ARMS if a.overrides.get("ffn") == "hierarchical"]
    assert hier
    for arm in hier:
        m = build(arm, 0).eval()
        for pack in (False, True):
            if pack:
                m.pack()
            _, infos, _ = m(x)
            for info in infos:
                active = float((info.tile >= 0).sum(1).float().mean())
                assert info.scored > active, (arm.name, pack, info.scored, active)
                assert info.scored < m.cfg.tiles + 4  # the tree scores fewer than every tile plus clusters


def test_hierarchical_arm_has_the_flat_arms_wrapper():
    hier = build(next(a for a in ARMS if a.name == "hier16"), 0)
    flat = build(next(a for a in ARMS if a.name == "flat16"), 0)
    for bh, bf in zip(hier.blocks, flat.blocks):
        assert bh.ln2 is not None and bf.ln2 is not None
        assert bh.ffn.norm is None and bh.ffn.out_scale is None and not bh.ffn.residual
    assert sum(p.numel() for p in hier.parameters()) == sum(p.numel() for p in flat.parameters())


def test_option_a_rescale_multiplies_the_one_tile_by_t():
    arm = next(a for a in ARMS if a.name == "ternary_dense")
    m = build(arm, 0).eval()
    ffn = m.blocks[0].ffn
    h = torch.randn(10, ffn.d_model)
    m.set_inference_routing("first")
    y1 = ffn(h)[0]
    m.set_inference_routing("first", rescale=True)
    yt = ffn(h)[0]
    torch.testing.assert_close(yt, y1 * ffn.tiles, rtol=1e-5, atol=1e-6)


def test_hierarchical_module_with_float_signatures_packs():
    """mean_signature signatures are float: the packed module routes flat (no signature tree)."""
    m = TriXLM(TriXLMConfig(**dict(BASE, ffn="hierarchical", routing="mean_signature", tiles=16, clusters=4,
                                   seed=0))).eval()
    x = torch.randint(0, 20, (2, 12))
    ref = m(x)[0]
    m.pack()
    torch.testing.assert_close(m(x)[0], ref, rtol=1e-5, atol=1e-5)
