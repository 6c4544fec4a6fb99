"""trix validate: the whole pipeline on a micro budget, resumability, Ctrl-C, verdict and statistics.

Most tests use the contract stand-in model from test_train.py (fast, deterministic); one runs a stage
on the real trix.nn.TriXLM to check the pipeline against the contract.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from trix.cli import main  # noqa: E402
from trix.validate import verdict as V  # noqa: E402
from trix.validate.analysis import mutual_information_bits  # noqa: E402

from test_train import tiny_text  # noqa: E402

MICRO = ["--quick", "--iters", "3", "--no-progress", "--model-factory", "test_train:make_standin"]


def run_validate(tmp_path: Path, out: str, *extra: str) -> int:
    return main(["validate", "--data", str(tiny_text(tmp_path)), "--out", str(tmp_path / out), *MICRO, *extra])


def mtimes(d: Path):
    return {p.relative_to(d).as_posix(): p.stat().st_mtime_ns for p in d.rglob("*.json")}


def test_micro_budget_runs_the_whole_pipeline(tmp_path, capsys):
    assert run_validate(tmp_path, "run") == 0
    out = tmp_path / "run"
    for f in ("report.md", "results.json", "val_loss.png", "tile_usage.png", "class_tile.png"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"float", "ternary_dense", "emergent", "learned", "random", "hash", "option_a",
                                  "hier16_k1", "hier16_k4", "hier64_k16",
                                  "emergent_seed2", "learned_seed2", "random_seed2", "hash_seed2"}
    assert set(res["stages"]) == {"dense_baselines", "routing", "option_a", "scale", "specialisation", "noise"}
    assert res["models"]["learned"]["param_counts"]["routing"] > 0 == res["models"]["emergent"]["param_counts"]["routing"]
    assert len(res["verdict"]) == 6 and all(c["passed"] in (True, False) for c in res["verdict"])
    assert set(res["stages"]["option_a"]["option_a"]["val_loss"]) == {"all tiles", "emergent", "random", "first"}
    assert res["versions"]["torch"] and res["machine"]["cpu_count"]
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "not evidence" in report and "## Sample" in report
    printed = capsys.readouterr().out
    assert "verdict:" in printed and "emergent" in printed
    # every model trained with the same seed and data order except the second-seed twins
    seeds = {n: m["config"]["seed"] for n, m in res["models"].items()}
    assert len({s for n, s in seeds.items() if not n.endswith("_seed2")}) == 1
    assert seeds["emergent_seed2"] != seeds["emergent"]


def test_finished_stages_are_not_rerun(tmp_path, capsys):
    assert run_validate(tmp_path, "r", "--stages", "dense_baselines,routing") == 0
    out = tmp_path / "r"
    before = mtimes(out / "models")
    assert run_validate(tmp_path, "r") == 0
    after = mtimes(out / "models")
    assert all(after[k] == v for k, v in before.items())  # models of the first run untouched
    assert len(after) > len(before)
    assert "dense_baselines: finished earlier" in capsys.readouterr().out


def test_ctrl_c_leaves_a_resumable_run(tmp_path, monkeypatch, capsys):
    import trix.validate.runner as R

    real = R.train
    calls = {"n": 0}

    def interrupting(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(R, "train", interrupting)
    assert run_validate(tmp_path, "c") == 130
    assert "Resume with" in capsys.readouterr().err
    done = mtimes(tmp_path / "c" / "models")
    assert len(done) == 2
    monkeypatch.setattr(R, "train", real)
    assert run_validate(tmp_path, "c") == 0
    after = mtimes(tmp_path / "c" / "models")
    assert all(after[k] == v for k, v in done.items()) and (tmp_path / "c" / "report.md").is_file()


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    assert run_validate(tmp_path, "s", "--stages", "dense_baselines") == 0
    assert run_validate(tmp_path, "s", "--stages", "dense_baselines", "--seed", "7") == 2
    assert "different settings" in capsys.readouterr().err


def test_real_model_through_option_a_stage(tmp_path):
    pytest.importorskip("trix.nn")
    rc = main(["validate", "--data", str(tiny_text(tmp_path)), "--out", str(tmp_path / "real"), "--quick",
               "--iters", "2", "--no-progress", "--stages", "option_a"])
    assert rc == 0
    res = json.loads((tmp_path / "real" / "results.json").read_text())
    va = res["stages"]["option_a"]["option_a"]["val_loss"]
    assert all(math.isfinite(v) for v in va.values())
    assert abs(va["all tiles"] - res["models"]["option_a"]["final_val_loss"]) < 1e-6


def test_mutual_information_against_closed_forms():
    assert mutual_information_bits(np.full((6, 4), 10.0)) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information_bits(np.eye(4) * 25) == pytest.approx(2.0)
    t = np.array([[30.0, 10.0], [10.0, 30.0]])  # binary symmetric: 1 - H(0.25)
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert mutual_information_bits(t) == pytest.approx(1 - h)


def _losses(**kw):
    base = dict(emergent=1.90, learned=1.88, random=1.99, hash=1.95, ternary_dense=1.87, float=1.85)
    base.update(kw)
    return base


def test_verdict_passes_and_fails_at_the_stated_margins():
    rp = {"emergent": 0, "learned": 512}
    ok = V.judge(_losses(), rp, 0.2)
    assert [c.passed for c in ok] == [True, True, True, True, True, True]
    bad = V.judge(_losses(learned=1.84, random=1.905, hash=1.90, ternary_dense=1.80), {"emergent": 3}, 0.01)
    assert [c.passed for c in bad] == [False, False, False, False, False, False]
    # a win smaller than the measured seed spread is not a win
    noisy = V.judge(_losses(emergent_seed2=1.96), rp, 0.2)
    assert V.seed_spread(_losses(emergent_seed2=1.96)) == pytest.approx(0.06)
    assert [c.passed for c in noisy][1:3] == [True, False]
    missing = V.judge({"emergent": 1.9}, {}, None)
    assert all(c.passed is None for c in missing)


def test_report_flags_models_that_ignore_top_k():
    from trix.validate.report import active_k, topk_mismatches

    def m(ffn, routing, k, used):
        return {"config": {"model": {"ffn": ffn, "routing": routing, "top_k": k}},
                "history": [{"probe": {"active_k": [used, used]}}]}

    models = {"hier16_k4": m("hierarchical", "emergent", 4, 1), "emergent": m("sparse", "emergent", 1, 1),
              "ternary_dense": m("sparse", "dense", 1, 4), "float": m("float", "dense", 1, None)}
    assert active_k(models["float"]) == "-" and active_k(models["hier16_k4"]) == "1"
    assert topk_mismatches(models) == ["hier16_k4 (top_k 4, used 1)"]
