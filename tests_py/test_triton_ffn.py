"""The grouped tiled FFN and the ternary linear layer of trix.triton against the float64 torch
reference of trix.autograd (the function gradcheck verifies), forward and every gradient."""
import pytest

from triton_env import DEVICE, tol, torch

from trix.autograd import ternary_linear_reference, tiled_ffn_reference
from trix.quant import QuantConfig
from trix.triton import autograd as TA

pytestmark = pytest.mark.triton


def ffn_case(n, d, tiles, h, k, seed, unused=(), gates=True, skip_tile=None):
    """Float64 leaf tensors x, up, down, gates and tile_idx [n, k] (distinct tiles per row; -1 at the
    `unused` (row, slot) pairs; no slot goes to `skip_tile`)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):  # float32 values, so that both paths quantize the same weights
        return torch.randn(*shape, generator=g).double()

    x, up, down = randn(n, d), randn(tiles * h, d), randn(tiles * d, h)
    allowed = torch.tensor([t for t in range(tiles) if t != skip_tile])
    idx = torch.stack([allowed[torch.randperm(len(allowed), generator=g)[:k]] for _ in range(n)])
    for r, j in unused:
        idx[r, j] = -1
    gt = torch.rand(n, k, generator=g).double() + 0.5 if gates else None
    leaves = [t.requires_grad_() for t in (x, up, down) + ((gt,) if gates else ())]
    return leaves, idx


def run_both(leaves, idx, tiles, activation, dtype=torch.float32, cfg=QuantConfig()):
    """(reference outputs and grads in float64, Triton outputs and grads) for the same upstream gradient."""
    x, up, down = leaves[:3]
    gates = leaves[3] if len(leaves) > 3 else None
    # The reference sees the activations rounded to `dtype`, as the kernels do.
    xr = x.detach().to(dtype).double().requires_grad_()
    ref_leaves = [xr] + leaves[1:]
    y_ref = tiled_ffn_reference(xr, up, down, tiles, idx, gates, activation, cfg)
    gy = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    ref = [y_ref] + list(torch.autograd.grad(y_ref, ref_leaves, gy))
    dev = [t.detach().to(DEVICE) for t in leaves]
    dev = [dev[0].to(dtype)] + [t.float() for t in dev[1:]]
    dev = [t.requires_grad_() for t in dev]
    y = TA.tiled_ffn(dev[0], dev[1], dev[2], tiles, idx.to(DEVICE), dev[3] if gates is not None else None,
                     activation, cfg)
    got = [y] + list(torch.autograd.grad(y, dev, gy.to(DEVICE).to(y.dtype)))
    return ref, [t.detach().cpu() for t in got]


def assert_close(ref, got, dtype, names):
    for name, r, g in zip(names, ref, got):
        scale = float(r.detach().abs().max())
        err = float((g.double() - r.detach()).abs().max())
        assert err <= tol(dtype, scale) * (1 if dtype == torch.float32 else 4), (name, err, scale)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "identity"])
def test_top2_with_gates_unused_slots_and_an_unrouted_tile(activation):
    tiles, h, d = 4, 40, 130
    leaves, idx = ffn_case(19, d, tiles, h, 2, seed=len(activation), unused=[(3, 1), (5, 0)], skip_tile=2)
    ref, got = run_both(leaves, idx, tiles, activation)
    assert_close(ref, got, torch.float32, ["y", "dx", "dup", "ddown", "dgates"])
    dup, ddown = got[2], got[3]
    assert dup.dtype == torch.float32 and ddown.shape == (tiles * d, h)
    assert torch.count_nonzero(dup[2 * h:3 * h]) == 0 and torch.count_nonzero(ddown[2 * d:3 * d]) == 0
    assert torch.count_nonzero(dup[:h]) > 0


def test_top1_without_gates_many_rows_per_tile():
    """More rows than one row block per tile (several blocks of the schedule per tile)."""
    leaves, idx = ffn_case(70, 33, 3, 17, 1, seed=5, gates=False)
    ref, got = run_both(leaves, idx, 3, "relu")
    assert_close(ref, got, torch.float32, ["y", "dx", "dup", "ddown"])


def test_threshold_rule():
    leaves, idx = ffn_case(9, 20, 2, 8, 1, seed=6)
    ref, got = run_both(leaves, idx, 2, "gelu", cfg=QuantConfig(rule="threshold", threshold=0.3))
    assert_close(ref, got, torch.float32, ["y", "dx", "dup", "ddown", "dgates"])


def test_every_slot_unused_gives_zeros():
    leaves, idx = ffn_case(5, 20, 2, 8, 1, seed=6, unused=[(r, 0) for r in range(5)])
    dev = [t.detach().float().to(DEVICE).requires_grad_() for t in leaves]
    y = TA.tiled_ffn(dev[0], dev[1], dev[2], 2, idx.to(DEVICE), dev[3], "relu")
    grads = torch.autograd.grad(y, dev, torch.ones_like(y))
    assert all(torch.count_nonzero(t) == 0 for t in (y,) + grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_activations(dtype):
    leaves, idx = ffn_case(17, 64, 3, 24, 2, seed=7, unused=[(0, 1)])
    for t in leaves[1:3]:  # weights of the magnitude the init gives, so the products fit float16
        t.data.mul_(0.05)
    ref, got = run_both(leaves, idx, 3, "silu", dtype=dtype)
    assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == torch.float32
    # bfloat16/float16 round the hidden activations between the two products: 4x the product's tolerance
    assert_close(ref, got, dtype, ["y", "dx", "dup", "ddown", "dgates"])


def test_schedule_covers_each_tiles_sorted_rows_once():
    idx = torch.tensor([[2, 0], [2, -1], [0, 2], [2, 5], [1, 2]])
    sch = TA.build_schedule(idx, tiles=4, block_rows=2)
    order = sch.order.long()
    flat = idx.reshape(-1)
    assert torch.equal(flat[order][:8], torch.tensor([0, 0, 1, 2, 2, 2, 2, 2]))  # -1 and 5 are dropped, last
    assert torch.equal(sch.offsets, torch.tensor([0, 2, 3, 8, 8], dtype=torch.int32))
    assert torch.equal(sch.src.long(), order // 2)
    covered = []
    for t, a, b in zip(sch.blk_tile.tolist(), sch.blk_start.tolist(), sch.blk_end.tolist()):
        if t >= 0:  # a block starts inside its tile's run; blk_end is the end of that run
            assert sch.offsets[t] <= a < b == sch.offsets[t + 1]
            covered += [(t, r) for r in range(a, min(b, a + 2))]
    assert sorted(covered) == [(int(flat[order[r]]), r) for r in range(8)]


@pytest.mark.parametrize("cfg", [QuantConfig(), QuantConfig(per_row=True)])
def test_ternary_linear_forward_and_gradients(cfg):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(6, 140, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(23, 140, generator=g, dtype=torch.float64, requires_grad=True)
    y_ref = ternary_linear_reference(x, w, cfg)
    gy = torch.randn(y_ref.shape, generator=g, dtype=torch.float64)
    ref = [y_ref] + list(torch.autograd.grad(y_ref, (x, w), gy))
    xd, wd = [t.detach().float().to(DEVICE).requires_grad_() for t in (x, w)]
    y = TA.ternary_linear(xd, wd, cfg)
    got = [y] + list(torch.autograd.grad(y, (xd, wd), gy.float().to(DEVICE)))
    assert_close(ref, [t.detach().cpu() for t in got], torch.float32, ["y", "dx", "dw"])
