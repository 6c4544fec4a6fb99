"""Run the study stage by stage. Every model and every stage leaves a result file written atomically;
on a re-run with the same --out a finished model or stage is loaded, not recomputed, and a model
interrupted mid-training resumes from its last checkpoint. Models train in parallel worker processes
(--jobs, one torch and libtrix thread each by default), longest first."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..train import TrainConfig, atomic_write_text, evaluate, load_checkpoint, sample, train
from .plan import ARM_BY_NAME, Budget, Stage, arm_names, model_name, model_names, split_model_name, stage_models


@dataclass
class StudyConfig:
    budget: Budget
    stages: List[str]
    seed: int = 1337
    seeds: int = 3
    device: str = "cpu"
    data: Optional[str] = None
    iters: Optional[int] = None              # override of the budget's iterations (smoke tests)
    model_factory: Optional[str] = None      # override of the model factory (tests, other models)
    jobs: int = 1                            # models trained at once (worker processes)
    threads: Optional[int] = None            # torch / libtrix threads per model (default 1 when jobs > 1)
    extra: Dict[str, Any] = field(default_factory=dict)

    def replicate_seed(self, replicate: int) -> int:
        """The seed of replicate r: every random choice of the model and its training."""
        return self.seed + replicate

    def train_config(self, name: str) -> TrainConfig:
        arm, rep = split_model_name(name)
        spec = ARM_BY_NAME[arm]
        tc = dict(self.budget.train)
        if self.iters is not None:
            tc["iters"] = self.iters
            tc["eval_interval"] = max(1, min(tc["eval_interval"], self.iters))
        seed = self.replicate_seed(rep)
        cfg = TrainConfig(model=dict(self.budget.model, **spec.overrides, seed=seed), seed=seed,
                          device=self.device, **tc)
        if self.model_factory:
            cfg.model_factory = self.model_factory
        return cfg


def _read_json(p: Path) -> Optional[Dict[str, Any]]:
    return json.loads(p.read_text()) if p.exists() else None


def _set_threads(threads: Optional[int]) -> None:
    if threads:
        import torch

        import trix

        torch.set_num_threads(threads)
        trix.set_num_threads(threads)


def train_one(cfg: StudyConfig, out: Path, name: str, dataset=None, progress: bool = True,
              position: int = 0) -> Dict[str, Any]:
    """Train (or resume) one model of the study and write its result.json; returns the result dict."""
    from ..data import eval_offsets, gather_windows, load_dataset
    from .analysis import make_probe

    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    tc = cfg.train_config(name)
    block = tc.model["block_size"]
    n_seq = max(1, cfg.budget.probe_tokens // block)
    offs = eval_offsets(len(dataset.val), block, n_seq, 1, seed=99)[0]
    x, _ = gather_windows(dataset.val, offs, block)
    t0 = time.time()
    res = train(tc, dataset, out / "models" / name, probe=make_probe(x.to(tc.device)), progress=progress,
                desc=f"{name:>20}", position=position)
    arm, rep = split_model_name(name)
    d = asdict(res)
    d.update(name=name, arm=arm, replicate=rep, seed=tc.seed, label=ARM_BY_NAME[arm].label,
             overrides=ARM_BY_NAME[arm].overrides, wall_seconds=time.time() - t0)
    atomic_write_text(out / "models" / name / "result.json", json.dumps(d))
    return d


class WorkerFailed(RuntimeError):
    """A worker process ended without a result (its own error went to stderr)."""


def _worker_loop(cfg: StudyConfig, out: str, progress: bool, slot: int, conn) -> None:
    """A worker process (spawned: a fresh interpreter, its own threads): trains each model name it
    receives and answers with the name; None ends it. An error ends the process (exit code 1, the
    traceback on stderr), which the main process reports."""
    _set_threads(cfg.threads or 1)
    while (name := conn.recv()) is not None:
        train_one(cfg, Path(out), name, progress=progress, position=slot)
        conn.send(name)


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
        return {"budget": asdict(self.cfg.budget), "seed": self.cfg.seed, "seeds": self.cfg.seeds,
                "device": self.cfg.device, "iters": self.cfg.iters, "model_factory": self.cfg.model_factory,
                "data": self.dataset.describe()}

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

    def _finished(self, name: str) -> Optional[Dict[str, Any]]:
        if name in self.models:
            return self.models[name]
        done = _read_json(self.model_dir(name) / "result.json")
        if done is not None:
            self.models[name] = done
        return done

    def _report_model(self, d: Dict[str, Any]) -> None:
        self.models[d["name"]] = d
        print(f"  {d['name']:<22} val loss {d['final_val_loss']:.4f}  params {d['param_counts']['total']:,}  "
              f"{d['step_ms']:.0f} ms/step  {d['seconds']:.0f} s", flush=True)

    def train_model(self, name: str) -> Dict[str, Any]:
        """Train (or load, or resume) one model in this process; returns its result dict."""
        done = self._finished(name)
        if done is not None:
            return done
        d = train_one(self.cfg, self.out, name, self.dataset, self.progress)
        self._report_model(d)
        return d

    def train_models(self, names: List[str]) -> None:
        """Train every unfinished model of names, cfg.jobs at a time, the most expensive first."""
        todo = [n for n in names if self._finished(n) is None]
        if not todo:
            return
        todo.sort(key=lambda n: -ARM_BY_NAME[split_model_name(n)[0]].cost)
        if self.cfg.jobs <= 1:
            for n in todo:
                self.train_model(n)
            return
        import multiprocessing as mp
        from multiprocessing.connection import wait

        # cfg.jobs spawned workers, each fed model names over its own pipe (nothing shared with them,
        # so terminating one leaves nothing held), reused across models. A worker
        # reports each model back by name once its result.json is written (atomically); on Ctrl-C or
        # any error the main process terminates the workers, and every model keeps its last
        # checkpoint, so a rerun resumes.
        ctx = mp.get_context("spawn")
        workers = []  # (process, connection)
        busy: Dict[Any, str] = {}  # connection -> model name
        try:
            for slot in range(min(self.cfg.jobs, len(todo))):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=_worker_loop, args=(self.cfg, str(self.out), self.progress, slot, theirs),
                                name=f"trix-validate-{slot}")
                p.start()
                theirs.close()
                workers.append((p, mine))
            idle = [conn for _, conn in workers]
            while todo or busy:
                while todo and idle:
                    conn = idle.pop()
                    busy[conn] = todo.pop(0)
                    conn.send(busy[conn])
                for conn in wait(list(busy), timeout=1.0):
                    name = busy.pop(conn)
                    try:
                        ok = conn.recv() == name
                    except EOFError:
                        ok = False
                    done = self._finished(name) if ok else None
                    if done is None:
                        proc = next(p for p, c in workers if c is conn)
                        proc.join(10)  # reap it, for its exit code
                        code = proc.exitcode
                        raise WorkerFailed(f"training {name} failed (worker exit code {code}; its error is printed "
                                           "above); finished models are kept")
                    self._report_model(done)
                    idle.append(conn)
            for _, conn in workers:
                conn.send(None)
        except BaseException:
            for p, _ in workers:
                p.terminate()
            raise
        finally:
            for p, conn in workers:
                p.join()
                conn.close()

    def load_model(self, name: str):
        return load_checkpoint(self.model_dir(name) / "ckpt.pt", self.cfg.device)

    # -------------------------------------------------------------------------------------- analyses
    def option_a_eval(self) -> Dict[str, Any]:
        """Per seed: val loss of the dense-trained ternary model with all tiles, then with one tile
        chosen three ways, as the prototype did (raw) and with that tile's output times T (rescaled)."""
        import torch

        from ..data import eval_offsets

        per_seed: Dict[str, Dict[str, float]] = {}
        for rep in range(self.cfg.seeds):
            name = model_name("ternary_dense", rep)
            model, _, ck = self.load_model(name)
            cfg = ck["train_config"]
            block = ck["model_config"]["block_size"]
            offs = eval_offsets(len(self.dataset.val), block, cfg["eval_batch_size"], cfg["final_eval_batches"])
            out = {}
            for mode in (None, "emergent", "random", "first"):
                for rescale in ((False,) if mode is None else (False, True)):
                    torch.manual_seed(self.cfg.replicate_seed(rep))
                    model.set_inference_routing(mode, rescale=rescale)
                    key = "all tiles" if mode is None else f"{mode}{' x T' if rescale else ''}"
                    out[key] = evaluate(model, self.dataset.val, offs, block, self.cfg.device)
            model.set_inference_routing(None)
            per_seed[name] = out
        keys = list(next(iter(per_seed.values())))
        mean = {k: sum(v[k] for v in per_seed.values()) / len(per_seed) for k in keys}
        return {"val_loss": mean, "per_seed": per_seed}

    def specialisation(self, arms: List[str]) -> Dict[str, Any]:
        import numpy as np
        import torch

        from ..data import class_ids, eval_offsets
        from .analysis import churn_over_training, class_tile_tables, specialisation_summary

        cls = class_ids(self.dataset.vocab)
        out: Dict[str, Any] = {}
        for arm in arms:
            per_seed = {}
            for rep in range(self.cfg.seeds):
                name = model_name(arm, rep)
                model, _, ck = self.load_model(name)
                block = ck["model_config"]["block_size"]
                offs = eval_offsets(len(self.dataset.val), block, ck["train_config"]["eval_batch_size"],
                                    self.cfg.budget.analysis_batches, seed=4321)
                torch.manual_seed(self.cfg.replicate_seed(rep))
                tables = class_tile_tables(model, self.dataset.val, offs, block, cls, self.cfg.device)
                if tables is None:
                    continue
                s = specialisation_summary(tables)
                s["churn"] = churn_over_training(self.models[name]["history"])
                per_seed[name] = s
            if per_seed:
                mis = [s["mean_mi_bits"] for s in per_seed.values()]
                out[arm] = {"mean_mi_bits": float(np.mean(mis)),
                            "sd_mi_bits": float(np.std(mis, ddof=1)) if len(mis) > 1 else None,
                            "per_seed": per_seed}
        return out

    # ---------------------------------------------------------------------------------------- stages
    def run_stage(self, stage: Stage) -> Dict[str, Any]:
        p = self.out / "stages" / f"{stage.name}.json"
        done = _read_json(p)
        names = stage_models(stage, self.cfg.seeds)
        self.train_models(names)
        if done is not None:
            print(f"stage {stage.name}: finished earlier, loaded {p.relative_to(self.out)}", flush=True)
            self.stage_results[stage.name] = done
            return done
        res: Dict[str, Any] = {"arms": stage.arms, "models": names}
        if "option_a_eval" in stage.analyses:
            res["option_a"] = self.option_a_eval()
        if "specialisation" in stage.analyses:
            res["specialisation"] = self.specialisation(stage.arms)
        res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        atomic_write_text(p, json.dumps(res))
        self.stage_results[stage.name] = res
        return res

    def run(self, stages: List[Stage]) -> None:
        """Every stage; all their models first, in one parallel pool (so both workers stay busy)."""
        self.train_models(model_names(stages, self.cfg.seeds))
        for st in stages:
            print(f"stage {st.name}: {st.title}", flush=True)
            self.run_stage(st)

    def arm_losses(self) -> Dict[str, List[float]]:
        """Final validation loss of every trained model, grouped by arm (replicate order)."""
        out: Dict[str, List[float]] = {}
        for n in sorted(self.models, key=lambda n: split_model_name(n)[1]):
            out.setdefault(self.models[n]["arm"], []).append(self.models[n]["final_val_loss"])
        return out

    def best_sample(self) -> Dict[str, Any]:
        trained = {n: m["final_val_loss"] for n, m in self.models.items()}
        best = min(trained, key=trained.get)
        model, chars, _ = self.load_model(best)
        text = sample(model, chars, "\n", self.cfg.budget.sample_tokens, temperature=0.8, seed=self.cfg.seed,
                      device=self.cfg.device)
        return {"model": best, "val_loss": trained[best], "text": text}


def planned_iterations(cfg: StudyConfig, stages: List[Stage]) -> int:
    return sum(cfg.train_config(n).iters for n in model_names(stages, cfg.seeds))


__all__ = ["Study", "StudyConfig", "planned_iterations", "arm_names"]
