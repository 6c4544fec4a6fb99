"""Train one language model (`trix train`) and sample from a checkpoint (`trix generate`).

One process or several (``torchrun --nproc_per_node N -m trix train ...``, gloo on CPU): every rank draws
the same global batch from the same seeded generator and trains on its contiguous slice; gradients are
averaged with one all-reduce, so N processes follow one process with the same global batch up to float
rounding. Batch statistics inside the model (the load-balance aux loss, random routing draws) are per
rank, as in every data-parallel MoE; the equivalence is exact for the cross-entropy term.

Checkpoints are written atomically (temporary file + os.replace): an interrupted run resumes from the
last complete checkpoint, with optimizer, data order and RNG state, and continues as if never stopped.
Torch is imported inside functions so that ``trix --help`` stays light.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .routing_methods import ROUTING_METHODS

DEFAULT_FACTORY = "trix_lm"  # a name in the model factory registry below


@dataclass
class TrainConfig:
    """Everything that determines a training run. ``model`` holds TriXLMConfig fields
    (vocab_size is filled in from the data)."""

    model: Dict[str, Any] = field(default_factory=lambda: dict(
        block_size=64, n_layer=4, n_head=4, d_model=128, dropout=0.0, ffn="sparse", routing="emergent",
        tiles=4, expansion=4, top_k=1))
    iters: int = 2000
    batch_size: int = 12           # global batch, split evenly over the processes
    lr: float = 1e-3               # nanoGPT's shakespeare_char CPU settings
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_batches: int = 10         # intermediate evaluations
    final_eval_batches: int = 50   # the reported number
    eval_batch_size: int = 32
    seed: int = 1337
    device: str = "cpu"
    model_factory: str = DEFAULT_FACTORY

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "TrainConfig":
        known = set(TrainConfig.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known: {sorted(known)}")
        return TrainConfig(**d)


@dataclass
class TrainResult:
    config: Dict[str, Any]
    history: List[Dict[str, Any]]       # one entry per evaluation
    final_val_loss: float
    best_val_loss: float
    param_counts: Dict[str, int]
    seconds: float                      # training time over all sessions of this run
    step_ms: float                      # mean milliseconds per training step
    iters_done: int
    checkpoint: Optional[str]
    init_sha256: str = ""                              # of the initial state_dict (see state_sha256)
    tiles_scored_per_token: Optional[float] = None     # means over the final evaluation (None: no routing)
    tiles_active_per_token: Optional[float] = None


def state_sha256(model) -> str:
    """sha256 of a model's state_dict: tensors in name order, each as its raw bytes (C order)."""
    import hashlib

    h = hashlib.sha256()
    sd = model.state_dict()
    for name in sorted(sd):
        h.update(sd[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_trix_lm(model_cfg: Dict[str, Any]):
    """The default model factory: trix.nn.TriXLM from a dict of TriXLMConfig fields."""
    from trix.nn import TriXLM, TriXLMConfig

    return TriXLM(TriXLMConfig(**model_cfg))


# Model factories by name. A checkpoint or config file names its factory; the name is looked up
# here and never imported, so a downloaded file cannot run code (docs/format.md "Checkpoints").
# Users add theirs in code with register_model_factory; `--model-factory module:function` on the
# command line imports one explicitly (import_model_factory), which is the user's own choice.
# Worker processes (spawned: fresh interpreters) learn the factories this process registered from
# code through the environment variable TRIX_MODEL_FACTORIES ("name=module:function;..."), which this
# process writes and its children inherit; it is never read from a file.
_FACTORY_ENV = "TRIX_MODEL_FACTORIES"
_FACTORIES: Dict[str, Callable[[Dict[str, Any]], Any]] = {DEFAULT_FACTORY: build_trix_lm}
_LEGACY_NAMES = {"trix.train:build_trix_lm": DEFAULT_FACTORY}  # what checkpoints before the registry name


class CheckpointError(ValueError):
    """A checkpoint that is unreadable, foreign or malformed (one-line message naming what is wrong)."""


def register_model_factory(name: str, fn: Callable[[Dict[str, Any]], Any]) -> None:
    """Make ``fn(model_config_dict) -> nn.Module`` available under ``name`` to train(), load_checkpoint()
    and the CLI. Registering a name again replaces it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model_factory: argument 'name' must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"register_model_factory: argument 'fn' must be callable, got {type(fn).__name__}")
    _FACTORIES[name] = fn
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if mod and mod != "__main__" and "<" not in qual and "=" not in name and ";" not in name:
        entries = [e for e in os.environ.get(_FACTORY_ENV, "").split(";") if e and not e.startswith(name + "=")]
        os.environ[_FACTORY_ENV] = ";".join(entries + [f"{name}={mod}:{qual}"])


def _factory_from_parent(name: str) -> Optional[Callable[[Dict[str, Any]], Any]]:
    """The factory a parent process registered under name (see TRIX_MODEL_FACTORIES), imported."""
    for entry in os.environ.get(_FACTORY_ENV, "").split(";"):
        key, _, target = entry.rpartition("=")
        if key == name and ":" in target:
            mod, _, qual = target.partition(":")
            try:
                fn: Any = importlib.import_module(mod)
                for part in qual.split("."):
                    fn = getattr(fn, part)
            except (ImportError, AttributeError):
                return None
            _FACTORIES.setdefault(name, fn)
            return _FACTORIES[name]
    return None


def model_factories() -> List[str]:
    """The registered factory names."""
    return sorted(_FACTORIES)


def import_model_factory(spec: str) -> str:
    """Import ``module:function`` and register it under that spec: for a spec the user typed (the CLI's
    --model-factory), never for one read from a file. Returns the registered name."""
    if spec in _FACTORIES or spec in _LEGACY_NAMES:
        return spec
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"--model-factory must be a registered name {model_factories()} or 'module:function', "
                         f"got {spec!r}")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--model-factory {spec!r}: cannot import it ({e})") from None
    register_model_factory(spec, fn)
    return spec


def resolve_factory(spec: str) -> Callable[[Dict[str, Any]], Any]:
    """The registered factory called ``spec`` (old checkpoints' "trix.train:build_trix_lm" is the default)."""
    if not isinstance(spec, str):
        raise ValueError(f"model factory must be a registered name, got {type(spec).__name__}")
    spec = _LEGACY_NAMES.get(spec, spec)
    if spec not in _FACTORIES and _factory_from_parent(spec) is None:
        raise ValueError(f"unknown model factory {spec!r}; registered: {model_factories()} (register yours in code "
                         f"with trix.train.register_model_factory; a name in a file is never imported)")
    return _FACTORIES[spec]


# ---------------------------------------------------------------------------------------------- utils

def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """write(binary file) into a temporary file in path's directory, fsync, then os.replace onto path:
    readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save, written atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def lr_at(cfg: TrainConfig, it: int) -> float:
    """Linear warm-up then cosine decay to min_lr at the last iteration (nanoGPT's schedule)."""
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / (cfg.warmup + 1)
    frac = (it - cfg.warmup) / max(1, cfg.iters - cfg.warmup)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, frac))) * (cfg.lr - cfg.min_lr)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join a torch.distributed group when launched by torchrun (WORLD_SIZE > 1); gloo works on CPU."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend=os.environ.get("TRIX_DIST_BACKEND", "gloo"))
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def all_reduce_mean_(tensors, d: Dist) -> None:
    """Average tensors over ranks in place with one flat all-reduce."""
    import torch
    import torch.distributed as dist

    if d.world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= d.world
    off = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[off:off + n].view_as(t))
        off += n


def make_optimizer(model, cfg: TrainConfig):
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


def model_loss(model, x, y, infos_out: Optional[list] = None):
    """(total loss, cross-entropy, aux dict of floats). total = CE + sum of the model's weighted aux.
    infos_out: a list that receives the model's per-block RoutingInfo (or None) entries."""
    import torch.nn.functional as F

    logits, infos, aux = model(x)
    if infos_out is not None:
        infos_out.extend(infos)
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    total = ce
    for v in aux.values():
        total = total + v
    return total, ce, {k: float(v.detach()) for k, v in aux.items()}


def evaluate(model, ids, offsets_list, block_size: int, device: str, d: Dist = Dist(),
             routing: Optional[Dict[str, Any]] = None) -> float:
    """Mean cross-entropy over fixed batches; with several ranks each evaluates a share, then all-reduce.
    routing: a dict that receives tiles_scored_per_token / tiles_active_per_token (means over every
    routed block and token of these batches; None where the model routes nothing)."""
    import torch

    from .data import gather_windows

    was_training = model.training
    model.eval()
    tot = torch.zeros(2, dtype=torch.float64)
    route = torch.zeros(3, dtype=torch.float64)  # sum scored, sum active, routed inputs
    with torch.no_grad():
        for i in range(d.rank, len(offsets_list), d.world):
            x, y = gather_windows(ids, offsets_list[i], block_size)
            infos: list = []
            _, ce, _ = model_loss(model, x.to(device), y.to(device), infos)
            for info in infos:
                if info is not None and hasattr(info, "tile"):
                    n = info.tile.shape[0]
                    route[0] += float(getattr(info, "scored", 0.0)) * n
                    route[1] += float((info.tile >= 0).sum())
                    route[2] += n
            tot[0] += float(ce) * x.numel()
            tot[1] += x.numel()
    if routing is not None:
        routing["tiles_scored_per_token"] = float(route[0] / route[2]) if route[2] else None
        routing["tiles_active_per_token"] = float(route[1] / route[2]) if route[2] else None
    if d.world > 1:
        import torch.distributed as dist

        dist.all_reduce(tot)
    model.train(was_training)
    return float(tot[0] / tot[1])


# ------------------------------------------------------------------------------------------- training

ProbeFn = Callable[[Any], Dict[str, Any]]


def train(cfg: TrainConfig, dataset, out_dir: Optional[Path] = None, *, probe: Optional[ProbeFn] = None,
          progress: bool = True, desc: str = "train", resume: bool = True,
          stop_after: Optional[int] = None, position: int = 0) -> TrainResult:
    """Train ``cfg`` on ``dataset`` (trix.data.CharDataset); checkpoint to ``out_dir/ckpt.pt``.

    probe(model) -> dict is called at every evaluation (model in eval mode) and its result stored in the
    history: this is how routing statistics over training are recorded. ``stop_after`` ends the session
    after that many iterations in total (a resumable partial run; used by the tests).
    """
    import torch
    from tqdm import tqdm

    from .data import batch_offsets, eval_offsets, gather_windows

    d = init_distributed()
    if cfg.batch_size % d.world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {d.world} processes")
    local = cfg.batch_size // d.world
    # The seed sets every random choice: initialisation (unless the model config fixes its own), hash
    # tables, k-means, random routing draws (torch's RNG) and data order.
    mcfg = dict(cfg.model, vocab_size=dataset.vocab.size)
    mcfg.setdefault("seed", cfg.seed)
    block = int(mcfg["block_size"])
    ckpt_path = out_dir / "ckpt.pt" if out_dir else None

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = resolve_factory(cfg.model_factory)(mcfg).to(cfg.device)
    init_sha = state_sha256(model)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: List[Dict[str, Any]] = []
    start, seconds, steps_timed = 0, 0.0, 0

    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = read_checkpoint(ckpt_path, cfg.device, RESUME_KEYS)
        if ck["train_config"] != asdict(cfg):
            raise ValueError(f"{ckpt_path} was written by a different config; use another --out or delete it")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["data_rng"])
        torch.set_rng_state(ck["torch_rng"])
        history, start = ck["history"], ck["iter"]
        seconds, steps_timed = ck["seconds"], ck["steps_timed"]
        init_sha = ck.get("init_sha256", init_sha)

    ev_small = eval_offsets(len(dataset.val), block, cfg.eval_batch_size, cfg.eval_batches)
    ev_final = eval_offsets(len(dataset.val), block, cfg.eval_batch_size, cfg.final_eval_batches)

    def save(it: int) -> None:
        if ckpt_path is None or not d.main:
            return
        atomic_save({"train_config": asdict(cfg), "model_config": mcfg, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "data_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
                     "iter": it, "history": history, "seconds": seconds, "steps_timed": steps_timed,
                     "init_sha256": init_sha, "routing_stats": routing_stats,
                     "vocab": dataset.vocab.chars, "data": dataset.describe()}, ckpt_path)

    routing_stats: Dict[str, Any] = {}
    if resume and ckpt_path is not None and ckpt_path.exists():
        routing_stats = dict(ck.get("routing_stats") or {})

    def record(it: int, train_loss: Optional[float], final: bool) -> None:
        val = evaluate(model, dataset.val, ev_final if final else ev_small, block, cfg.device, d,
                       routing=routing_stats if final else None)
        entry: Dict[str, Any] = {"iter": it, "val_loss": val, "train_loss": train_loss, "final": final}
        if probe is not None:
            model.eval()
            with torch.no_grad():
                entry["probe"] = probe(model)
            model.train()
        history.append(entry)

    model.train()
    end = cfg.iters if stop_after is None else min(cfg.iters, stop_after)
    bar = tqdm(total=cfg.iters, initial=start, desc=desc, disable=not (progress and d.main), leave=False,
               dynamic_ncols=True, position=position)
    it = start
    if start == 0 and not history:
        record(0, None, final=False)
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        while it < end:
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, it)
            offs = batch_offsets(len(dataset.train), block, cfg.batch_size, gen)
            x, y = gather_windows(dataset.train, offs[d.rank * local:(d.rank + 1) * local], block)
            loss, ce, _aux = model_loss(model, x.to(cfg.device), y.to(cfg.device))
            opt.zero_grad(set_to_none=False)
            loss.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            all_reduce_mean_(grads, d)
            for p, g in zip(params, grads):
                p.grad = g
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            it += 1
            seconds += time.perf_counter() - t0
            steps_timed += 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(ce.detach()):.3f}")
            if it % cfg.eval_interval == 0 or it == cfg.iters:
                record(it, float(ce.detach()), final=(it == cfg.iters))
                save(it)
    finally:
        # Ctrl-C: nothing is saved here (the interrupted step may be half applied); the last checkpoint,
        # at most eval_interval steps old, is complete and the run resumes from it.
        bar.close()
    if it != start and (not history or history[-1]["iter"] != it):
        save(it)  # stop_after in the middle of an eval interval
    finals = [h["val_loss"] for h in history if h.get("final")]
    return TrainResult(
        config=asdict(cfg), history=history,
        final_val_loss=finals[-1] if finals else float("nan"),
        best_val_loss=min(h["val_loss"] for h in history),
        param_counts={k: int(v) for k, v in model.param_counts().items()},
        seconds=seconds, step_ms=1000 * seconds / max(1, steps_timed), iters_done=it,
        checkpoint=str(ckpt_path) if ckpt_path else None, init_sha256=init_sha,
        tiles_scored_per_token=routing_stats.get("tiles_scored_per_token"),
        tiles_active_per_token=routing_stats.get("tiles_active_per_token"))


MODEL_KEYS = ("train_config", "model_config", "model", "vocab")
RESUME_KEYS = MODEL_KEYS + ("optimizer", "data_rng", "torch_rng", "iter", "history", "seconds", "steps_timed")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def read_checkpoint(path: Path, device: str = "cpu", keys=MODEL_KEYS) -> Dict[str, Any]:
    """The dict saved by train(), read as data only (``weights_only=True``: tensors, numbers, strings,
    lists and dicts; no pickled code runs). Raises FileNotFoundError, or CheckpointError naming the
    first missing or mistyped entry."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; all mean "not a checkpoint"
        text = str(e)
        if "Weights only load failed" in text:  # torch's advice to retry unsafely is not ours to repeat
            why = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
            why = why.split(" was not an allowed global")[0]
            raise CheckpointError(f"{path}: not a readable checkpoint: it holds more than tensors and plain data"
                                  f"{' (' + why + ')' if why else ''}, and checkpoints are read as data only") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(e)})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: not a TriX checkpoint (a {type(ck).__name__}, expected a dict)")
    missing = [k for k in keys if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: not a TriX checkpoint: missing {', '.join(repr(k) for k in missing)}")
    for k, t in (("train_config", dict), ("model_config", dict), ("model", dict), ("vocab", str)):
        if k in keys and not isinstance(ck[k], t):
            raise CheckpointError(f"{path}: entry {k!r} is a {type(ck[k]).__name__}, expected a {t.__name__}")
    factory = ck["train_config"].get("model_factory", DEFAULT_FACTORY)
    if not isinstance(factory, str):
        raise CheckpointError(f"{path}: entry 'train_config.model_factory' is not a string")
    # an old checkpoint's default factory is today's: resuming it compares equal configs
    ck["train_config"]["model_factory"] = _LEGACY_NAMES.get(factory, factory)
    return ck


def load_checkpoint(path: Path, device: str = "cpu"):
    """(model in eval mode, vocab chars, checkpoint dict) from a checkpoint written by train().

    The model comes from the registered factory the checkpoint names (never from an import of a name in
    the file). A bad file is a FileNotFoundError or a CheckpointError with a one-line message."""
    ck = read_checkpoint(path, device)
    name = ck["train_config"].get("model_factory", DEFAULT_FACTORY)
    try:
        factory = resolve_factory(name)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        model = factory(dict(ck["model_config"])).to(device)
    except (TypeError, ValueError, KeyError, RuntimeError, MemoryError) as e:
        raise CheckpointError(f"{path}: its model_config does not build a model with {name!r} ({_one_line(e)})") from None
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        expected, got = set(model.state_dict()), set(ck["model"])
        detail = (f"missing {sorted(expected - got)[:3]}" if expected - got else
                  f"unexpected {sorted(got - expected)[:3]}" if got - expected else _one_line(e))
        raise CheckpointError(f"{path}: its weights do not fit its model_config ({detail})") from None
    model.eval()
    return model, ck["vocab"], ck


def sample(model, vocab_chars: str, prompt: str, n: int, temperature: float = 0.8,
           top_k: Optional[int] = None, seed: int = 0, device: str = "cpu") -> str:
    import torch

    from .data import CharVocab

    vocab = CharVocab(vocab_chars)
    torch.manual_seed(seed)
    idx = torch.tensor(vocab.encode(prompt or "\n"), dtype=torch.long, device=device).view(1, -1)
    with torch.no_grad():
        out = model.generate(idx, n, temperature=temperature, top_k=top_k)
    return vocab.decode(out[0].tolist())


# ------------------------------------------------------------------------------------------------ CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file with TrainConfig fields (model: TriXLMConfig fields)")
    p.add_argument("--data", help="UTF-8 text file (default: TinyShakespeare, see trix.data)")
    p.add_argument("--out", default="runs/train", help="directory for ckpt.pt and result.json (default runs/train)")
    p.add_argument("--iters", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, ...")
    p.add_argument("--ffn", choices=["float", "tiled", "sparse", "hierarchical"])
    p.add_argument("--routing", choices=list(ROUTING_METHODS))
    p.add_argument("--tiles", type=int)
    p.add_argument("--model-factory", help=f"module:function building the model from a dict (default {DEFAULT_FACTORY})")
    p.add_argument("--threads", type=int, help="torch threads per process (default: torch's choice; 1 under torchrun)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    d: Dict[str, Any] = {}
    if args.config:
        d = json.loads(Path(args.config).read_text())
    cfg = TrainConfig.from_dict(d)
    for name in ("iters", "batch_size", "lr", "seed", "device", "model_factory"):
        v = getattr(args, name)
        if v is not None:
            setattr(cfg, name, v)
    for name in ("ffn", "routing", "tiles"):
        v = getattr(args, name)
        if v is not None:
            cfg.model[name] = v
    return cfg


_FIELD_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


def check_config_types(cfg: TrainConfig) -> None:
    """A config file's values against the fields' declared types: a wrong type is a one-line
    ValueError before training, not a TypeError deep inside it."""
    for name, f in TrainConfig.__dataclass_fields__.items():
        t = str(f.type)
        want = dict if t.startswith("Dict") else _FIELD_TYPES.get(t)
        v = getattr(cfg, name)
        if want is not None and (not isinstance(v, want) or (isinstance(v, bool) and t != "bool")):
            raise ValueError(f"config field {name!r} must be of type {t}, got {type(v).__name__} {v!r}")


def run(args: argparse.Namespace) -> int:
    import torch

    from .data import DataError, load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.set_num_threads(1)  # N processes on N cores: one thread each avoids oversubscription
    try:
        cfg = config_from_args(args)
        check_config_types(cfg)
        dataset = load_dataset(args.data)
    except (DataError, ValueError, OSError) as e:
        print(f"trix train: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    res = train(cfg, dataset, out, progress=not args.no_progress, resume=not args.no_resume)
    if init_distributed().main:
        atomic_write_text(out / "result.json", json.dumps(asdict(res), indent=1))
        print(f"val loss {res.final_val_loss:.4f} (best {res.best_val_loss:.4f}), params {res.param_counts}, "
              f"{res.step_ms:.1f} ms/step; checkpoint {res.checkpoint}")
    return 0


def add_generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="ckpt.pt written by trix train or trix validate")
    p.add_argument("--prompt", default="\n")
    p.add_argument("-n", "--tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


def run_generate(args: argparse.Namespace) -> int:
    try:
        if args.tokens < 0:
            raise ValueError(f"argument --tokens must be >= 0, got {args.tokens}")
        if not args.temperature >= 0:  # 0 means greedy, as in trix_generate and trix.Model
            raise ValueError(f"argument --temperature must be >= 0 (0: greedy), got {args.temperature}")
        if args.top_k is not None and args.top_k < 1:
            raise ValueError(f"argument --top-k must be >= 1, got {args.top_k}")
        model, chars, _ = load_checkpoint(Path(args.checkpoint), args.device)
        text = sample(model, chars, args.prompt, args.tokens, args.temperature, args.top_k, args.seed, args.device)
    except (OSError, ValueError, KeyError) as e:
        print(f"trix generate: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0
