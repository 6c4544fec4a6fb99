"""The verdict: criteria fixed here, in code, before any run. Losses are validation cross-entropy in nats.

The thresholds come from the prototype's own claims (its build log): emergent routing "matches" learned
routing, beats random, shows specialisation, has zero routing parameters, and sparse training (Option B)
lands close to dense. "Beats" must exceed the seed-to-seed spread measured by the noise stage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

LEARNED_MARGIN_NATS = 0.05     # emergent may be at most this much worse than the learned gate
OPTION_B_MARGIN_NATS = 0.05    # sparse emergent may be at most this much worse than the same FFN, all tiles on
MIN_BEAT_NATS = 0.01           # a win smaller than this is a tie, whatever the seed spread
MI_THRESHOLD_BITS = 0.05       # mean over layers of I(character class; top-1 tile)
NANOGPT_FLOAT_VAL_LOSS = 1.88  # nanoGPT's float model at the default scale (2000 iterations)


@dataclass
class Criterion:
    name: str
    passed: Optional[bool]  # None: the numbers it needs were not produced (stage not run)
    detail: str


def _get(losses: Dict[str, float], *names: str) -> Optional[List[float]]:
    vals = [losses.get(n) for n in names]
    return None if any(v is None for v in vals) else vals  # type: ignore[return-value]


def seed_spread(losses: Dict[str, float]) -> Optional[float]:
    """Largest |seed 1 - seed 2| over the models of the noise stage."""
    diffs = [abs(v - losses[k[:-6]]) for k, v in losses.items() if k.endswith("_seed2") and k[:-6] in losses]
    return max(diffs) if diffs else None


def judge(losses: Dict[str, float], routing_params: Dict[str, int], mean_mi_bits: Optional[float]) -> List[Criterion]:
    out: List[Criterion] = []
    spread = seed_spread(losses)
    beat = max(MIN_BEAT_NATS, spread or 0.0)
    spread_txt = f"seed spread {spread:.4f}" if spread is not None else "no seed spread measured"

    v = _get(losses, "emergent", "learned")
    out.append(Criterion(
        f"emergent within {LEARNED_MARGIN_NATS} nats of learned", None if v is None else v[0] - v[1] <= LEARNED_MARGIN_NATS,
        "" if v is None else f"emergent {v[0]:.4f} vs learned {v[1]:.4f} (diff {v[0] - v[1]:+.4f})"))
    for other in ("random", "hash"):
        v = _get(losses, "emergent", other)
        out.append(Criterion(
            f"emergent beats {other} by > max({MIN_BEAT_NATS}, seed spread)",
            None if v is None else v[1] - v[0] > beat,
            "" if v is None else f"emergent {v[0]:.4f} vs {other} {v[1]:.4f} (gain {v[1] - v[0]:+.4f}; need > {beat:.4f}, {spread_txt})"))
    out.append(Criterion(
        f"specialisation: mean I(class; tile) >= {MI_THRESHOLD_BITS} bits", None if mean_mi_bits is None
        else mean_mi_bits >= MI_THRESHOLD_BITS, "" if mean_mi_bits is None else f"{mean_mi_bits:.4f} bits"))
    rp = routing_params.get("emergent")
    out.append(Criterion("zero routing parameters", None if rp is None else rp == 0,
                         "" if rp is None else f"emergent: {rp} routing parameters (learned: {routing_params.get('learned')})"))
    v = _get(losses, "emergent", "ternary_dense")
    fl = losses.get("float")
    out.append(Criterion(
        f"Option B within {OPTION_B_MARGIN_NATS} nats of dense", None if v is None else v[0] - v[1] <= OPTION_B_MARGIN_NATS,
        "" if v is None else f"sparse emergent {v[0]:.4f} vs ternary dense {v[1]:.4f} (diff {v[0] - v[1]:+.4f})"
        + ("" if fl is None else f"; float dense {fl:.4f}")))
    return out


def as_dicts(criteria: List[Criterion]) -> List[Dict[str, Any]]:
    return [asdict(c) for c in criteria]


def mark(p: Optional[bool]) -> str:
    return "PASS" if p else ("n/a" if p is None else "FAIL")
