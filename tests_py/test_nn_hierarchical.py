"""HierarchicalTriXFFN: live tiles, balanced deterministic clusters, two-level routing, residual,
hierarchy schedule and state_dict, packing, and the residual diagnostic."""
import pytest

torch = pytest.importorskip("torch")

from trix.nn import HierarchicalTriXFFN  # noqa: E402
from trix.quant import ternary_codes  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_tiles_are_alive_at_initialisation():
    m = HierarchicalTriXFFN(32, tiles=16, expansion=4)
    q, _ = ternary_codes(m.up.detach())
    per_tile = (q != 0).float().view(16, -1).mean(1)
    assert (per_tile > 0.5).all(), per_tile  # the prototype's were all 0
    qd, _ = ternary_codes(m.down.detach())
    assert (qd != 0).float().mean() > 0.5
    x = m.signatures()  # one input per tile
    y, info, _ = m(x)
    assert len(set(info.tile[:, 0].tolist())) > 8
    delta = y - x
    assert (delta.abs().sum(1) > 0).all()  # every routed tile changes its input
    delta.square().sum().backward()
    routed = set(info.tile[:, 0].tolist())
    g = m.up.grad.view(16, -1).abs().sum(1)
    assert all(g[t] > 0 for t in routed)


def test_clusters_are_balanced_deterministic_and_cover_all_tiles():
    a, b = HierarchicalTriXFFN(32, tiles=16), HierarchicalTriXFFN(32, tiles=16)
    assert a.clusters == 4
    assert torch.equal(a.cluster_of, b.cluster_of)
    sizes = torch.bincount(a.cluster_of, minlength=4)
    assert (sizes >= 1).all() and sizes.max() <= 5  # capacity ceil(16/4) + 10% slack
    csig = a.cluster_signatures()
    for c in range(4):
        members = a.signatures()[a.cluster_of == c]
        assert torch.equal(csig[c], torch.sign(members.sum(0)))


def test_routing_goes_to_the_best_tile_of_the_best_cluster():
    m = HierarchicalTriXFFN(32, tiles=16, top_p=1, seed=2).eval()
    x = _x(200, 32, 2)
    _, info, _ = m(x)
    xn = torch.nn.functional.layer_norm(x, (32,), m.norm.weight, m.norm.bias)
    xn = xn / xn.norm(dim=1, keepdim=True)
    cbest = (xn @ m.cluster_signatures().t()).argmax(1)
    assert torch.equal(info.cluster, cbest)
    scores = (xn @ m.signatures().t()).masked_fill(m.cluster_of[None, :] != cbest[:, None], float("-inf"))
    assert torch.equal(info.tile[:, 0], scores.argmax(1))
    assert (m.cluster_of[info.tile[:, 0]] == info.cluster).all()
    full = HierarchicalTriXFFN(32, tiles=16, top_p=4, seed=2).eval()  # all clusters searched: flat argmax
    _, finfo, _ = full(x)
    assert torch.equal(finfo.tile[:, 0], finfo.scores.argmax(1))


def test_balance_at_both_levels_has_gradient():
    m = HierarchicalTriXFFN(32, tiles=16, balance_coef=1.0, diversity_coef=0.0)
    _, _, aux = m(_x(128, 32))
    assert aux["balance"] > 0 and aux["cluster_balance"] > 0
    aux["cluster_balance"].backward()
    assert m.up.grad.abs().sum() > 0


def test_hierarchy_rebuilt_on_schedule_and_saved_in_state_dict():
    m = HierarchicalTriXFFN(32, tiles=16, rebuild_every=2, seed=1)
    calls = []
    orig = m.rebuild
    m.rebuild = lambda: (calls.append(1), orig())
    for _ in range(5):
        m(_x(8, 32))
    assert len(calls) == 2 and int(m.calls) == 5
    with torch.no_grad():  # a hierarchy that differs from what init would build
        m.cluster_of.copy_(torch.arange(16) % 4)
    sd = m.state_dict()
    assert "cluster_of" in sd and "out_scale" in sd
    n = HierarchicalTriXFFN(32, tiles=16, rebuild_every=2, seed=7)
    n.load_state_dict(sd)
    assert torch.equal(n.cluster_of, torch.arange(16) % 4) and int(n.calls) == 5
    m.eval(), n.eval()
    x = _x(50, 32, 4)
    ym, im, _ = m(x)
    yn, inn, _ = n(x)
    assert torch.equal(ym, yn) and torch.equal(im.tile, inn.tile) and torch.equal(im.cluster, inn.cluster)


@pytest.mark.parametrize("tiles,top_p,top_k", [(8, 2, 1), (64, 1, 1), (64, 3, 2), (256, 2, 1)])
def test_packed_equals_unpacked(tiles, top_p, top_k):
    m = HierarchicalTriXFFN(32, tiles=tiles, expansion=8, top_p=top_p, top_k=top_k, seed=3).eval()
    m.auto_pack = False  # y0: the general unpacked path
    x = _x(300, 32, 3)
    with torch.no_grad():
        y0, i0, _ = m(x)
        m.pack()
        y1, i1, _ = m(x)
    assert i1.scores is None  # packed: the libtrix tree scored only the searched clusters' tiles
    assert torch.equal(i0.tile, i1.tile) and torch.equal(i0.cluster, i1.cluster)
    torch.testing.assert_close(y0, y1, rtol=1e-5, atol=1e-5)


def _residual_task(residual: bool, steps: int = 30, seed: int = 0) -> float:
    """4 classes encoded as an offset added to every feature of x [N, 32]; read out from the mean of
    the module's output. The input normalisation removes the offset, so the tiles cannot see the
    class: only the residual carries it. Returns held-out accuracy."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    levels = torch.tensor([-1.5, -0.5, 0.5, 1.5])
    m = HierarchicalTriXFFN(32, tiles=16, expansion=4, residual=residual, seed=seed)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)

    def batch(n):
        lab = torch.randint(0, 4, (n,), generator=g)
        return levels[lab][:, None] + torch.randn(n, 32, generator=g), lab

    def logits(y):
        return -8.0 * (y.mean(1, keepdim=True) - levels[None]).square()

    for _ in range(steps):
        x, lab = batch(128)
        y, _, aux = m(x)
        loss = torch.nn.functional.cross_entropy(logits(y), lab) + sum(aux.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x, lab = batch(2000)
    with torch.no_grad():
        return float((logits(m(x)[0]).argmax(1) == lab).float().mean())


def test_residual_diagnostic_chance_without_residual_95_with_it():
    without, with_ = _residual_task(False), _residual_task(True)
    print(f"residual diagnostic: without residual {without:.1%}, with residual {with_:.1%}")
    assert without < 0.30  # chance is 25%
    assert with_ >= 0.95


def test_top_k_tiles_within_the_top_p_clusters():
    m = HierarchicalTriXFFN(32, tiles=16, top_p=2, top_k=4, seed=5).eval()
    x = _x(100, 32, 5)
    y, info, _ = m(x)
    assert info.tile.shape == (100, 4) and (info.tile >= 0).all()  # two clusters of 4 hold >= 4 tiles
    xn = torch.nn.functional.layer_norm(x, (32,), m.norm.weight, m.norm.bias)
    xn = xn / xn.norm(dim=1, keepdim=True)
    cs = xn @ m.cluster_signatures().t()
    top2 = torch.sort(cs, dim=1, descending=True, stable=True).indices[:, :2]
    allowed = (m.cluster_of[None, None, :] == top2[:, :, None]).any(1)
    ts = (xn @ m.signatures().t()).masked_fill(~allowed, float("-inf"))
    assert torch.equal(info.tile, torch.sort(ts, dim=1, descending=True, stable=True).indices[:, :4])
    one = HierarchicalTriXFFN(32, tiles=16, top_p=1, top_k=8, seed=5).eval()  # 4 members < 8: slots -1
    _, info1, _ = one(x)
    assert ((info1.tile >= 0).sum(1) == torch.bincount(one.cluster_of)[info1.cluster]).all()
    assert int(info1.counts.sum()) == int((info1.tile >= 0).sum())
    with torch.no_grad():
        y0 = one(x)[0]
        one.pack()
        assert torch.equal(one(x)[0], y0)
