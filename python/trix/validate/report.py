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


def model_table(models: Dict[str, Dict[str, Any]], names: List[str]) -> List[str]:
    rows = ["| model | FFN | routing | tiles | top-k (used) | params total | non-embedding | routing | val loss | PPL | ms/step |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        m = models.get(n)
        if m is None:
            continue
        mc, pc, v = m["config"]["model"], m["param_counts"], m["final_val_loss"]
        used = active_k(m)
        rows.append(f"| {n} | {mc.get('ffn')} | {mc.get('routing')} | {mc.get('tiles')} | {mc.get('top_k')} ({used}) | "
                    f"{pc['total']:,} | {pc['non_embedding']:,} | {pc['routing']:,} | {v:.4f} | {math.exp(v):.2f} | "
                    f"{m['step_ms']:.0f} |")
    return rows


def plots(out: Path, models: Dict[str, Dict[str, Any]], stages: Dict[str, Any]) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    files = []
    groups = [("routing and baselines", ["float", "ternary_dense", "emergent", "learned", "random", "hash"]),
              ("scale and Option A", ["emergent", "hier16_k1", "hier16_k4", "hier64_k16", "option_a"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (title, names) in zip(axes, groups):
        for n in names:
            if n in models:
                h = [e for e in models[n]["history"] if e["iter"] > 0]
                ax.plot([e["iter"] for e in h], [e["val_loss"] for e in h], label=n, marker=".")
        ax.set_title(f"validation loss: {title}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("val loss (nats)")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "val_loss.png", dpi=110)
    plt.close(fig)
    files.append("val_loss.png")

    m = models.get("emergent")
    if m is not None and m["history"] and m["history"][0].get("probe"):
        usage = [e["probe"]["usage"] for e in m["history"]]
        layers = len(usage[0])
        fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 3), squeeze=False)
        its = [e["iter"] for e in m["history"]]
        for li in range(layers):
            u = np.array([x[li] for x in usage])
            ax = axes[0][li]
            ax.stackplot(its, u.T, labels=[f"tile {t}" for t in range(u.shape[1])])
            ax.set_title(f"emergent, layer {li}")
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
        layers = len(spec[names[0]]["layers"])
        fig, axes = plt.subplots(len(names), layers, figsize=(2.8 * layers, 2.4 * len(names)), squeeze=False)
        for ri, n in enumerate(names):
            for li, L in enumerate(spec[n]["layers"]):
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
    from .plan import STAGES

    models, stages = study.models, study.stage_results
    budget = study.cfg.budget
    results = {
        "command": command, "complete": complete, "elapsed_seconds": elapsed,
        "budget": budget.name, "study": study._manifest(), **environment(),
        "source_at_start": getattr(study, "source_at_start", None),
        "models": {n: dict(m, history=_strip(m["history"])) for n, m in models.items()},
        "stages": stages, "verdict": criteria, "sample": sample,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    figs = plots(out, models, stages)

    env = results["versions"], results["machine"]
    L: List[str] = [f"# TriX validation: emergent routing on {Path(study.dataset.source).name}", "",
                    f"Command: `{command}`  ", f"Budget: **{budget.name}**; wall time {elapsed / 60:.1f} min; "
                    f"torch {env[0]['torch']}, trix {env[0]['trix']}; {env[1]['cpu_count']} CPUs ({env[1]['processor']}).  ",
                    f"Data: {study.dataset.describe()['train_tokens']:,} train / {study.dataset.describe()['val_tokens']:,} "
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
    L += ["## Verdict", "", "| criterion | result | numbers |", "|---|---|---|"]
    L += [f"| {c['name']} | **{mark(c['passed'])}** | {c['detail']} |" for c in criteria]
    L += ["", "Criteria and thresholds are fixed in `trix/validate/verdict.py`; losses are validation "
          "cross-entropy (nats) on the same fixed batches for every model.", ""]
    fl = models.get("float")
    if fl is not None and budget.name != "quick":
        iters = fl["config"]["iters"]
        d = fl["final_val_loss"] - NANOGPT_FLOAT_VAL_LOSS
        L += [f"**Float baseline vs nanoGPT.** Our float model reaches {fl['final_val_loss']:.4f} after {iters} "
              f"iterations; nanoGPT's CPU configuration reports ~{NANOGPT_FLOAT_VAL_LOSS} after 2000 ({d:+.3f})."
              + ("" if abs(d) <= 0.1 or iters >= 2000 else
                 f" The gap is the budget: {iters} iterations instead of 2000, so that all "
                 f"{len(models)} models fit the time budget; every model has the same budget."), ""]
    for st in STAGES:
        if st.name not in stages:
            continue
        L += [f"## {st.title}", ""]
        if st.name == "specialisation":
            spec = stages[st.name].get("specialisation", {})
            L += ["| model | layer | I(class; tile) bits | routing entropy (max) | dead tiles | " +
                  " | ".join(f"{c}: top tile (share)" for c in CHAR_CLASSES) + " |",
                  "|---|---|---|---|---|" + "---|" * len(CHAR_CLASSES)]
            for n, s in spec.items():
                for li, l in enumerate(s["layers"]):
                    cells = [f"{l['classes'][c]['top_tile']} ({l['classes'][c]['top_share']:.0%})"
                             if c in l["classes"] else "-" for c in CHAR_CLASSES]
                    L.append(f"| {n} | {li} | {l['mi_bits']:.3f} | {l['routing_entropy_bits']:.2f} "
                             f"({l['max_entropy_bits']:.2f}) | {l['dead_tiles']} | " + " | ".join(cells) + " |")
            em = spec.get("emergent")
            if em and em["churn"]:
                ch = em["churn"]
                L += ["", "Routing churn of the emergent model (share of probe tokens whose top-1 tile changed "
                      "since the previous evaluation, mean over layers): " +
                      ", ".join(f"it {c['iter']}: {sum(c['churn']) / len(c['churn']):.2f}" for c in ch)]
            tel = [(e["iter"], e["probe"].get("telemetry")) for e in models.get("emergent", {}).get("history", [])
                   if e.get("probe")]
            div = [(i, [t.get("signature_diversity") for t in tl]) for i, tl in tel if tl]
            if div and all(v is not None for _, vs in div for v in vs):
                L += ["", "Signature diversity of the emergent model per layer (model telemetry): " +
                      "; ".join(f"it {i}: " + ", ".join(f"{float(v):.3f}" for v in vs) for i, vs in div[:: max(1, len(div) // 6)])]
            L += ["", "![class x tile](class_tile.png)", ""]
            continue
        L += model_table(models, st.models)
        if st.name == "option_a" and "option_a" in stages[st.name]:
            va = stages[st.name]["option_a"]["val_loss"]
            L += ["", "| inference routing of the dense-trained model | val loss | PPL |", "|---|---|---|"]
            L += [f"| {k} | {v:.4f} | {math.exp(v):.2f} |" for k, v in va.items()]
            L += ["", "The prototype saw PPL 5.04 with all tiles and 81 / 86 / 71 with one tile chosen by "
                  "emergent / random / first routing."]
        L.append("")
    if "val_loss.png" in figs:
        L += ["## Plots", "", "![validation loss](val_loss.png)", ""]
    if "tile_usage.png" in figs:
        L += ["![tile usage over training](tile_usage.png)", ""]
    if sample:
        L += ["## Sample", "", f"From the model with the lowest validation loss, `{sample['model']}` "
              f"({sample['val_loss']:.4f}), temperature 0.8:", "", "```", sample["text"].strip("\n"), "```", ""]
    atomic_write_text(out / "report.md", "\n".join(L))
    return results
