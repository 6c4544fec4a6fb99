"""The study: budgets, the arms it compares and the stages that use them.

Every arm is the same transformer (width, depth, context, optimizer, iterations, data); an arm lists
only what differs from the budget's base config. Each arm is trained once per seed; a seed sets every
random choice of a model (initialisation, hash tables, k-means, random routing draws, data order),
and two arms with the same seed share every initial weight they both have (trix.nn.lm.seeded_init_).
The routing arms differ only in the routing decision: same gate rule ("unit": value 1 for every
method), the same balance loss for every method that has router probabilities, no diversity loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class Budget:
    name: str
    model: Dict[str, Any]          # base TriXLMConfig fields
    train: Dict[str, Any]          # TrainConfig fields except model and seed
    probe_tokens: int              # tokens of the fixed validation probe for routing statistics
    analysis_batches: int          # validation batches for class x tile statistics
    sample_tokens: int
    seeds: int = 3                 # default number of seeds per arm


# Fair-arm settings shared by every model: one gate rule, the Switch balance loss (it applies to every
# router with probabilities; hash and random are balanced by construction), no signature diversity loss.
FAIR = dict(gate="unit", balance_coef=0.01, diversity_coef=0.0, cluster_balance_coef=0.0, hier_wrapper=False)
BASE_MODEL = dict(block_size=64, n_layer=4, n_head=4, d_model=128, dropout=0.0, expansion=4, tiles=4, top_k=1,
                  **FAIR)

BUDGETS: Dict[str, Budget] = {
    # pipeline proof for CI: tiny models, a few minutes on 2 cores; the numbers are not evidence
    "quick": Budget("quick", dict(BASE_MODEL, block_size=32, n_layer=2, n_head=2, d_model=32),
                    dict(iters=60, batch_size=8, eval_interval=30, eval_batches=2, final_eval_batches=4,
                         eval_batch_size=16, warmup=10), probe_tokens=128, analysis_batches=2, sample_tokens=100),
    # nanoGPT's CPU configuration (4 layers, 4 heads, width 128, context 64, batch 12, 2000 iterations,
    # lr 1e-3 -> 1e-4 cosine, warm-up 100, no dropout), every model its full 2000 iterations; the
    # curves are evaluated every 250 iterations as nanoGPT does (with every 100, model walls were
    # 12.5% above their timed steps, docs/results/stdlib; with 250, 7%, docs/results/default), the
    # verdict on the final 50-batch evaluation
    "default": Budget("default", dict(BASE_MODEL),
                      dict(iters=2000, batch_size=12, eval_interval=250, eval_batches=8, final_eval_batches=50,
                           eval_batch_size=32, warmup=100), probe_tokens=1024, analysis_batches=20,
                      sample_tokens=400),
    # the prototype's scale (d 128, 4 layers, 4 heads, context 256), for a GPU
    "full": Budget("full", dict(BASE_MODEL, block_size=256),
                   dict(iters=5000, batch_size=64, eval_interval=250, eval_batches=20, final_eval_batches=100,
                        eval_batch_size=64, warmup=200), probe_tokens=4096, analysis_batches=50, sample_tokens=600),
}


@dataclass
class Arm:
    name: str
    overrides: Dict[str, Any]
    label: str
    cost: float = 1.0  # relative training time (longest first keeps both workers busy)


def _sparse(routing: str, **kw: Any) -> Dict[str, Any]:
    return dict(ffn="sparse", routing=routing, **kw)


ARMS: List[Arm] = [
    Arm("float", dict(ffn="float", routing="dense"), "float FFN (dense)", 1.0),
    Arm("ternary_dense", _sparse("dense"), "ternary FFN, all 4 tiles (also Option A)", 2.3),
    Arm("emergent", _sparse("emergent"), "4 tiles top-1, signature sign(sum of up rows)", 1.0),
    Arm("learned", _sparse("learned"), "4 tiles top-1, learned linear gate", 1.0),
    Arm("random", _sparse("random"), "4 tiles top-1, random per call", 0.9),
    Arm("hash", _sparse("hash"), "4 tiles top-1, token-id hash (Hash Layers)", 0.9),
    Arm("random_signatures", _sparse("random_signatures"), "4 tiles top-1, fixed random ternary signatures", 1.0),
    Arm("mean_signature", _sparse("mean_signature"), "4 tiles top-1, mean of up rows (not sign-quantised)", 1.0),
    Arm("autonomy", _sparse("autonomy"), "4 tiles top-1, norm of each tile's own hidden (Autonomy-of-Experts)", 1.6),
    Arm("flat16", _sparse("emergent", tiles=16), "16 tiles top-1, flat emergent (scores 16)", 1.1),
    Arm("hier16", dict(ffn="hierarchical", routing="emergent", tiles=16, clusters=4, top_p=1),
        "16 tiles top-1, hierarchical emergent (4 clusters, scores 4 + 4)", 1.4),
]
ARM_BY_NAME = {a.name: a for a in ARMS}

ROUTERS_READ_FROM_WEIGHTS = ("emergent", "mean_signature", "autonomy")


@dataclass
class Stage:
    name: str
    title: str
    arms: List[str]
    analyses: List[str] = field(default_factory=list)


STAGES: List[Stage] = [
    Stage("dense_baselines", "Dense baselines", ["float", "ternary_dense"]),
    Stage("routing", "Routing methods, sparse-trained (Option B), 4 tiles top-1",
          ["emergent", "learned", "random", "hash", "random_signatures", "mean_signature", "autonomy",
           "ternary_dense"]),
    Stage("option_a", "Option A: train dense, infer one tile", ["ternary_dense"], ["option_a_eval"]),
    Stage("hierarchy", "Hierarchy at equal parameters: 16 tiles hierarchical vs flat vs 4 tiles vs dense",
          ["hier16", "flat16", "emergent", "ternary_dense"]),
    Stage("specialisation", "Specialisation: character class x tile",
          ["emergent", "learned", "random", "hash", "random_signatures", "mean_signature", "autonomy", "hier16"],
          ["specialisation"]),
]


def model_name(arm: str, replicate: int) -> str:
    """The model of one arm at one seed (replicate 0, 1, ...)."""
    return f"{arm}_s{replicate}"


def split_model_name(name: str) -> tuple:
    arm, _, rep = name.rpartition("_s")
    return arm, int(rep)


def stage_models(stage: Stage, seeds: int) -> List[str]:
    return [model_name(a, r) for r in range(seeds) for a in stage.arms]


def arm_names(stages: List[Stage]) -> List[str]:
    """Distinct arms the stages need, in first-use order."""
    out: List[str] = []
    for s in stages:
        out += [a for a in s.arms if a not in out]
    return out


def model_names(stages: List[Stage], seeds: int) -> List[str]:
    return [model_name(a, r) for r in range(seeds) for a in arm_names(stages)]


def select_stages(names: Optional[List[str]]) -> List[Stage]:
    if not names:
        return list(STAGES)
    known = {s.name: s for s in STAGES}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown stage(s) {bad}; stages are {list(known)}")
    return [s for s in STAGES if s.name in names]
