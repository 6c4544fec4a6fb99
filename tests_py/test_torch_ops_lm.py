"""TriXLM through torch.compile(fullgraph=True) and torch.export with every routing method: one graph,
the same logits and gradients as eager (the custom ops of trix._torch_ops are single nodes)."""
import pytest

torch = pytest.importorskip("torch")

from trix.nn import TriXLM, TriXLMConfig  # noqa: E402
from trix.nn.routing import ROUTING_METHODS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = [("sparse", m, {}) for m in ROUTING_METHODS] + [("tiled", "emergent", dict(train_mode="dense")),
                                                       ("hierarchical", "emergent", {})]


def _model(ffn, routing, extra):
    cfg = TriXLMConfig(vocab_size=65, block_size=16, n_layer=1, n_head=2, d_model=32, tiles=4, routing=routing,
                       ffn=ffn, **extra)
    return TriXLM(cfg).train()


def _loss(out):
    logits, _, aux = out
    return logits.square().mean() + sum(aux.values())


@pytest.mark.parametrize("ffn,routing,extra", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_compile_fullgraph_matches_eager(ffn, routing, extra):
    idx = torch.randint(0, 65, (2, 16), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()  # each case compiles its own model: no recompile limit across cases
    eager, comp = _model(ffn, routing, extra), _model(ffn, routing, extra)
    comp.load_state_dict(eager.state_dict())
    compiled = torch.compile(comp, fullgraph=True, backend="aot_eager")
    torch.manual_seed(1)
    le = _loss(eager(idx))
    torch.manual_seed(1)
    lc = _loss(compiled(idx))
    le.backward()
    lc.backward()
    if routing == "random":  # torch.randint inside the graph draws differently: only the structure is comparable
        assert torch.isfinite(lc)
        return
    torch.testing.assert_close(lc, le, rtol=1e-5, atol=1e-6)
    for (name, pe), pc in zip(eager.named_parameters(), comp.parameters()):
        if pe.grad is not None:
            torch.testing.assert_close(pc.grad, pe.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("ffn,routing,extra", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_export_matches_eager(ffn, routing, extra, mode):
    m = _model(ffn, routing, extra)
    getattr(m, mode)()
    idx = torch.randint(0, 65, (2, 16), generator=torch.Generator().manual_seed(2))
    ep = torch.export.export(m, (idx,))
    logits, infos, _ = ep.module()(idx)
    ref, ref_infos, _ = m(idx)
    assert logits.shape == ref.shape and infos[0].tile.shape == ref_infos[0].tile.shape
    if routing != "random":
        torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(infos[0].tile, ref_infos[0].tile)


def test_compiled_hierarchy_rebuilds_like_eager():
    """A compiled forward marks the periodic rebuild due; TriXLM.rebuild_due() after the forward, before
    the optimizer step, reclusters from the same weights as eager does, so training stays the same."""
    torch._dynamo.reset()
    cfg = TriXLMConfig(vocab_size=65, block_size=16, n_layer=1, n_head=2, d_model=32, tiles=8, clusters=2,
                       ffn="hierarchical", routing="emergent", rebuild_every=2)
    eager, comp = TriXLM(cfg).train(), TriXLM(cfg).train()
    # a partition k-means would not choose: the first rebuild must move tiles, in both models
    eager.blocks[0].ffn.cluster_of.copy_(torch.arange(8) % 2)
    comp.load_state_dict(eager.state_dict())
    compiled = torch.compile(comp, fullgraph=True, backend="aot_eager")
    opts = [torch.optim.Adam(m.parameters(), lr=0.05) for m in (eager, comp)]
    g = torch.Generator().manual_seed(3)
    rebuilt, clusters = [], [eager.blocks[0].ffn.cluster_of.clone()]
    for _ in range(4):
        idx = torch.randint(0, 65, (2, 16), generator=g)
        for model, run, opt in ((eager, eager, opts[0]), (comp, compiled, opts[1])):
            loss = _loss(run(idx))
            if model is comp:
                rebuilt.append(model.rebuild_due())
            else:
                assert model.rebuild_due() == 0  # the eager forward already rebuilt
            opt.zero_grad()
            loss.backward()
            opt.step()
        fe, fc = eager.blocks[0].ffn, comp.blocks[0].ffn
        assert torch.equal(fe.cluster_of, fc.cluster_of) and int(fe.calls) == int(fc.calls)
        clusters.append(fe.cluster_of.clone())
        for (name, pe), pc in zip(eager.named_parameters(), comp.parameters()):
            torch.testing.assert_close(pc, pe, rtol=1e-4, atol=1e-5, msg=name)
    assert rebuilt == [0, 1, 0, 1]
    assert any(not torch.equal(c, clusters[0]) for c in clusters)  # a rebuild moved tiles: the check has teeth
