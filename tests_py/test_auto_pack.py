"""Eval without pack() (issue 14): no-grad eval calls pack automatically, once per weight change, and
give what the general unpacked path gives; anything that changes a weight repacks; autograd unpacks."""
import copy

import pytest

torch = pytest.importorskip("torch")

from trix.nn import TriXLinear, TriXLM, TriXLMConfig  # noqa: E402
from trix.nn.packing import Packable  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(vocab_size=13, block_size=12, n_layer=2, n_head=2, d_model=32, ternary_attention=True)
KINDS = [dict(ffn="sparse"), dict(ffn="sparse", routing="learned", top_k=2), dict(ffn="tiled", train_mode="dense"),
         dict(ffn="hierarchical", tiles=8, top_p=2), dict(ffn="sparse", routing="mean_signature")]


def _idx(seed=0):
    return torch.randint(0, 13, (3, 12), generator=torch.Generator().manual_seed(seed))


def _ternary(m):
    return [x for x in m.modules() if isinstance(x, Packable)]


def _reference(m, idx):
    """The general unpacked path on a copy with automatic packing off."""
    ref = copy.deepcopy(m).set_auto_pack(False).unpack()
    with torch.no_grad():
        return ref(idx)[0]


@pytest.mark.parametrize("kw", KINDS)
def test_no_grad_eval_packs_once_and_matches_the_general_path(kw):
    m = TriXLM(TriXLMConfig(**SMALL, **kw)).eval()
    idx = _idx()
    with torch.no_grad():
        a = m(idx)[0]
        keys = [x._auto_key for x in _ternary(m)]
        b = m(idx)[0]
    assert all(k is not None for k in keys) and not any(x.packed for x in _ternary(m))
    assert [x._auto_key for x in _ternary(m)] == keys  # nothing changed: no repack
    assert torch.equal(a, b)
    torch.testing.assert_close(a, _reference(m, idx), rtol=1e-5, atol=1e-5)


def test_an_optimizer_step_in_eval_mode_repacks():
    m = TriXLM(TriXLMConfig(**SMALL, ffn="sparse")).eval()
    idx = _idx(1)
    with torch.no_grad():
        before = m(idx)[0]
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    logits = m(idx)[0]  # autograd on: the automatic packs are dropped, gradients flow
    assert all(x._auto_key is None and x._packed is None for x in _ternary(m))
    logits.square().mean().backward()
    opt.step()
    with torch.no_grad():
        after = m(idx)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(m, idx), rtol=1e-5, atol=1e-5)


def test_load_state_dict_in_place_edits_and_assignment_repack():
    m = TriXLM(TriXLMConfig(**SMALL, ffn="sparse")).eval()
    other = TriXLM(TriXLMConfig(**SMALL, ffn="sparse"))
    torch.manual_seed(3)
    for p in other.parameters():
        torch.nn.init.normal_(p, std=0.1)
    idx = _idx(2)
    with torch.no_grad():
        m(idx)
        m.load_state_dict(other.state_dict())
        torch.testing.assert_close(m(idx)[0], _reference(m, idx), rtol=1e-5, atol=1e-5)
        m.blocks[0].ffn.up.mul_(-1)  # in place: seen through the version counter
        torch.testing.assert_close(m(idx)[0], _reference(m, idx), rtol=1e-5, atol=1e-5)
        m.blocks[1].ffn.down = torch.nn.Parameter(torch.randn_like(m.blocks[1].ffn.down))
        torch.testing.assert_close(m(idx)[0], _reference(m, idx), rtol=1e-5, atol=1e-5)


def test_training_and_the_switch_drop_the_automatic_pack():
    lin = TriXLinear(16, 8).eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        lin(x)
    assert lin._auto_key is not None and not lin.packed
    lin.train()
    assert lin._auto_key is None and lin._packed is None
    lin.eval()
    lin.auto_pack = False
    with torch.no_grad():
        lin(x)
    assert lin._packed is None
    lin.auto_pack = True
    with torch.no_grad():
        lin(x.double().float())
    assert lin._packed is not None
    with torch.no_grad():
        assert lin(x.to(torch.bfloat16)).dtype == torch.bfloat16  # not float32: the general path
    assert lin._packed is None


def test_an_explicit_pack_is_left_alone():
    lin = TriXLinear(16, 8).eval().pack()
    x = torch.randn(4, 16)
    with torch.no_grad():
        y = lin(x)
    assert lin.packed and lin._auto_key is None
    y.requires_grad_(False)
    z = lin(x)  # autograd on: an explicit pack stays (its documented behaviour)
    assert lin.packed and torch.equal(z.detach(), y)
