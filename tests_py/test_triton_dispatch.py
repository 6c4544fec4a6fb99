"""The hook by which trix.autograd sends CUDA tensors to trix.triton, and `trix train`'s code path.

Without a GPU, TRIX_FORCE_TRITON=1 sends CPU tensors down the path CUDA tensors take (the Triton
kernels, under the interpreter): `trix train --device cuda` runs exactly that path with the tensors on
the GPU, so a forced CPU run shows it goes through the Triton ops and computes what libtrix computes."""
import json

import numpy as np
import pytest

from triton_env import DEVICE, INTERPRET, torch

from trix import autograd as A
from trix.triton import dispatch

pytestmark = pytest.mark.triton


@pytest.fixture
def forced(monkeypatch):
    if DEVICE == "cpu":
        monkeypatch.setenv(dispatch.FORCE_ENV, "1")
    dispatch.calls.clear()
    yield
    dispatch.calls.clear()


def test_which_tensors_take_the_triton_path(monkeypatch):
    monkeypatch.delenv(dispatch.FORCE_ENV, raising=False)
    x = torch.zeros(2, 3)
    assert not dispatch.applies(x) and not dispatch.applies(x.double())
    monkeypatch.setenv(dispatch.FORCE_ENV, "1")
    if INTERPRET:
        assert dispatch.applies(x, None, x.half()) and not dispatch.applies(x.double())
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            dispatch.applies(x)
    if torch.cuda.is_available():
        assert dispatch.applies(x.cuda(), x.cuda().bfloat16()) and not dispatch.applies(x.cuda().double())


def test_autograd_ops_go_through_triton_and_agree_with_libtrix(forced):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 40, generator=g)
    up, down = torch.randn(3 * 16, 40, generator=g) * 0.1, torch.randn(3 * 40, 16, generator=g) * 0.1
    idx = torch.randint(0, 3, (9, 1), generator=g)
    w = torch.randn(7, 40, generator=g)
    dev = [t.to(DEVICE).clone().requires_grad_() for t in (x, up, down, w)]
    y = A.tiled_ffn(dev[0], dev[1], dev[2], 3, idx.to(DEVICE), None, "gelu")
    z = A.ternary_linear(dev[0], dev[3])
    (y.square().sum() + z.square().sum()).backward()
    assert dispatch.calls["tiled_ffn"] == 1 and dispatch.calls["ternary_linear"] == 1
    host = [t.clone().requires_grad_() for t in (x, up, down, w)]  # leaves of their own
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(dispatch.FORCE_ENV, raising=False)
        yr = A.tiled_ffn(host[0], host[1], host[2], 3, idx, None, "gelu")  # libtrix
        zr = A.ternary_linear(host[0], host[3])
        (yr.square().sum() + zr.square().sum()).backward()
    assert dispatch.calls["tiled_ffn"] == 1  # the libtrix run did not come here
    for a, b in [(y, yr), (z, zr)] + [(d.grad, h.grad) for d, h in zip(dev, host)]:
        assert (a.detach().cpu() - b.detach()).abs().max() <= 1e-5 * max(1.0, float(b.detach().abs().max()))


def _tiny_text(path):
    rng = np.random.default_rng(0)
    path.write_text("".join(rng.choice(["the ", "king ", "and ", "queen ", "\n", "fair "], 400)), encoding="utf-8")
    return path


def test_trix_train_on_the_gpu_code_path(tmp_path, forced):
    from trix.cli import main

    cfg = dict(model=dict(block_size=8, n_layer=1, n_head=2, d_model=32, tiles=2, expansion=2, ffn="sparse",
                          ternary_attention=True), iters=2, batch_size=2, eval_interval=2, eval_batches=1,
               final_eval_batches=1, eval_batch_size=2, warmup=1)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    data = _tiny_text(tmp_path / "tiny.txt")
    args = ["train", "--config", str(tmp_path / "cfg.json"), "--data", str(data), "--no-progress", "--device",
            DEVICE]
    assert main(args + ["--out", str(tmp_path / "triton")]) == 0
    assert dispatch.calls["tiled_ffn"] > 0 and dispatch.calls["ternary_linear"] > 0
    with pytest.MonkeyPatch.context() as mp:  # the same run on the CPU path (libtrix)
        mp.delenv(dispatch.FORCE_ENV, raising=False)
        assert main(args[:-1] + ["cpu", "--out", str(tmp_path / "cpu")]) == 0
    got, ref = (json.loads((tmp_path / d / "result.json").read_text())["history"] for d in ("triton", "cpu"))
    assert [h["iter"] for h in got] == [0, 2]
    assert abs(got[0]["val_loss"] - ref[0]["val_loss"]) < 1e-5  # the same weights: the same function
    assert abs(got[-1]["val_loss"] - ref[-1]["val_loss"]) < 1e-3  # two Adam steps from float-rounding-close grads


def test_routing_entry_points_match_the_modules_routing(forced):
    from trix.nn import SparseTriXFFN
    from trix.nn.ffn import normalize_rows

    ffn = SparseTriXFFN(d_model=40, tiles=5, expansion=2, seed=3)
    x = torch.randn(13, 40, generator=torch.Generator().manual_seed(4))
    sig = ffn.signatures()
    xn = normalize_rows(x)
    scores = dispatch.route_scores(xn.to(DEVICE), sig.to(DEVICE)).cpu()
    ref = xn.double() @ sig.double().t()
    assert (scores.double() - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    assert torch.equal(dispatch.select_top(scores.to(DEVICE), 1).cpu(), info_ref(ffn, x).tile)
    assert dispatch.calls["route_scores"] == 1 and dispatch.calls["select_top"] == 1
    _, info, _ = ffn(x.to(DEVICE))  # the module routes through the same entry points
    assert dispatch.calls["route_scores"] >= 2 and dispatch.calls["select_top"] >= 2
    assert torch.equal(info.tile.cpu(), info_ref(ffn, x).tile)


def info_ref(ffn, x):
    """The module's routing on libtrix (CPU, Triton not forced)."""
    import os

    old = os.environ.pop(dispatch.FORCE_ENV, None)
    try:
        return ffn(x.cpu())[1]
    finally:
        if old is not None:
            os.environ[dispatch.FORCE_ENV] = old
