"""`trix validate`: train the study's models stage by stage and write report.md, results.json and plots.

Stages (a finished one is not re-run; run again with the same --out to resume after Ctrl-C):
dense_baselines, routing, option_a, hierarchy, specialisation; every arm at --seeds seeds.
See docs/validation.md.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    b = p.add_mutually_exclusive_group()
    b.add_argument("--quick", action="store_true", help="tiny models, a few minutes on 2 CPU cores (CI)")
    b.add_argument("--full", action="store_true", help="the prototype's scale (context 256), for a GPU")
    p.add_argument("--out", help="run directory (default runs/<date>-<time>/); reuse it to resume")
    p.add_argument("--data", help="UTF-8 text file (default: TinyShakespeare, see trix.data)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--stages", help="comma-separated subset of stages (default: all)")
    p.add_argument("--seed", type=int, default=1337, help="seed of the first replicate (the others: +1, +2, ...)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default: the budget's, 3)")
    p.add_argument("--jobs", type=int, help="models trained at once in worker processes (default: min(2, CPUs))")
    p.add_argument("--iters", type=int, help="override the iterations of every model (smoke tests)")
    p.add_argument("--model-factory", help="module:function building each model from a dict (default trix.nn)")
    p.add_argument("--threads", type=int, help="torch and libtrix threads per model (default 1 with --jobs > 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import DataError
    from . import report, verdict
    from .plan import BUDGETS, select_stages
    from .runner import Study, StudyConfig, WorkerFailed, planned_iterations

    if args.threads:
        torch.set_num_threads(args.threads)
    budget = BUDGETS["quick" if args.quick else "full" if args.full else "default"]
    seeds = budget.seeds if args.seeds is None else args.seeds
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if seeds < 1 or jobs < 1:
        print(f"trix validate: --seeds and --jobs must be >= 1, got {seeds} and {jobs}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    command = "trix validate " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "trix validate"
    if not args.out:
        command += f" --out {shlex.quote(str(out))}"
    try:
        stages = select_stages(args.stages.split(",") if args.stages else None)
        cfg = StudyConfig(budget=budget, stages=[s.name for s in stages], seed=args.seed, seeds=seeds,
                          device=args.device, data=args.data, iters=args.iters, model_factory=args.model_factory,
                          jobs=jobs, threads=args.threads)
        out.mkdir(parents=True, exist_ok=True)
        study = Study(cfg, out, progress=not args.no_progress)
    except (DataError, ValueError, OSError) as e:
        print(f"trix validate: {e}", file=sys.stderr)
        return 2
    print(f"trix validate: budget {budget.name}, {len(stages)} stages, {seeds} seeds per arm, {jobs} jobs, "
          f"{planned_iterations(cfg, stages):,} training iterations in all; output in {out}", flush=True)
    t0 = time.time()
    prev = _read_elapsed(out)
    try:
        study.run(stages)
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished models and stages are kept. Resume with:\n  {command}"
              + ("" if args.out else f"  (same --out)"), file=sys.stderr)
        return 130
    except WorkerFailed as e:
        print(f"trix validate: {e}. Resume with:\n  {command}", file=sys.stderr)
        return 1
    elapsed = prev + time.time() - t0
    losses = study.arm_losses()
    rparams = {m["arm"]: m["param_counts"]["routing"] for m in study.models.values()}
    spec = (study.stage_results.get("specialisation") or {}).get("specialisation", {})
    mi = spec.get("emergent", {}).get("mean_mi_bits")
    criteria = verdict.judge(losses, rparams, mi)
    sample = study.best_sample()
    complete = len(stages) == len(select_stages(None))
    report.write(out, study, verdict.as_dicts(criteria), sample, elapsed, command, complete)
    (out / "elapsed.txt").write_text(f"{elapsed:.1f}\n")
    _print_summary(study, criteria, out, elapsed)
    return 0


def _read_elapsed(out: Path) -> float:
    p = out / "elapsed.txt"
    return float(p.read_text()) if p.exists() else 0.0


def _print_summary(study, criteria, out: Path, elapsed: float) -> None:
    from .verdict import arm_stats, mark

    print(f"\n{'arm':<18} {'val loss (mean ± sd over seeds)':>32} {'params':>9} {'routing':>8} {'ms/step':>8}")
    for arm, vals in study.arm_losses().items():
        st = arm_stats(vals)
        m = next(m for m in study.models.values() if m["arm"] == arm)
        ms = sum(x["step_ms"] for x in study.models.values() if x["arm"] == arm) / st.n
        print(f"{arm:<18} {st.text():>32} {m['param_counts']['total']:>9,} {m['param_counts']['routing']:>8,} {ms:>8.0f}")
    print("\nverdict:")
    for c in criteria:
        print(f"  [{mark(c.passed):>4}] {c.name}: {c.detail}")
    print(f"\nreport: {out / 'report.md'}  ({elapsed / 60:.1f} min)")
