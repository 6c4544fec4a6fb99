"""trix.train: training, resumable atomic checkpoints, generation, and 2-process data parallelism.

The tests use a tiny stand-in language model (defined here, tests only) that follows
docs/design/lm_contract.md, so the training machinery is tested on its own, fast and deterministically.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from trix import train as T  # noqa: E402
from trix.data import CharDataset, CharVocab, load_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent
STANDIN = "test_train:make_standin"


@dataclass
class RoutingInfo:
    tile: torch.Tensor
    cluster: Optional[torch.Tensor]
    scores: Optional[torch.Tensor]
    counts: torch.Tensor


class StandInLM(nn.Module):
    """Embedding + causal mean of the context + tiled FFN routed per the contract's routing modes + head."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        V, d, Tn = cfg["vocab_size"], cfg["d_model"], cfg.get("tiles", 4)
        self.tiles, self.h = Tn, cfg.get("expansion", 4) * d // Tn
        self.emb, self.pos = nn.Embedding(V, d), nn.Embedding(cfg["block_size"], d)
        self.up = nn.Parameter(torch.randn(Tn * self.h, d) * d ** -0.5)
        self.down = nn.Parameter(torch.randn(d, Tn * self.h) * (Tn * self.h) ** -0.5)
        self.gate = nn.Linear(d, Tn, bias=False) if cfg.get("routing") == "learned" else None
        self.head = nn.Linear(d, V)
        self.override: Optional[str] = None
        self.balance_coef = cfg.get("balance_coef", 0.0)

    def _route(self, x2, idx):
        n, Tn = x2.shape[0], self.tiles
        mode = self.override or self.cfg.get("routing", "emergent")
        scores = None
        if mode == "dense":
            return None, None
        if mode in ("emergent",):
            sig = torch.sign(self.up.detach().view(Tn, self.h, -1).sum(1))
            scores = x2 @ sig.t()
            tile = scores.argmax(-1)
        elif mode == "learned":
            scores = self.gate(x2)
            tile = scores.argmax(-1)
        elif mode == "random":
            tile = torch.randint(0, Tn, (n,))
        elif mode == "first":
            tile = torch.zeros(n, dtype=torch.long)
        else:  # hash
            tile = idx.reshape(-1) % Tn
        return tile, scores

    def forward(self, idx):
        B, L = idx.shape
        x = self.emb(idx) + self.pos(torch.arange(L))
        x = torch.cumsum(x, 1) / torch.arange(1, L + 1).view(1, L, 1)
        x2 = x.reshape(B * L, -1)
        tile, scores = self._route(x2, idx)
        hid = F.relu(x2 @ self.up.t())
        aux = {"balance": torch.zeros(())}
        if tile is not None:
            mask = F.one_hot(tile, self.tiles).repeat_interleave(self.h, 1).to(hid.dtype)
            if self.gate is not None:
                mask = mask * torch.softmax(scores, -1).gather(1, tile[:, None])
            hid = hid * (mask * self.tiles if self.override and getattr(self, "rescale", False) else mask)
            if scores is not None and self.balance_coef:
                aux["balance"] = self.balance_coef * torch.softmax(scores, -1).mean(0).pow(2).sum() * self.tiles
        y = x2 + hid @ self.down.t()
        logits = self.head(y).view(B, L, -1)
        infos = [None] if tile is None and self.cfg.get("ffn") == "float" else [RoutingInfo(
            tile=(tile if tile is not None else torch.zeros(B * L, dtype=torch.long))[:, None], cluster=None,
            scores=scores, counts=torch.bincount(tile if tile is not None else torch.zeros(B * L, dtype=torch.long),
                                                 minlength=self.tiles))]
        return logits, infos, aux

    def param_counts(self):
        total = sum(p.numel() for p in self.parameters())
        emb = self.emb.weight.numel() + self.pos.weight.numel()
        return {"total": total, "non_embedding": total - emb,
                "routing": 0 if self.gate is None else self.gate.weight.numel()}

    def set_inference_routing(self, mode, rescale=False):
        self.override = mode
        self.rescale = rescale

    def telemetry(self):
        return [{"signature_diversity": 0.0}]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.cfg["block_size"]:])[0][:, -1] / temperature
            idx = torch.cat([idx, torch.multinomial(torch.softmax(logits, -1), 1)], 1)
        return idx


def make_standin(cfg: dict) -> StandInLM:
    return StandInLM(cfg)


# Factories are looked up by name, never imported from a file: the stand-in registers itself (a
# subprocess gets it from --model-factory on its command line).
T.register_model_factory(STANDIN, make_standin)


def tiny_text(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = ["the ", "king ", "and ", "queen ", "Rome ", "\n", ", ", "fair ", "day. "]
    p = tmp_path / "tiny.txt"
    p.write_text("".join(rng.choice(words, 3000)), encoding="utf-8")
    return p


def tiny_config(**kw) -> T.TrainConfig:
    base = dict(model=dict(block_size=16, d_model=16, tiles=4, expansion=2, ffn="sparse", routing="emergent"),
                iters=12, batch_size=4, eval_interval=4, eval_batches=2, final_eval_batches=3, eval_batch_size=4,
                warmup=2, model_factory=STANDIN)
    base.update(kw)
    return T.TrainConfig(**base)


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_training_lowers_loss_and_writes_checkpoint(tmp_path):
    ds = load_dataset(str(tiny_text(tmp_path)))
    res = T.train(tiny_config(iters=60, eval_interval=60, lr=1e-2), ds, tmp_path / "run", progress=False)
    assert res.iters_done == 60 and (tmp_path / "run" / "ckpt.pt").is_file()
    first, last = res.history[0]["val_loss"], res.history[-1]["val_loss"]
    assert last < first - 0.5, (first, last)
    assert res.final_val_loss == last
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    ds = load_dataset(str(tiny_text(tmp_path)))
    whole = T.train(tiny_config(), ds, tmp_path / "a", progress=False)
    part = T.train(tiny_config(), ds, tmp_path / "b", progress=False, stop_after=6)
    assert part.iters_done == 6
    rest = T.train(tiny_config(), ds, tmp_path / "b", progress=False)
    assert rest.iters_done == 12
    ma, _, _ = T.load_checkpoint(tmp_path / "a" / "ckpt.pt")
    mb, _, _ = T.load_checkpoint(tmp_path / "b" / "ckpt.pt")
    assert torch.equal(flat_params(ma), flat_params(mb))
    assert [h["iter"] for h in whole.history] == [h["iter"] for h in rest.history]


def test_resume_refuses_a_different_config(tmp_path):
    ds = load_dataset(str(tiny_text(tmp_path)))
    T.train(tiny_config(iters=4), ds, tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="different config"):
        T.train(tiny_config(iters=4, lr=0.5), ds, tmp_path / "r", progress=False)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    p = tmp_path / "ckpt.pt"
    T.atomic_save({"v": 1}, p)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        T.atomic_save({"v": Unpicklable()}, p)
    assert torch.load(p)["v"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["ckpt.pt"]


def test_lr_schedule_warms_up_then_decays_to_min():
    cfg = T.TrainConfig(iters=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert T.lr_at(cfg, 0) < T.lr_at(cfg, 9) < cfg.lr
    assert abs(T.lr_at(cfg, 10) - cfg.lr) < 1e-9
    assert abs(T.lr_at(cfg, 100) - cfg.min_lr) < 1e-9


def test_generate_from_checkpoint(tmp_path):
    ds = load_dataset(str(tiny_text(tmp_path)))
    T.train(tiny_config(iters=4), ds, tmp_path / "g", progress=False)
    model, chars, _ = T.load_checkpoint(tmp_path / "g" / "ckpt.pt")
    text = T.sample(model, chars, "the ", 30, seed=1)
    assert text.startswith("the ") and len(text) == 34 and set(text) <= set(chars)
    assert T.sample(model, chars, "the ", 30, seed=1) == text


def test_cli_train_and_generate(tmp_path, capsys):
    from trix.cli import main

    data = tiny_text(tmp_path)
    cfg = tmp_path / "cfg.json"
    import json
    from dataclasses import asdict
    cfg.write_text(json.dumps(asdict(tiny_config(iters=4))))
    env_path = str(HERE)
    sys.path.insert(0, env_path)
    try:
        assert main(["train", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "c"),
                     "--no-progress"]) == 0
        assert (tmp_path / "c" / "result.json").is_file()
        assert main(["generate", str(tmp_path / "c" / "ckpt.pt"), "-n", "20", "--prompt", "king"]) == 0
        lines = capsys.readouterr().out.splitlines()
        after_train = lines[[i for i, l in enumerate(lines) if l.startswith("val loss")][0] + 1]
        assert after_train.startswith("king")
        assert main(["generate", str(tmp_path / "missing.pt")]) == 2
    finally:
        sys.path.remove(env_path)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """torchrun --nproc_per_node 2 gives the weights one process gets with the same global batch."""
    data = tiny_text(tmp_path)
    import json
    from dataclasses import asdict

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(asdict(tiny_config(iters=8, eval_interval=8, lr=3e-3))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    base = ["-m", "trix", "train", "--config", str(cfg), "--data", str(data), "--no-progress", "--threads", "1",
            "--model-factory", STANDIN]
    one = subprocess.run([sys.executable] + base + ["--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(29500 + os.getpid() % 1000)] + base + ["--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    sys.path.insert(0, str(HERE))
    try:
        m1, _, c1 = T.load_checkpoint(tmp_path / "one" / "ckpt.pt")
        m2, _, c2 = T.load_checkpoint(tmp_path / "two" / "ckpt.pt")
    finally:
        sys.path.remove(str(HERE))
    p1, p2 = flat_params(m1), flat_params(m2)
    init = flat_params(make_standin(dict(c1["model_config"])))  # weights moved, so the comparison means something
    assert (p1 - init).abs().max() > 1e-3
    assert torch.allclose(p1, p2, atol=1e-5, rtol=1e-4), (p1 - p2).abs().max()
    assert abs(c1["history"][-1]["val_loss"] - c2["history"][-1]["val_loss"]) < 1e-4
