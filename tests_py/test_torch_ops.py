"""The torch custom ops (trix._torch_ops): libtrix's float32 results and gradients against an
independent float64 reference on torch autograd, opcheck (schema, fake, autograd registration),
gradcheck of the float64 path, thread-count independence, bfloat16, torch.compile and the codes cache."""
import pytest

torch = pytest.importorskip("torch")

import trix  # noqa: E402
from trix import _torch_ops  # noqa: E402,F401
from trix.autograd import tiled_ffn, ternary_linear, weight_codes  # noqa: E402
from trix.quant import QuantConfig, ternary_codes_torch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# float32 libtrix against float64: products of length <= 64 of O(1) values.
TOL64 = dict(rtol=1e-4, atol=1e-4)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _ffn_case(seed, n=40, d=24, h=8, t=4, k=2, gates=True, dtype=torch.float32):
    g = _gen(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    up = torch.randn(t * h, d, generator=g, dtype=dtype) * 0.1
    down = torch.randn(t * d, h, generator=g, dtype=dtype) * 0.1
    idx = torch.randint(0, t, (n, k), generator=g)
    idx[::5, -1] = -1
    idx[idx == 2] = 1  # tile 2 unrouted: its gradient must be exactly zero
    gt = torch.rand(n, k, generator=g, dtype=dtype) if gates else None
    return x, up, down, idx, gt


def _ffn64(x, ue, de, tiles, idx, gates, act):
    """Slot by slot on effective weights: y[i] = sum_j gate * de_t @ act(ue_t @ x[i])."""
    h, d = ue.shape[0] // tiles, x.shape[1]
    rows = []
    for i in range(x.shape[0]):
        yi = x.new_zeros(d)
        for j in range(idx.shape[1]):
            t = int(idx[i, j])
            if t >= 0:
                z = de[t * d:(t + 1) * d] @ _torch_ops.activate(act, ue[t * h:(t + 1) * h] @ x[i])
                yi = yi + (z if gates is None else gates[i, j] * z)
        rows.append(yi)
    return torch.stack(rows)


@pytest.mark.parametrize("cfg", [QuantConfig(), QuantConfig("threshold", 0.05), QuantConfig(per_row=True)])
def test_ternary_codes_are_libtrix_and_equal_torch_reference(cfg):
    w = torch.randn(33, 70, generator=_gen(0)) * 0.1
    q, s = torch.ops.trix.ternary_codes(w, cfg.rule, cfg.threshold, cfg.per_row)
    qr, sr = ternary_codes_torch(w, cfg)
    assert q.dtype == torch.int8
    assert torch.equal(q, qr.to(torch.int8)) and torch.equal(s, sr)


def test_ternary_linear_matches_float64_reference():
    g = _gen(1)
    x, w = torch.randn(37, 70, generator=g), torch.randn(21, 70, generator=g) * 0.05
    gy = torch.randn(37, 21, generator=g)
    for cfg in (QuantConfig(), QuantConfig(per_row=True)):
        xa, wa = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        y = ternary_linear(xa, wa, cfg)
        dx, dw = torch.autograd.grad(y, (xa, wa), gy)
        x64, w64 = x.double().requires_grad_(True), w.double().requires_grad_(True)
        # float64 reference on the float32 codes (the same rounding decisions), through torch autograd.
        q, s = ternary_codes_torch(w, cfg)
        weff = (q.double() * (s.double()[:, None] if cfg.per_row else s.double())).requires_grad_(True)
        y64 = x64 @ weff.t()
        dx64, dw64 = torch.autograd.grad(y64, (x64, weff), gy.double())
        torch.testing.assert_close(y.double(), y64, **TOL64)
        torch.testing.assert_close(dx.double(), dx64, **TOL64)
        torch.testing.assert_close(dw.double(), dw64, **TOL64)


@pytest.mark.parametrize("act", ["relu", "gelu", "silu", "identity"])
@pytest.mark.parametrize("k,gates", [(1, False), (2, True)])
def test_tiled_ffn_matches_float64_reference(act, k, gates):
    x, up, down, idx, gt = _ffn_case(3, k=k, gates=gates)
    leaves32 = [t.clone().requires_grad_(True) for t in (x, up, down)] + ([gt.clone().requires_grad_(True)] if gates else [])
    y = tiled_ffn(*leaves32[:3], 4, idx, leaves32[3] if gates else None, act)
    # float64 reference: the float32 codes as float64 effective-weight leaves (the STE gradient is theirs).
    (uq, us), (dq, ds) = weight_codes(up), weight_codes(down)
    ue = (uq.double() * us.double()).requires_grad_(True)
    de = (dq.double() * ds.double()).requires_grad_(True)
    x64 = x.double().requires_grad_(True)
    g64 = gt.double().requires_grad_(True) if gates else None
    y64 = _ffn64(x64, ue, de, 4, idx, g64, act)
    gy = torch.randn(y.shape, generator=_gen(9))
    grads = torch.autograd.grad(y, leaves32, gy)
    grads64 = torch.autograd.grad(y64, [x64, ue, de] + ([g64] if gates else []), gy.double())
    torch.testing.assert_close(y.double(), y64, **TOL64)
    for a, b in zip(grads, grads64):
        torch.testing.assert_close(a.double(), b, **TOL64)
    h = up.shape[0] // 4
    assert torch.count_nonzero(grads[1][2 * h:3 * h]) == 0 and torch.count_nonzero(grads[2][2 * 24:3 * 24]) == 0


def test_float64_path_gradcheck():
    x, up, down, idx, gt = _ffn_case(5, n=9, d=6, h=3, t=3, dtype=torch.float64)
    idx = idx.clamp_max(2)
    x.requires_grad_(True)
    gt.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, g: tiled_ffn(a, up, down, 3, idx, g, "gelu"), (x, gt))
    w = torch.randn(4, 6, dtype=torch.float64, generator=_gen(6))
    assert torch.autograd.gradcheck(lambda a: ternary_linear(a, w), (x,))


def test_opcheck_schemas_fake_and_autograd():
    x, up, down, idx, gt = _ffn_case(7, n=13, d=16, h=8, t=2)
    idx = idx.clamp(-1, 1)
    (uq, us), (dq, ds) = weight_codes(up), weight_codes(down)
    xr, ur, dr, gr = (t.clone().requires_grad_(True) for t in (x, up, down, gt))
    torch.library.opcheck(torch.ops.trix.tiled_ffn, (xr, ur, dr, uq, us, dq, ds, idx, gr, 2, "gelu"))
    torch.library.opcheck(torch.ops.trix.ternary_codes, (up, "absmean", 0.5, False))
    w = torch.randn(5, 16, generator=_gen(8)).requires_grad_(True)
    q, s = weight_codes(w)
    torch.library.opcheck(torch.ops.trix.ternary_linear, (xr, w, q, s))
    torch.library.opcheck(torch.ops.trix.tile_signatures, (uq, 2))
    torch.library.opcheck(torch.ops.trix.route_scores, (x, torch.ops.trix.tile_signatures(uq, 2)))


def test_tile_signatures_match_packed_libtrix():
    up = torch.randn(4 * 16, 40, generator=_gen(10)) * 0.1
    q, s = weight_codes(up)
    sig = torch.ops.trix.tile_signatures(q, 4)
    packed = trix.ops.pack_int8(q, s)
    assert torch.equal(sig, torch.as_tensor(trix.ops.tile_signatures(packed, 4)))


def test_results_do_not_depend_on_thread_count(restore):
    x, up, down, idx, gt = _ffn_case(11, n=500, d=40, h=24, t=4)
    outs = []
    for threads in (1, 2, 3):
        trix.set_num_threads(threads)
        leaves = [t.clone().requires_grad_(True) for t in (x, up, down, gt)]
        y = tiled_ffn(leaves[0], leaves[1], leaves[2], 4, idx, leaves[3], "gelu")
        outs.append([y] + list(torch.autograd.grad(y.square().sum(), leaves)))
    for o in outs[1:]:
        for a, b in zip(o, outs[0]):
            assert torch.equal(a, b)


def test_bfloat16_activations_track_float32():
    x, up, down, idx, gt = _ffn_case(12, n=64, d=32, h=16, t=4)
    xb = x.to(torch.bfloat16).requires_grad_(True)
    y = tiled_ffn(xb, up, down, 4, idx, gt.to(torch.bfloat16), "gelu")
    assert y.dtype == torch.bfloat16
    (dx,) = torch.autograd.grad(y.float().sum(), (xb,))
    assert dx.dtype == torch.bfloat16
    xf = xb.detach().float().requires_grad_(True)
    yf = tiled_ffn(xf, up, down, 4, idx, gt.to(torch.bfloat16).float(), "gelu")
    (dxf,) = torch.autograd.grad(yf.sum(), (xf,))
    # bfloat16 has 8 significant bits: the only difference is the final rounding of y and dx.
    torch.testing.assert_close(y.float(), yf, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(dx.float(), dxf, rtol=1e-2, atol=1e-2)


def test_codes_cache_is_invalidated_by_every_change():
    lin = torch.nn.Linear(16, 8, bias=False)
    w = lin.weight
    c1 = weight_codes(w)
    assert weight_codes(w) is c1  # unchanged: cached
    with torch.no_grad():
        w.mul_(-1.0)  # in place, as an optimizer step
    c2 = weight_codes(w)
    assert c2 is not c1 and torch.equal(c2[0], -c1[0])
    opt = torch.optim.SGD([w], lr=10.0)
    w.grad = torch.randn_like(w)
    opt.step()
    c3 = weight_codes(w)
    assert c3 is not c2 and torch.equal(c3[0], ternary_codes_torch(w)[0].to(torch.int8))
    lin.load_state_dict({"weight": torch.randn(8, 16)})
    c4 = weight_codes(lin.weight)
    assert torch.equal(c4[0], ternary_codes_torch(lin.weight)[0].to(torch.int8))
    lin.weight = torch.nn.Parameter(torch.randn(8, 16))  # assignment: a new tensor
    assert torch.equal(weight_codes(lin.weight)[0], ternary_codes_torch(lin.weight)[0].to(torch.int8))


def test_torch_compile_fullgraph_matches_eager():
    x, up, down, idx, gt = _ffn_case(13, n=32, d=16, h=8, t=2)
    idx = idx.clamp(-1, 1)

    def step(x, up, down, gt):
        return tiled_ffn(x, up, down, 2, idx, gt, "relu").square().sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = [t.clone().requires_grad_(True) for t in (x, up, down, gt)]
    leaves_c = [t.clone().requires_grad_(True) for t in (x, up, down, gt)]
    l, lc = step(*leaves), compiled(*leaves_c)
    torch.testing.assert_close(l, lc)
    for a, b in zip(torch.autograd.grad(l, leaves), torch.autograd.grad(lc, leaves_c)):
        torch.testing.assert_close(a, b)
