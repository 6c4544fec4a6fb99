"""The verdict: the statistic and the criteria, fixed here in code before any run.

Losses are final validation cross-entropy in nats, one per model; an arm is trained at n seeds, each
seed varying every random choice (initialisation, hash tables, k-means, routing draws, data order).

The rule (rationale). Per arm we take the mean and the sample standard deviation over seeds. For two
arms A and B, d = mean(A) - mean(B) and its standard error is se = sqrt(sd_A^2 / n_A + sd_B^2 / n_B)
(Welch; the seeds of two arms are independent draws of the whole training process).
- "A beats B" when mean(B) - mean(A) > max(MIN_BEAT_NATS, 2 se): a win must be larger than seed noise
  (about a 95% two-sided bound) and larger than a difference anyone would care about.
- "A matches B" when A loses by at most MATCH_MARGIN_NATS and by at most 2 se: A is neither worse by a
  margin that matters nor detectably worse than B at this number of seeds. As for wins, a loss below
  MIN_BEAT_NATS is a tie whatever the noise: allowed = max(MIN_BEAT_NATS, min(MATCH_MARGIN_NATS, 2 se)).
With fewer than 2 seeds in either arm there is no standard error and the criterion is not judged
(n/a): one seed is an anecdote.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

MIN_BEAT_NATS = 0.01           # a win smaller than this is a tie, however small the noise
MATCH_MARGIN_NATS = 0.05       # "matches": loses by at most this much (the prototype's own claim margin)
SE_FACTOR = 2.0                # "beyond seed noise": more than twice the standard error of the difference
MI_THRESHOLD_BITS = 0.05       # mean over layers (and seeds) of I(character class; top-1 tile)
NANOGPT_FLOAT_VAL_LOSS = 1.88  # nanoGPT's float model at the default scale (2000 iterations)
BASELINE_TOLERANCE_NATS = 0.03  # the float baseline must land this close, or the budget is not converged
PROTOTYPE_HIER_GAIN = 0.13     # the prototype's claim: hierarchical 16 tiles 13% lower PPL than sparse 4


@dataclass
class ArmStats:
    n: int
    mean: float
    sd: Optional[float]          # sample standard deviation (None for n < 2)
    values: List[float]

    def text(self) -> str:
        return f"{self.mean:.4f}" + ("" if self.sd is None else f" ± {self.sd:.4f}") + f" (n={self.n})"


def arm_stats(values: Sequence[float]) -> ArmStats:
    vals = [float(v) for v in values]
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return ArmStats(n, mean, sd, vals)


def diff_se(a: ArmStats, b: ArmStats) -> Optional[float]:
    if a.sd is None or b.sd is None:
        return None
    return math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n)


@dataclass
class Criterion:
    name: str
    passed: Optional[bool]  # None: the numbers it needs were not produced (arm not run, < 2 seeds)
    detail: str


def _compare(name_a: str, name_b: str, stats: Dict[str, ArmStats], verb: str, judge_fn) -> Criterion:
    """A criterion "A <verb> B": judge_fn(diff = mean(A) - mean(B), se) -> (passed, explanation)."""
    title = f"{name_a} {verb} {name_b}"
    a, b = stats.get(name_a), stats.get(name_b)
    if a is None or b is None:
        return Criterion(title, None, "not run")
    se = diff_se(a, b)
    diff = a.mean - b.mean
    nums = f"{name_a} {a.text()} vs {name_b} {b.text()}"
    if se is None:
        return Criterion(title, None, nums + "; needs >= 2 seeds per arm")
    passed, why = judge_fn(diff, se)
    return Criterion(title, passed, f"{nums}: {why}")


def _beats_rule(diff: float, se: float):
    need = max(MIN_BEAT_NATS, SE_FACTOR * se)
    return -diff > need, f"gain {-diff:+.4f}, need > {need:.4f} (2 se = {SE_FACTOR * se:.4f})"


def _matches_rule(diff: float, se: float):
    limit = max(MIN_BEAT_NATS, min(MATCH_MARGIN_NATS, SE_FACTOR * se))
    return diff <= limit, (f"loses {diff:+.4f}, allowed <= {limit:.4f} "
                           f"(max({MIN_BEAT_NATS}, min({MATCH_MARGIN_NATS}, 2 se = {SE_FACTOR * se:.4f})))")


def beats(name_a: str, name_b: str, stats: Dict[str, ArmStats]) -> Criterion:
    return _compare(name_a, name_b, stats, "beats", _beats_rule)


def matches(name_a: str, name_b: str, stats: Dict[str, ArmStats]) -> Criterion:
    return _compare(name_a, name_b, stats, "matches", _matches_rule)


def judge(losses: Dict[str, List[float]], routing_params: Dict[str, int], mean_mi_bits: Optional[float]) -> List[Criterion]:
    """losses: final val losses per arm (one per seed); routing_params: per arm; mean_mi_bits: the
    emergent arm's I(class; tile), mean over layers and seeds."""
    stats = {a: arm_stats(v) for a, v in losses.items() if v}
    out: List[Criterion] = [
        # does routing read from the ternary weights work?
        matches("emergent", "learned", stats),
        beats("emergent", "random", stats),
        beats("emergent", "hash", stats),
        beats("emergent", "random_signatures", stats),   # does reading the weights matter?
        # the stronger read-from-weights routers
        beats("mean_signature", "emergent", stats),
        beats("autonomy", "emergent", stats),
        beats("mean_signature", "hash", stats),
        beats("autonomy", "hash", stats),
        matches("mean_signature", "learned", stats),
        matches("autonomy", "learned", stats),
        # Option B: sparse training at a quarter of the FFN compute
        matches("emergent", "ternary_dense", stats),
        # hierarchy at equal parameters
        beats("hier16", "emergent", stats),
        matches("hier16", "flat16", stats),
    ]
    out.append(Criterion(
        f"specialisation: mean I(class; tile) >= {MI_THRESHOLD_BITS} bits (emergent)",
        None if mean_mi_bits is None else mean_mi_bits >= MI_THRESHOLD_BITS,
        "not run" if mean_mi_bits is None else f"{mean_mi_bits:.4f} bits"))
    free = {a: routing_params[a] for a in ("emergent", "random_signatures", "mean_signature", "autonomy")
            if a in routing_params}
    out.append(Criterion("zero routing parameters (emergent, random_signatures, mean_signature, autonomy)",
                         None if not free else all(v == 0 for v in free.values()),
                         "not run" if not free else ", ".join(f"{k} {v}" for k, v in free.items())
                         + f" (learned: {routing_params.get('learned')})"))
    fl = stats.get("float")
    out.append(Criterion(
        f"float baseline within {BASELINE_TOLERANCE_NATS} nats of nanoGPT's {NANOGPT_FLOAT_VAL_LOSS}",
        None if fl is None else abs(fl.mean - NANOGPT_FLOAT_VAL_LOSS) <= BASELINE_TOLERANCE_NATS,
        "not run" if fl is None else f"float {fl.text()} ({fl.mean - NANOGPT_FLOAT_VAL_LOSS:+.4f})"))
    return out


def hierarchy_claim(stats: Dict[str, ArmStats]) -> Optional[str]:
    """Is the prototype's claim (hierarchical 16 tiles: 13% lower perplexity than sparse 4) reproduced?"""
    h, e = stats.get("hier16"), stats.get("emergent")
    if h is None or e is None:
        return None
    ppl_gain = 1 - math.exp(h.mean - e.mean)
    c = beats("hier16", "emergent", stats)
    reproduced = bool(c.passed) and ppl_gain >= PROTOTYPE_HIER_GAIN
    return (f"hier16 perplexity {math.exp(h.mean):.3f} vs sparse 4 (emergent) {math.exp(e.mean):.3f}: "
            f"{ppl_gain:+.1%} lower (prototype: {PROTOTYPE_HIER_GAIN:.0%}); "
            f"{'reproduced' if reproduced else 'not reproduced'}")


def as_dicts(criteria: List[Criterion]) -> List[Dict[str, Any]]:
    return [asdict(c) for c in criteria]


def mark(p: Optional[bool]) -> str:
    return "PASS" if p else ("n/a" if p is None else "FAIL")
