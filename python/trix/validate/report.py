"""report.md, results.json and the PNG plots of a study."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..data import CHAR_CLASSES
from ..train import atomic_write_text
from .verdict import NANOGPT_FLOAT_VAL_LOSS, mark


def _git_state() -> Dict[str, Any]:
    """Commit of the checkout the package runs from (editable install), and whether python/ had local edits."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "python"], cwd=root, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if rev.returncode != 0:
        return {}
    return {"commit": rev.stdout.strip(), "python_edits": [l[3:] for l in dirty.stdout.splitlines()]}


def environment() -> Dict[str, Any]:
    import numpy
    import torch

    import trix

    return {"source": _git_state(), "versions": {"trix": trix.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
                         "python": sys.version.split()[0]},
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}}


def _strip(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """History without the per-token tile lists (kept in each model's own result.json)."""
    out = []
    for h in history:
        h = dict(h)
        if isinstance(h.get("probe"), dict):
            h["probe"] = {k: v for k, v in h["probe"].items() if k != "tiles"}
        out.append(h)
    return out


def active_k(m: Dict[str, Any]) -> str:
    """Tiles per token the model actually used on the probe (last evaluation), e.g. '1' or '-' (float)."""
    probe = (m["history"][-1].get("probe") or {}) if m["history"] else {}
    ks = {k for k in probe.get("active_k") or [] if k is not None}
    return ",".join(str(k) for k in sorted(ks)) or "-"


def topk_mismatches(models: Dict[str, Dict[str, Any]]) -> List[str]:
    out = []
    for n, m in models.items():
        mc, used = m["config"]["model"], active_k(m)
        if mc.get("ffn") in ("sparse", "hierarchical") and mc.get("routing") != "dense" and used not in ("-", str(mc.get("top_k"))):
            out.append(f"{n} (top_k {mc.get('top_k')}, used {used})")
    return out


def ffn_macs_per_token(mc: Dict[str, Any], scored: Optional[float], active: Optional[float]) -> Optional[int]:
    """Multiply-adds per token of one FFN layer, routing included (docs/validation.md lists the rules)."""
    d = int(mc.get("d_model", 0))
    width = int(mc.get("expansion", 4)) * d
    if mc.get("ffn") == "float":
        return 2 * width * d
    if active is None:
        return None
    h = width // int(mc.get("tiles", 1))
    compute = active * 2 * h * d
    if mc.get("routing") == "autonomy":  # every tile's up product is computed to score it; the chosen one is reused
        return int(round((scored or 0) * h * d + active * h * d))
    return int(round(compute + (scored or 0) * d))


def _arm_models(models: Dict[str, Dict[str, Any]], arm: str) -> List[Dict[str, Any]]:
    return sorted((m for m in models.values() if m.get("arm") == arm), key=lambda m: m["replicate"])


def arm_table(models: Dict[str, Dict[str, Any]], arms: List[str]) -> List[str]:
    from .verdict import arm_stats

    rows = ["| arm | val loss mean ± sd | every seed | PPL | params (non-emb.) | routing params | "
            "tiles scored / active per token | FFN MACs/token | ms/step |",
            "|---|---|---|---|---|---|---|---|---|"]
    for a in arms:
        ms = _arm_models(models, a)
        if not ms:
            continue
        st = arm_stats([m["final_val_loss"] for m in ms])
        m0, mc = ms[0], ms[0]["config"]["model"]
        sc, ac = m0.get("tiles_scored_per_token"), m0.get("tiles_active_per_token")
        macs = ffn_macs_per_token(mc, sc, ac)
        seeds = ", ".join(f"{m['final_val_loss']:.4f}" for m in ms)
        step = sum(m["step_ms"] for m in ms) / len(ms)
        rows.append(f"| {a} | {st.mean:.4f} ± {(st.sd or 0):.4f} | {seeds} | {math.exp(st.mean):.2f} | "
                    f"{m0['param_counts']['total']:,} ({m0['param_counts']['non_embedding']:,}) | "
                    f"{m0['param_counts']['routing']:,} | "
                    f"{'-' if sc is None else f'{sc:g}'} / {'-' if ac is None else f'{ac:g}'} | "
                    f"{'-' if macs is None else f'{macs:,}'} | {step:.0f} |")
    return rows


def _band(ax, models, arm: str) -> None:
    import numpy as np

    ms = _arm_models(models, arm)
    if not ms:
        return
    its = [e["iter"] for e in ms[0]["history"] if e["iter"] > 0]
    curves = []
    for m in ms:
        by = {e["iter"]: e["val_loss"] for e in m["history"]}
        if all(i in by for i in its):
            curves.append([by[i] for i in its])
    c = np.array(curves)
    line, = ax.plot(its, c.mean(0), label=arm)
    if len(c) > 1:
        ax.fill_between(its, c.min(0), c.max(0), color=line.get_color(), alpha=0.2)


def plots(out: Path, models: Dict[str, Dict[str, Any]], stages: Dict[str, Any]) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .plan import ARMS

    files = []
    arms = [a.name for a in ARMS if _arm_models(models, a.name)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, a in enumerate(arms):
        vals = [m["final_val_loss"] for m in _arm_models(models, a)]
        ax.scatter([i] * len(vals), vals, color="C0", zorder=3, s=18)
        ax.hlines(np.mean(vals), i - 0.3, i + 0.3, color="C3")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels(arms, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("final val loss (nats)")
    ax.set_title("final validation loss per arm: each seed a point, the mean a bar")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "final_loss.png", dpi=110)
    plt.close(fig)
    files.append("final_loss.png")

    groups = [("routing", ["learned", "emergent", "mean_signature", "autonomy", "random_signatures", "hash", "random"]),
              ("baselines and hierarchy", ["float", "ternary_dense", "emergent", "flat16", "hier16"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (title, names) in zip(axes, groups):
        for n in names:
            _band(ax, models, n)
        ax.set_title(f"validation loss: {title} (mean, band = min..max over seeds)", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("val loss (nats)")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
            lo = min(min(l.get_ydata()) for l in ax.get_lines())
            ax.set_ylim(lo - 0.05, lo + 1.0)
    fig.tight_layout()
    fig.savefig(out / "val_loss.png", dpi=110)
    plt.close(fig)
    files.append("val_loss.png")

    em = _arm_models(models, "emergent")
    m = em[0] if em else None
    if m is not None and m["history"] and m["history"][0].get("probe"):
        usage = [e["probe"]["usage"] for e in m["history"]]
        layers = len(usage[0])
        fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 3), squeeze=False)
        its = [e["iter"] for e in m["history"]]
        for li in range(layers):
            u = np.array([x[li] for x in usage])
            ax = axes[0][li]
            ax.stackplot(its, u.T, labels=[f"tile {t}" for t in range(u.shape[1])])
            ax.set_title(f"{m['name']}, layer {li}")
            ax.set_xlabel("iteration")
            ax.set_ylim(0, 1)
        axes[0][0].set_ylabel("share of probe tokens")
        axes[0][-1].legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(out / "tile_usage.png", dpi=110)
        plt.close(fig)
        files.append("tile_usage.png")

    spec = (stages.get("specialisation") or {}).get("specialisation") or {}
    if spec:
        names = list(spec)
        first = {n: next(iter(spec[n]["per_seed"].values())) for n in names}
        layers = len(first[names[0]]["layers"])
        fig, axes = plt.subplots(len(names), layers, figsize=(2.8 * layers, 2.4 * len(names)), squeeze=False)
        for ri, n in enumerate(names):
            for li, L in enumerate(first[n]["layers"]):
                tab = np.array(L["table"], dtype=float)
                frac = tab / np.maximum(1, tab.sum(1, keepdims=True))  # share of each class on each tile
                ax = axes[ri][li]
                ax.imshow(frac, aspect="auto", cmap="viridis", vmin=0, vmax=1)
                ax.set_yticks(range(len(CHAR_CLASSES)))
                ax.set_yticklabels(CHAR_CLASSES if li == 0 else [], fontsize=7)
                ax.set_title(f"{n} L{li}: MI {L['mi_bits']:.3f} b", fontsize=8)
                ax.set_xlabel("tile", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "class_tile.png", dpi=110)
        plt.close(fig)
        files.append("class_tile.png")
    return files


def write(out: Path, study, criteria: List[Dict[str, Any]], sample: Optional[Dict[str, Any]], elapsed: float,
          command: str, complete: bool) -> Dict[str, Any]:
    from .plan import ARMS, STAGES
    from .verdict import arm_stats, hierarchy_claim

    models, stages = study.models, study.stage_results
    budget = study.cfg.budget
    stats = {a: arm_stats(v) for a, v in study.arm_losses().items()}
    hier = hierarchy_claim(stats)
    results = {
        "command": command, "complete": complete, "elapsed_seconds": elapsed, "jobs": study.cfg.jobs,
        "budget": budget.name, "study": study._manifest(), **environment(),
        "source_at_start": getattr(study, "source_at_start", None),
        "arms": {a: {"n": st.n, "mean": st.mean, "sd": st.sd,
                     "seeds": {str(m["seed"]): m["final_val_loss"] for m in _arm_models(models, a)}}
                 for a, st in stats.items()},
        "models": {n: dict(m, history=_strip(m["history"])) for n, m in models.items()},
        "stages": stages, "verdict": criteria, "hierarchy_claim": hier, "sample": sample,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    figs = plots(out, models, stages)

    env = results["versions"], results["machine"]
    desc = study.dataset.describe()
    L: List[str] = [f"# TriX validation: routing read from ternary weights, on {Path(study.dataset.source).name}", "",
                    f"Command: `{command}`  ", f"Budget: **{budget.name}**, {study.cfg.seeds} seeds per arm, "
                    f"{study.cfg.jobs} models at a time; wall time {elapsed / 60:.1f} min; "
                    f"torch {env[0]['torch']}, trix {env[0]['trix']}; {env[1]['cpu_count']} CPUs ({env[1]['processor']}).  ",
                    f"Data: {desc['train_tokens']:,} train / {desc['val_tokens']:,} "
                    f"val tokens, vocabulary {study.dataset.vocab.size}, sha256 {study.dataset.sha256[:16]}...", ""]
    if budget.name == "quick" or study.cfg.iters is not None:
        L += ["> **This run used a reduced budget to prove the pipeline end to end. Its numbers are not "
              "evidence for or against emergent routing.**", ""]
    bad = topk_mismatches(models)
    if bad:
        L += ["> **Configuration not honoured by the model:** " + ", ".join(bad) + ". Tiles per token differ from "
              "the configured top_k, so these models do not have the intended active compute.", ""]
    if not complete:
        L += ["> Not all stages have run: the verdict marks what is missing as n/a.", ""]
    L += ["## Verdict", "", "| criterion | result | numbers (val loss, nats) |", "|---|---|---|"]
    L += [f"| {c['name']} | **{mark(c['passed'])}** | {c['detail']} |" for c in criteria]
    L += ["", "The rule, fixed in `trix/validate/verdict.py` before any run: per arm the mean and standard "
          "deviation over seeds; *A beats B* when mean(B) - mean(A) > max(0.01, 2 se), *A matches B* when A "
          "loses by at most max(0.01, min(0.05, 2 se)), with se = sqrt(sd_A^2/n_A + sd_B^2/n_B). Losses are validation "
          "cross-entropy on the same fixed batches for every model. Every arm uses the same gate rule (value 1 "
          "on the chosen tile), the same balance loss where the method has router probabilities, and no "
          "diversity loss; models of one seed share every initial weight they both have.", ""]
    if hier:
        L += [f"**The prototype's hierarchy claim** (hierarchical 16 tiles 13% lower perplexity than sparse 4): {hier}.", ""]
    fl = stats.get("float")
    if fl is not None and budget.name != "quick":
        L += [f"**Float baseline vs nanoGPT.** Our float model reaches {fl.text()} after "
              f"{_arm_models(models, 'float')[0]['config']['iters']} iterations; nanoGPT's CPU configuration "
              f"reports ~{NANOGPT_FLOAT_VAL_LOSS} after 2000 ({fl.mean - NANOGPT_FLOAT_VAL_LOSS:+.3f}).", ""]
    L += ["## Arms", ""] + arm_table(models, [a.name for a in ARMS]) + [""]
    L += ["Tiles scored / active per token are means over the final evaluation and every routed layer "
          "(scored: tiles or cluster signatures compared to make the choice; active: tiles whose FFN ran). "
          "FFN MACs/token counts one layer's multiply-adds, routing included (autonomy computes every "
          "tile's up product to score it).", ""]
    for st in STAGES:
        if st.name not in stages:
            continue
        L += [f"## {st.title}", ""]
        if st.name == "specialisation":
            spec = stages[st.name].get("specialisation", {})
            L += ["| arm | mean I(class; tile) bits, mean ± sd over seeds |", "|---|---|"]
            L += [f"| {n} | {s['mean_mi_bits']:.3f} ± {(s['sd_mi_bits'] or 0):.3f} |" for n, s in spec.items()]
            L += ["", "Per layer, first seed of each arm:", "",
                  "| model | layer | I(class; tile) bits | routing entropy (max) | dead tiles | " +
                  " | ".join(f"{c}: top tile (share)" for c in CHAR_CLASSES) + " |",
                  "|---|---|---|---|---|" + "---|" * len(CHAR_CLASSES)]
            for n, s in spec.items():
                name, first = next(iter(s["per_seed"].items()))
                for li, l in enumerate(first["layers"]):
                    cells = [f"{l['classes'][c]['top_tile']} ({l['classes'][c]['top_share']:.0%})"
                             if c in l["classes"] else "-" for c in CHAR_CLASSES]
                    L.append(f"| {name} | {li} | {l['mi_bits']:.3f} | {l['routing_entropy_bits']:.2f} "
                             f"({l['max_entropy_bits']:.2f}) | {l['dead_tiles']} | " + " | ".join(cells) + " |")
            em = spec.get("emergent")
            if em:
                first = next(iter(em["per_seed"].values()))
                if first["churn"]:
                    ch = first["churn"]
                    L += ["", "Routing churn of the first emergent model (share of probe tokens whose top-1 tile "
                          "changed since the previous evaluation, mean over layers): " +
                          ", ".join(f"it {c['iter']}: {sum(c['churn']) / len(c['churn']):.2f}" for c in ch[:: max(1, len(ch) // 8)])]
            L += ["", "![class x tile](class_tile.png)", ""]
            continue
        L += arm_table(models, st.arms)
        if st.name == "option_a" and "option_a" in stages[st.name]:
            oa = stages[st.name]["option_a"]
            L += ["", "| inference routing of the dense-trained ternary model (mean over seeds) | val loss | PPL |",
                  "|---|---|---|"]
            L += [f"| {k} | {v:.4f} | {math.exp(v):.2f} |" for k, v in oa["val_loss"].items()]
            L += ["", "\"x T\" multiplies the one tile's output by the number of tiles, the magnitude the sum of all "
                  "tiles had in training (the prototype did not). The prototype saw PPL 5.04 with all tiles and "
                  "81 / 86 / 71 with one tile chosen by emergent / random / first routing."]
        L.append("")
    L += ["## Plots", ""]
    for f, alt in (("final_loss.png", "final loss per arm"), ("val_loss.png", "validation loss"),
                   ("tile_usage.png", "tile usage over training")):
        if f in figs:
            L += [f"![{alt}]({f})", ""]
    if sample:
        L += ["## Sample", "", f"From the model with the lowest validation loss, `{sample['model']}` "
              f"({sample['val_loss']:.4f}), temperature 0.8:", "", "```", sample["text"].strip("\n"), "```", ""]
    atomic_write_text(out / "report.md", "\n".join(L))
    return results
