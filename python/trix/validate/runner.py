"""Run the study stage by stage. Every model and every stage leaves a result file written atomically;
on a re-run with the same --out a finished model or stage is loaded, not recomputed, and a model
interrupted mid-training resumes from its last checkpoint."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..train import TrainConfig, atomic_write_text, evaluate, load_checkpoint, sample, train
from .plan import MODEL_BY_NAME, Budget, Stage, model_names


@dataclass
class StudyConfig:
    budget: Budget
    stages: List[str]
    seed: int = 1337
    device: str = "cpu"
    data: Optional[str] = None
    iters: Optional[int] = None              # override of the budget's iterations (smoke tests)
    model_factory: Optional[str] = None      # override of the model factory (tests, other models)
    extra: Dict[str, Any] = field(default_factory=dict)

    def train_config(self, name: str) -> TrainConfig:
        spec = MODEL_BY_NAME[name]
        tc = dict(self.budget.train)
        if self.iters is not None:
            tc["iters"] = self.iters
            tc["eval_interval"] = max(1, min(tc["eval_interval"], self.iters))
        cfg = TrainConfig(model=dict(self.budget.model, **spec.overrides), seed=self.seed + 1000 * spec.seed_offset,
                          device=self.device, **tc)
        if self.model_factory:
            cfg.model_factory = self.model_factory
        return cfg


def _read_json(p: Path) -> Optional[Dict[str, Any]]:
    return json.loads(p.read_text()) if p.exists() else None


class Study:
    def __init__(self, cfg: StudyConfig, out: Path, progress: bool = True):
        from ..data import load_dataset

        self.cfg, self.out, self.progress = cfg, out, progress
        self.dataset = load_dataset(cfg.data)
        self.models: Dict[str, Dict[str, Any]] = {}
        self.stage_results: Dict[str, Dict[str, Any]] = {}
        self._check_or_write_manifest()
        from .report import _git_state

        self.source_at_start = _git_state()  # the code this process trains with (the report adds its own)

    def _manifest(self) -> Dict[str, Any]:
        return {"budget": asdict(self.cfg.budget), "seed": self.cfg.seed, "device": self.cfg.device,
                "iters": self.cfg.iters, "model_factory": self.cfg.model_factory, "data": self.dataset.describe()}

    def _check_or_write_manifest(self) -> None:
        p = self.out / "study.json"
        old = _read_json(p)
        new = self._manifest()
        if old is not None and old != new:
            changed = sorted(k for k in new if old.get(k) != new.get(k))
            raise ValueError(f"{self.out} holds a run with different settings ({', '.join(changed)}); "
                             "resume it with the same options or choose another --out")
        atomic_write_text(p, json.dumps(new, indent=1))

    # ------------------------------------------------------------------------------------------ models
    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    def train_model(self, name: str) -> Dict[str, Any]:
        """Train (or load, or resume) one model; returns its result dict."""
        import torch

        from ..data import eval_offsets, gather_windows
        from .analysis import make_probe

        if name in self.models:
            return self.models[name]
        res_path = self.model_dir(name) / "result.json"
        done = _read_json(res_path)
        if done is not None:
            self.models[name] = done
            return done
        cfg = self.cfg.train_config(name)
        block = cfg.model["block_size"]
        n_seq = max(1, self.cfg.budget.probe_tokens // block)
        offs = eval_offsets(len(self.dataset.val), block, n_seq, 1, seed=99)[0]
        x, _ = gather_windows(self.dataset.val, offs, block)
        t0 = time.time()
        res = train(cfg, self.dataset, self.model_dir(name), probe=make_probe(x.to(cfg.device)),
                    progress=self.progress, desc=f"{name:>12}")
        d = asdict(res)
        d.update(name=name, label=MODEL_BY_NAME[name].label, overrides=MODEL_BY_NAME[name].overrides,
                 wall_seconds=time.time() - t0)
        atomic_write_text(res_path, json.dumps(d))
        self.models[name] = d
        print(f"  {name:<14} val loss {res.final_val_loss:.4f}  params {res.param_counts['total']:,}  "
              f"{res.step_ms:.0f} ms/step  {res.seconds:.0f} s", flush=True)
        return d

    def load_model(self, name: str):
        return load_checkpoint(self.model_dir(name) / "ckpt.pt", self.cfg.device)

    # -------------------------------------------------------------------------------------- analyses
    def option_a_eval(self) -> Dict[str, Any]:
        """Val loss of the dense-trained model with all tiles, then with one tile chosen three ways."""
        import torch

        from ..data import eval_offsets

        model, _, ck = self.load_model("option_a")
        cfg = ck["train_config"]
        block = ck["model_config"]["block_size"]
        offs = eval_offsets(len(self.dataset.val), block, cfg["eval_batch_size"], cfg["final_eval_batches"])
        out = {}
        for mode in (None, "emergent", "random", "first"):
            torch.manual_seed(self.cfg.seed)
            model.set_inference_routing(mode)
            out["all tiles" if mode is None else mode] = evaluate(model, self.dataset.val, offs, block, self.cfg.device)
        model.set_inference_routing(None)
        return {"val_loss": out}

    def specialisation(self, names: List[str]) -> Dict[str, Any]:
        import torch

        from ..data import class_ids, eval_offsets
        from .analysis import churn_over_training, class_tile_tables, specialisation_summary

        cls = class_ids(self.dataset.vocab)
        out: Dict[str, Any] = {}
        for name in names:
            model, _, ck = self.load_model(name)
            block = ck["model_config"]["block_size"]
            offs = eval_offsets(len(self.dataset.val), block, ck["train_config"]["eval_batch_size"],
                                self.cfg.budget.analysis_batches, seed=4321)
            torch.manual_seed(self.cfg.seed)
            tables = class_tile_tables(model, self.dataset.val, offs, block, cls, self.cfg.device)
            if tables is None:
                continue
            s = specialisation_summary(tables)
            s["churn"] = churn_over_training(self.models[name]["history"])
            out[name] = s
        return out

    # ---------------------------------------------------------------------------------------- stages
    def run_stage(self, stage: Stage) -> Dict[str, Any]:
        p = self.out / "stages" / f"{stage.name}.json"
        done = _read_json(p)
        for m in stage.models:
            self.train_model(m)
        if done is not None:
            print(f"stage {stage.name}: finished earlier, loaded {p.relative_to(self.out)}", flush=True)
            self.stage_results[stage.name] = done
            return done
        res: Dict[str, Any] = {"models": stage.models}
        if "option_a_eval" in stage.analyses:
            res["option_a"] = self.option_a_eval()
        if "specialisation" in stage.analyses:
            res["specialisation"] = self.specialisation(stage.models)
        res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        atomic_write_text(p, json.dumps(res))
        self.stage_results[stage.name] = res
        return res

    def best_sample(self) -> Dict[str, Any]:
        trained = {n: m["final_val_loss"] for n, m in self.models.items()}
        best = min(trained, key=trained.get)
        model, chars, _ = self.load_model(best)
        text = sample(model, chars, "\n", self.cfg.budget.sample_tokens, temperature=0.8, seed=self.cfg.seed,
                      device=self.cfg.device)
        return {"model": best, "val_loss": trained[best], "text": text}


def planned_iterations(cfg: StudyConfig, stages: List[Stage]) -> int:
    return sum(cfg.train_config(n).iters for n in model_names(stages))
