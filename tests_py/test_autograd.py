"""Autograd over libtrix: forward and input gradient in libtrix, weight gradient by the STE, checked
against the torch reference path, and the reference path checked by gradcheck in float64."""
import pytest

torch = pytest.importorskip("torch")

from trix.autograd import (ternary_linear, ternary_linear_reference, tiled_ffn,  # noqa: E402
                           tiled_ffn_reference)
from trix.quant import ternary_ste  # noqa: E402

TOL = dict(rtol=1e-5, atol=2e-5)  # float32 summation order: libtrix vs torch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_ternary_linear_matches_reference_and_ste():
    g = _gen(0)
    x = torch.randn(37, 70, generator=g, requires_grad=True)
    w = (torch.randn(21, 70, generator=g) * 0.05).requires_grad_(True)
    y = ternary_linear(x, w)
    y_ref = ternary_linear_reference(x, w)
    torch.testing.assert_close(y, y_ref, **TOL)
    gy = torch.randn(37, 21, generator=g)
    dx, dw = torch.autograd.grad(y, (x, w), gy)
    weff = ternary_ste(w).detach()
    torch.testing.assert_close(dx, gy @ weff, **TOL)  # libtrix matmul_t
    torch.testing.assert_close(dw, gy.t() @ x.detach(), **TOL)  # STE: gradient of the effective weight


def test_ternary_linear_gradcheck_float64():
    g = _gen(1)
    x = torch.randn(5, 7, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 7, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda a: ternary_linear(a, w), (x,))  # float64 -> reference path


def _ffn_case(seed, n=40, d=24, h=8, t=4, k=2, gates=True):
    g = _gen(seed)
    x = torch.randn(n, d, generator=g, requires_grad=True)
    up = (torch.randn(t * h, d, generator=g) * 0.1).requires_grad_(True)
    down = (torch.randn(t * d, h, generator=g) * 0.1).requires_grad_(True)
    idx = torch.randint(0, t, (n, k), generator=g)
    idx[::5, -1] = -1  # unused slots
    gt = torch.rand(n, k, generator=g).requires_grad_(True) if gates else None
    return x, up, down, idx, gt


@pytest.mark.parametrize("act", ["relu", "gelu", "silu", "identity"])
@pytest.mark.parametrize("k,gates", [(1, False), (2, True)])
def test_tiled_ffn_libtrix_matches_reference(act, k, gates):
    x, up, down, idx, gt = _ffn_case(3, k=k, gates=gates)
    y = tiled_ffn(x, up, down, 4, idx, gt, act)
    y_ref = tiled_ffn_reference(x, up, down, 4, idx, gt, act)
    torch.testing.assert_close(y, y_ref, **TOL)
    leaves = [x, up, down] + ([gt] if gates else [])
    gy = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, leaves, gy), torch.autograd.grad(y_ref, leaves, gy)):
        torch.testing.assert_close(a, b, **TOL)


def test_tiled_ffn_weight_gradient_is_the_effective_weight_gradient():
    """STE: d loss / d latent == d loss / d (gamma q), computed by torch on effective-weight leaves."""
    x, up, down, idx, gt = _ffn_case(4)
    gy = torch.randn(x.shape[0], x.shape[1], generator=_gen(5))
    dup, ddown = torch.autograd.grad(tiled_ffn(x, up, down, 4, idx, gt, "gelu"), (up, down), gy)
    ue = ternary_ste(up).detach().requires_grad_(True)
    de = ternary_ste(down).detach().requires_grad_(True)
    h, d = 8, 24
    y = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(idx.shape[1]):
            t = int(idx[i, j])
            if t >= 0:
                a = torch.nn.functional.gelu(ue[t * h:(t + 1) * h] @ x[i].detach())
                y[i] = y[i] + gt[i, j].detach() * (de[t * d:(t + 1) * d] @ a)
    eu, ed = torch.autograd.grad(y, (ue, de), gy)
    torch.testing.assert_close(dup, eu, **TOL)
    torch.testing.assert_close(ddown, ed, **TOL)


def test_tiled_ffn_gradcheck_float64():
    x, up, down, idx, gt = _ffn_case(6, n=6, d=5, h=3, t=3)
    x64 = x.detach().double().requires_grad_(True)
    g64 = gt.detach().double().requires_grad_(True)
    up64, down64 = up.detach().double(), down.detach().double()
    f = lambda a, b: tiled_ffn(a, up64, down64, 3, idx.clamp(max=2), b, "gelu")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x64, g64))


def test_only_routed_tiles_compute_and_get_gradient():
    x, up, down, _, _ = _ffn_case(7, k=1, gates=False)
    idx = torch.tensor([[0], [2]] * 20)
    y = tiled_ffn(x, up, down, 4, idx)
    dup, ddown = torch.autograd.grad(y.square().sum(), (up, down))
    h, d = 8, 24
    for t in range(4):
        routed = t in (0, 2)
        assert bool(dup[t * h:(t + 1) * h].abs().sum() > 0) == routed, t
        assert bool(ddown[t * d:(t + 1) * d].abs().sum() > 0) == routed, t
    # every tile gets gradient when routed to
    idx = torch.arange(40)[:, None] % 4
    dup, ddown = torch.autograd.grad(tiled_ffn(x, up, down, 4, idx).square().sum(), (up, down))
    for t in range(4):
        assert dup[t * h:(t + 1) * h].abs().sum() > 0 and ddown[t * d:(t + 1) * d].abs().sum() > 0


def test_bad_shapes_name_the_argument():
    x, up, down, idx, gt = _ffn_case(8)
    with pytest.raises(ValueError, match="'down'"):
        tiled_ffn(x, up, down[:-1], 4, idx, gt)
    with pytest.raises(ValueError, match="'gates'"):
        tiled_ffn(x, up, down, 4, idx, gt[:, :1])
    with pytest.raises(ValueError, match="'activation'"):
        tiled_ffn(x, up, down, 4, idx, gt, "tanh")
    with pytest.raises(ValueError, match="'x'"):
        ternary_linear(x, up[:, :3])
