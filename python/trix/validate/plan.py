"""The study: budgets, the models it trains and the stages that use them.

Every model is the same transformer (same width, depth, context, seed, data order, iterations and
optimizer); a model spec lists only what differs from the budget's base config. Models are trained once
and shared by the stages that need them (the sparse emergent model is in routing, scale and noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class Budget:
    name: str
    model: Dict[str, Any]          # base TriXLMConfig fields
    train: Dict[str, Any]          # TrainConfig fields except model
    probe_tokens: int              # tokens of the fixed validation probe for routing statistics
    analysis_batches: int          # validation batches for class x tile statistics and Option A
    sample_tokens: int


BASE_MODEL = dict(block_size=64, n_layer=4, n_head=4, d_model=128, dropout=0.0, expansion=4, tiles=4, top_k=1)

BUDGETS: Dict[str, Budget] = {
    # pipeline proof for CI: tiny models, a few minutes on 2 cores; the numbers are not evidence
    "quick": Budget("quick", dict(BASE_MODEL, block_size=32, n_layer=2, n_head=2, d_model=32),
                    dict(iters=100, batch_size=8, eval_interval=25, eval_batches=4, final_eval_batches=8,
                         eval_batch_size=16, warmup=10), probe_tokens=256, analysis_batches=4, sample_tokens=100),
    # nanoGPT's CPU configuration (4 layers, 4 heads, width 128, context 64, batch 12, lr 1e-3 -> 1e-4);
    # 1000 iterations (nanoGPT: 2000) so that the 14 models fit well under an hour on one idle core:
    # measured steps there are ~75 ms (float, sparse top-1), ~125 ms (hierarchical), ~175 ms (ternary dense)
    "default": Budget("default", dict(BASE_MODEL),
                      dict(iters=1000, batch_size=12, eval_interval=50, eval_batches=10, final_eval_batches=50,
                           eval_batch_size=32, warmup=50), probe_tokens=1024, analysis_batches=20,
                      sample_tokens=400),
    # the prototype's scale (d 128, 4 layers, 4 heads, context 256), for a GPU
    "full": Budget("full", dict(BASE_MODEL, block_size=256),
                   dict(iters=5000, batch_size=64, eval_interval=250, eval_batches=20, final_eval_batches=100,
                        eval_batch_size=64, warmup=200), probe_tokens=4096, analysis_batches=50, sample_tokens=600),
}


@dataclass
class ModelSpec:
    name: str
    overrides: Dict[str, Any]
    seed_offset: int = 0
    label: str = ""


def _hier(tiles: int, top_k: int) -> Dict[str, Any]:
    clusters = round(math.sqrt(tiles))
    per_cluster = tiles // clusters
    # search enough clusters to hold top_k tiles: equal active compute needs top_k = tiles / 4
    return dict(ffn="hierarchical", routing="emergent", tiles=tiles, top_k=top_k, clusters=clusters,
                top_p=max(1, math.ceil(top_k / per_cluster)))


MODELS: List[ModelSpec] = [
    ModelSpec("float", dict(ffn="float", routing="dense"), label="float FFN (dense)"),
    ModelSpec("ternary_dense", dict(ffn="sparse", routing="dense"), label="ternary FFN, all 4 tiles"),
    ModelSpec("emergent", dict(ffn="sparse", routing="emergent"), label="sparse 4 tiles, emergent"),
    ModelSpec("learned", dict(ffn="sparse", routing="learned"), label="sparse 4 tiles, learned gate"),
    ModelSpec("random", dict(ffn="sparse", routing="random"), label="sparse 4 tiles, random"),
    ModelSpec("hash", dict(ffn="sparse", routing="hash"), label="sparse 4 tiles, token hash"),
    ModelSpec("option_a", dict(ffn="tiled", routing="emergent", train_mode="dense"),
              label="tiled, trained dense (Option A)"),
    ModelSpec("hier16_k1", _hier(16, 1), label="hierarchical 16 tiles, top-1 (equal params)"),
    ModelSpec("hier16_k4", _hier(16, 4), label="hierarchical 16 tiles, top-4 (equal params + active compute)"),
    ModelSpec("hier64_k16", _hier(64, 16), label="hierarchical 64 tiles, top-16 (equal params + active compute)"),
] + [ModelSpec(f"{n}_seed2", {}, seed_offset=1, label=f"{n}, second seed")
     for n in ("emergent", "learned", "random", "hash")]  # the models the verdict compares

for _m in MODELS:  # a second-seed model has its first-seed twin's overrides
    if _m.name.endswith("_seed2"):
        _twin = next(t for t in MODELS if t.name == _m.name[:-6])
        _m.overrides = dict(_twin.overrides)


@dataclass
class Stage:
    name: str
    title: str
    models: List[str]
    analyses: List[str] = field(default_factory=list)


STAGES: List[Stage] = [
    Stage("dense_baselines", "Dense baselines", ["float", "ternary_dense"]),
    Stage("routing", "Routing methods, sparse-trained (Option B)",
          ["emergent", "learned", "random", "hash", "ternary_dense"]),
    Stage("option_a", "Option A: train dense, infer one tile", ["option_a"], ["option_a_eval"]),
    Stage("scale", "Scale: hierarchical vs sparse 4 tiles vs dense",
          ["emergent", "hier16_k1", "hier16_k4", "hier64_k16", "ternary_dense", "float"]),
    Stage("specialisation", "Specialisation: character class x tile",
          ["emergent", "learned", "random", "hash", "hier16_k1"], ["specialisation"]),
    Stage("noise", "Noise: second seed of the key models",
          ["emergent", "learned", "random", "hash"] + [f"{n}_seed2" for n in ("emergent", "learned", "random", "hash")]),
]

MODEL_BY_NAME = {m.name: m for m in MODELS}


def model_names(stages: List[Stage]) -> List[str]:
    """Distinct models the stages need, in first-use order."""
    out: List[str] = []
    for s in stages:
        out += [m for m in s.models if m not in out]
    return out


def select_stages(names: Optional[List[str]]) -> List[Stage]:
    if not names:
        return list(STAGES)
    known = {s.name: s for s in STAGES}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown stage(s) {bad}; stages are {list(known)}")
    return [s for s in STAGES if s.name in names]
