"""TriXLinear, TriXFFN and SparseTriXFFN: routing, gradients, losses, packing, telemetry, state."""
import pytest

torch = pytest.importorskip("torch")

from trix.nn import SparseTriXFFN, TriXFFN, TriXLinear  # noqa: E402
from trix.quant import ternary_codes  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_input_equal_to_a_signature_routes_to_that_tile(dtype):
    m = TriXFFN(64, tiles=8, expansion=4, seed=3).to(dtype).eval()
    sig = m.signatures()
    assert len({tuple(s.tolist()) for s in sig}) == 8  # distinct signatures at init
    q, _ = ternary_codes(m.up.detach())
    assert torch.equal(sig, torch.sign(q.view(8, 32, 64).sum(1)))  # sign of the sum of the tile's up rows
    _, info, _ = m(sig.to(dtype))
    assert info.tile[:, 0].tolist() == list(range(8))
    assert info.counts.tolist() == [1] * 8


def test_forward_returns_the_same_structure_in_train_and_eval():
    m = SparseTriXFFN(32, tiles=4, top_k=2)
    x = _x(10, 32).view(2, 5, 32)
    for train in (True, False):
        m.train(train)
        y, info, aux = m(x)
        assert y.shape == x.shape and info.tile.shape == (10, 2) and info.scores.shape == (10, 4)
        assert info.counts.sum() == 20 and set(aux) == {"balance", "diversity"}
        assert all(v.dim() == 0 for v in aux.values())


def test_only_routed_tiles_get_gradient_from_the_task_loss():
    m = TriXFFN(32, tiles=8, expansion=2, seed=1)
    x = _x(6, 32, 1)
    y, info, _ = m(x)
    y.square().sum().backward()
    routed = set(info.tile.reshape(-1).tolist())
    assert 0 < len(routed) < 8
    g = m.up.grad.view(8, -1).abs().sum(1)
    gd = m.down.grad.view(8, -1).abs().sum(1)
    for t in range(8):  # the FFN's down weights: routed tiles only
        assert bool(gd[t] > 0) == (t in routed), t
    # the up weights of every tile are read by the router probability (its softmax normalises over all
    # tiles, the unit gate passes Switch's router gradient): without that gradient, routed tiles only
    m.zero_grad()
    m.gate_rule = "prob"
    y, info, _ = m(x)
    m.eval()  # eval computes no router probability for the unit gate: the FFN product alone
    m.gate_rule = "unit"
    y, info, _ = m(x)
    m.train()
    m.zero_grad()
    with torch.no_grad():
        tile = info.tile
    from trix.autograd import tiled_ffn
    tiled_ffn(x, m.up, m.down, 8, tile, None, m.activation).square().sum().backward()
    g = m.up.grad.view(8, -1).abs().sum(1)
    for t in range(8):
        assert bool(g[t] > 0) == (t in routed), t
    assert any(t not in routed for t in range(8))
    # routed to every tile (its signature as input): every tile gets gradient
    m.zero_grad()
    y, info, _ = m(m.signatures())
    y.square().sum().backward()
    assert (m.up.grad.view(8, -1).abs().sum(1) > 0).all() and (m.down.grad.view(8, -1).abs().sum(1) > 0).all()


@pytest.mark.parametrize("routing", ["emergent", "learned"])
def test_balance_loss_has_a_gradient_on_the_router(routing):
    m = SparseTriXFFN(32, tiles=4, routing=routing, balance_coef=1.0, diversity_coef=0.0)
    _, _, aux = m(_x(64, 32, 2))
    assert aux["balance"] > 0
    aux["balance"].backward()
    target = m.up if routing == "emergent" else m.gate.weight
    assert target.grad is not None and target.grad.abs().sum() > 0
    if routing == "emergent":  # reaches the weights of every tile through the STE signatures
        assert (m.up.grad.view(4, -1).abs().sum(1) > 0).all()


def test_diversity_loss_has_a_gradient_on_tile_weights_and_can_be_switched_off():
    m = SparseTriXFFN(32, tiles=4, balance_coef=0.0, diversity_coef=1.0)
    _, _, aux = m(_x(8, 32))
    aux["diversity"].backward()
    assert (m.up.grad.view(4, -1).abs().sum(1) > 0).all()
    off = SparseTriXFFN(32, tiles=4, balance_coef=0.0, diversity_coef=0.0)
    _, _, aux = off(_x(8, 32))
    assert float(aux["balance"]) == 0.0 and float(aux["diversity"]) == 0.0


def test_six_patterns_end_on_distinct_tiles():
    """The seed build log's synthetic task: 6 input patterns, 8 tiles, a per-pattern target."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    d = 32
    pats, tgt = torch.sign(torch.randn(6, d, generator=g)), torch.randn(6, d, generator=g)
    m = SparseTriXFFN(d, tiles=8, expansion=4, balance_coef=0.05, diversity_coef=0.05, seed=0)
    m.eval()
    before = m(pats)[1].tile[:, 0].tolist()
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(100):
        lab = torch.randint(0, 6, (128,), generator=g)
        y, _, aux = m(pats[lab] + 0.3 * torch.randn(128, d, generator=g))
        loss = (y - tgt[lab]).square().mean() + sum(aux.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    after = m(pats)[1].tile[:, 0].tolist()
    print(f"six patterns: tiles before training {before}, after {after}")
    assert len(set(before)) < 6  # this seed starts with patterns sharing tiles
    assert len(set(after)) == 6, after


@pytest.mark.parametrize("kw", [dict(), dict(train_mode="dense"), dict(top_k=2), dict(routing="learned"),
                                dict(routing="hash", vocab_size=11), dict(routing="dense"),
                                dict(ema_decay=0.9, bias_rate=0.01, activation="gelu")])
def test_packed_eval_equals_unpacked_eval(kw):
    m = TriXFFN(48, tiles=4, seed=5, **kw)
    x, tok = _x(30, 48, 5), torch.randint(0, 11, (30,))
    y, _, aux = m(x, tok)  # one training call updates EMA / bias state
    (y.sum() + sum(aux.values())).backward()
    m.eval()
    m.auto_pack = False  # y0: the general unpacked path
    with torch.no_grad():
        y0, i0, _ = m(x, tok)
        m.pack()
        assert m.packed
        y1, i1, _ = m(x, tok)
    assert torch.equal(i0.tile, i1.tile)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)  # same libtrix calls on the same packed weights
    m.train()
    assert not m.packed  # training drops the stale cache


def test_option_a_trains_all_tiles_and_infers_with_one():
    m = TriXFFN(32, tiles=4, train_mode="dense")
    x = _x(12, 32)
    _, info, _ = m(x)
    assert info.counts.tolist() == [12] * 4
    m.eval()
    assert m(x)[1].counts.tolist() == [12] * 4
    m.inference_routing = "first"
    assert m(x)[1].counts.tolist() == [12, 0, 0, 0]
    m.inference_routing = "emergent"
    assert m(x)[1].tile.shape == (12, 1)


def test_float64_reference_path_matches_libtrix_path():
    m = SparseTriXFFN(40, tiles=4, top_k=2, activation="silu", seed=2)
    x = _x(25, 40, 2)
    y32, i32, a32 = m(x)
    m64 = SparseTriXFFN(40, tiles=4, top_k=2, activation="silu", seed=2).double()
    y64, i64, a64 = m64(x.double())
    assert torch.equal(i32.tile, i64.tile)
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a32["balance"].double(), a64["balance"], rtol=1e-4, atol=1e-6)


def test_ema_signatures_and_balancing_bias():
    m = SparseTriXFFN(32, tiles=4, ema_decay=0.5, bias_rate=0.1)
    sig0 = m.signatures()
    x = m.signatures()[2:3].repeat(16, 1)  # all inputs to tile 2
    _, info, _ = m(x)
    assert info.counts.tolist() == [0, 0, 16, 0]
    assert torch.equal(m.ema_signatures, sig0) and bool(m.ema_ready)
    assert m.select_bias.tolist() == pytest.approx([0.1, 0.1, -0.1, 0.1])  # raises the idle tiles
    _, info2, _ = m(x)
    torch.testing.assert_close(info2.scores, info.scores)  # the bias selects but is not a score


def test_telemetry_usage_dead_tiles_and_churn():
    m = SparseTriXFFN(32, tiles=4, seed=4).eval()
    x = m.signatures()[1:2].repeat(10, 1)
    m(x)
    t = m.telemetry()
    assert t["usage"].tolist() == [0.0, 1.0, 0.0, 0.0] and t["dead_tiles"] == 3
    assert t["entropy"] == 0.0 and t["churn"] is None and 0.0 < t["signature_diversity"] <= 1.0
    m(x)
    assert m.telemetry()["churn"] == 0.0  # same weights: no input changed tile
    with torch.no_grad():
        m.up[32:64] = -m.up[32:64]  # tile 1's signature flips: its inputs go elsewhere
    m(_x(3, 32))
    t = m.telemetry()
    assert t["churn"] == 1.0 and t["dead_tiles"] <= 3


def test_state_dict_round_trip_is_exact():
    a = SparseTriXFFN(32, tiles=4, ema_decay=0.9, bias_rate=0.05, seed=1)
    a(_x(20, 32))
    b = SparseTriXFFN(32, tiles=4, ema_decay=0.9, bias_rate=0.05, seed=9)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = _x(20, 32, 3)
    ya, ia, _ = a(x)
    yb, ib, _ = b(x)
    assert torch.equal(ya, yb) and torch.equal(ia.tile, ib.tile)


def test_trixlinear_packed_and_act_quant():
    lin = TriXLinear(50, 20)
    x = _x(7, 50).view(7, 1, 50)
    lin.eval()
    y0 = lin(x)
    lin.pack()
    assert torch.equal(lin(x), y0)
    q = TriXLinear(50, 20, act_quant=True)
    q.load_state_dict(lin.state_dict())
    q.eval()
    y0 = q(x)
    q.pack()  # exact int8 kernel vs float product of the rounded activations
    torch.testing.assert_close(q(x), y0, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="eval"):
        TriXLinear(4, 4).pack()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="'tiles'"):
        TriXFFN(30, tiles=7)
    with pytest.raises(ValueError, match="'routing'"):
        TriXFFN(32, routing="topk")
    with pytest.raises(ValueError, match="'vocab_size'"):
        TriXFFN(32, routing="hash")
    with pytest.raises(ValueError, match="'top_k'"):
        TriXFFN(32, tiles=4, top_k=5)
    with pytest.raises(ValueError, match="'x'"):
        TriXFFN(32)(torch.zeros(3, 31))
    with pytest.raises(ValueError, match="'token_ids'"):
        TriXFFN(32, routing="hash", vocab_size=5)(torch.zeros(3, 32))


def test_dense_training_churn_follows_the_signatures():
    m = TriXFFN(32, tiles=4, train_mode="dense", seed=6)
    x = m.signatures()  # input i is on tile i under emergent routing
    m(x)
    first = m.telemetry()
    assert first["usage"].tolist() == [0.25] * 4 and first["select_bias"].tolist() == [0.0] * 4
    m(x)
    assert m.telemetry()["churn"] == 0.0
    with torch.no_grad():
        m.up[:32] = -m.up[:32]  # tile 0 (h = 32 rows): its signature flips
    m(x)
    assert m.telemetry()["churn"] == 0.25


def test_learned_router_trains_through_the_gate_value():
    m = SparseTriXFFN(32, tiles=4, routing="learned", balance_coef=0.0, diversity_coef=0.0)
    y, info, _ = m(_x(16, 32))
    assert m.routing_parameters() == 4 * 32 and info.scores.shape == (16, 4)
    y.square().sum().backward()  # the task loss alone
    assert m.gate.weight.grad is not None and m.gate.weight.grad.abs().sum() > 0
