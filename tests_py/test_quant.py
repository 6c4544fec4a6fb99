"""trix.quant against libtrix's own quantizers (the one rule for training, packing and signatures)."""
import pytest

torch = pytest.importorskip("torch")

import trix  # noqa: E402
from trix.quant import (QuantConfig, fake_quant_activations, nonzero_fraction, quantize_activations,  # noqa: E402
                        ternary_codes, ternary_ste, ternary_ste_codes)


def _libtrix_codes(w, **kw):
    p = trix.pack(w.contiguous(), **kw)
    return torch.as_tensor(trix.unpack(p)).float(), torch.as_tensor(p.scales)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 130), (3, 257)])
@pytest.mark.parametrize("per_row", [False, True])
def test_absmean_codes_equal_libtrix(shape, per_row):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[0] * 31 + shape[1])) * 0.03
    q, s = ternary_codes(w, QuantConfig(per_row=per_row))
    q_ref, s_ref = _libtrix_codes(w, per_row=per_row)
    assert torch.equal(q, q_ref)
    assert torch.equal(s, s_ref)


def test_threshold_codes_equal_libtrix():
    w = torch.randn(20, 33, generator=torch.Generator().manual_seed(1))
    q, s = ternary_codes(w, QuantConfig(rule="threshold", threshold=0.7))
    q_ref, s_ref = _libtrix_codes(w, rule="threshold", threshold=0.7)
    assert torch.equal(q, q_ref) and float(s) == 1.0 == float(s_ref[0])


def test_round_half_to_even_and_clip():
    # mean|w| = 1, so w / gamma = w: 0.5 and -0.5 round to 0 (half to even), 1.5 clips to 1, 2.5 -> 1.
    w = torch.tensor([[0.5, -0.5, 1.5, -1.5, 0.2, -2.5, 0.3, 1.0]])
    q, s = ternary_codes(w)
    assert float(s) == 1.0
    assert q.tolist() == [[0.0, 0.0, 1.0, -1.0, 0.0, -1.0, 0.0, 1.0]]
    assert torch.equal(q, _libtrix_codes(w)[0])


def test_zero_matrix_uses_eps_scale():
    q, s = ternary_codes(torch.zeros(4, 5))
    assert float(s) == pytest.approx(1e-5) and not q.any()


def test_ste_value_and_gradient():
    w = torch.randn(6, 9, requires_grad=True)
    wq = ternary_ste(w)
    q, s = ternary_codes(w)
    assert torch.equal(wq.detach(), q * s)
    g = torch.randn(6, 9)
    (wq * g).sum().backward()
    assert torch.equal(w.grad, g)  # straight through: identity
    w.grad = None
    qc = ternary_ste_codes(w)
    assert torch.equal(qc.detach(), q)
    (qc * g).sum().backward()
    assert torch.allclose(w.grad, g / s)


def test_initialisation_has_a_healthy_share_of_nonzero_codes():
    # A Gaussian under absmean keeps |w| > 0.399 sigma: about 69% non-zero, whatever its std
    # (the prototype's threshold at std 0.02 gave 0%).
    for std in (1e-4, 0.02, 1.0):
        frac = nonzero_fraction(torch.randn(256, 256, generator=torch.Generator().manual_seed(0)) * std)
        assert 0.62 < frac < 0.76, (std, frac)
    assert nonzero_fraction(torch.randn(256, 256) * 0.02, QuantConfig(rule="threshold", threshold=0.5)) == 0.0


@pytest.mark.parametrize("n,k", [(1, 1), (5, 17), (33, 256)])
def test_activation_quant_equals_libtrix(n, k):
    x = torch.randn(n, k, generator=torch.Generator().manual_seed(n + k)) * 3
    x[0, 0] = 0.0
    xq, xs = quantize_activations(x)
    xq_ref, xs_ref = trix.quantize_activations(x.contiguous())
    assert torch.equal(xq, xq_ref)
    assert torch.equal(xs, xs_ref)


def test_activation_quant_zero_row_and_ste():
    x = torch.zeros(2, 4)
    x[1] = torch.tensor([1.0, -2.0, 0.5, 0.0])
    xq, xs = quantize_activations(x)
    assert not xq[0].any() and float(xs[0]) == pytest.approx(1e-5 / 127)
    assert xq[1].tolist() == [64, -127, 32, 0]  # 63.5 rounds half to even -> 64; 31.75 -> 32
    x.requires_grad_(True)
    y = fake_quant_activations(x)
    assert torch.equal(y.detach(), xq.float() * xs[:, None])
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rule"):
        QuantConfig(rule="sign")
    with pytest.raises(ValueError, match="threshold"):
        QuantConfig(rule="threshold", threshold=-1.0)
    with pytest.raises(ValueError, match="'w'"):
        ternary_codes(torch.zeros(3))
