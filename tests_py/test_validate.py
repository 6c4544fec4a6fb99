"""trix validate: the whole pipeline on a micro budget, resumability, Ctrl-C, verdict and statistics.

Most tests use the contract stand-in model from test_train.py (fast, deterministic); one runs a stage
on the real trix.nn.TriXLM to check the pipeline against the contract.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from trix.cli import main  # noqa: E402
from trix.validate import verdict as V  # noqa: E402
from trix.validate.analysis import mutual_information_bits  # noqa: E402

from test_train import make_standin, tiny_text  # noqa: E402
from trix import train as T  # noqa: E402

MICRO = ["--quick", "--iters", "3", "--no-progress", "--model-factory", "test_train:make_standin", "--jobs", "1",
         "--seeds", "2"]
ARMS = {"float", "ternary_dense", "emergent", "learned", "random", "hash", "random_signatures", "mean_signature",
        "autonomy", "flat16", "hier16"}


def run_validate(tmp_path: Path, out: str, *extra: str) -> int:
    return main(["validate", "--data", str(tiny_text(tmp_path)), "--out", str(tmp_path / out), *MICRO, *extra])


def mtimes(d: Path):
    return {p.relative_to(d).as_posix(): p.stat().st_mtime_ns for p in d.rglob("*.json")}


def test_micro_budget_runs_the_whole_pipeline(tmp_path, capsys):
    assert run_validate(tmp_path, "run") == 0
    out = tmp_path / "run"
    for f in ("report.md", "results.json", "final_loss.png", "val_loss.png", "tile_usage.png", "class_tile.png"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {f"{a}_s{r}" for a in ARMS for r in range(2)}
    assert set(res["arms"]) == ARMS and all(v["n"] == 2 for v in res["arms"].values())
    assert set(res["stages"]) == {"dense_baselines", "routing", "option_a", "hierarchy", "specialisation"}
    m = res["models"]
    assert m["learned_s0"]["param_counts"]["routing"] > 0 == m["emergent_s0"]["param_counts"]["routing"]
    for v in m.values():
        assert len(v["init_sha256"]) == 64 and v["seed"] == 1337 + v["replicate"]
        assert "tiles_scored_per_token" in v and "tiles_active_per_token" in v
    assert all(c["passed"] in (True, False, None) for c in res["verdict"])
    names = {c["name"] for c in res["verdict"]}
    assert {"emergent beats random_signatures", "autonomy beats emergent", "hier16 matches flat16"} <= names
    oa = res["stages"]["option_a"]["option_a"]
    assert set(oa["val_loss"]) == {"all tiles", "emergent", "random", "first", "emergent x T", "random x T", "first x T"}
    assert set(oa["per_seed"]) == {"ternary_dense_s0", "ternary_dense_s1"}
    assert res["versions"]["torch"] and res["machine"]["cpu_count"]
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "not evidence" in report and "## Sample" in report and "every seed" in report
    printed = capsys.readouterr().out
    assert "verdict:" in printed and "emergent" in printed
    # one seed per replicate, shared by every arm; replicates differ
    seeds = {n: v["config"]["seed"] for n, v in m.items()}
    assert {s for n, s in seeds.items() if n.endswith("_s0")} == {1337}
    assert {s for n, s in seeds.items() if n.endswith("_s1")} == {1338}


def test_real_models_in_two_worker_processes(tmp_path):
    """The parallel path on the real TriXLM: results.json records distinct initial states per seed, the
    same seed gives the same init for the same architecture, and the hierarchical arm chooses."""
    rc = main(["validate", "--data", str(tiny_text(tmp_path)), "--out", str(tmp_path / "par"), "--quick",
               "--iters", "2", "--no-progress", "--stages", "hierarchy", "--seeds", "2", "--jobs", "2"])
    assert rc == 0
    m = json.loads((tmp_path / "par" / "results.json").read_text())["models"]
    assert set(m) == {f"{a}_s{r}" for a in ("hier16", "flat16", "emergent", "ternary_dense") for r in range(2)}
    for a in ("hier16", "flat16", "emergent", "ternary_dense"):
        assert m[f"{a}_s0"]["init_sha256"] != m[f"{a}_s1"]["init_sha256"]
    h = m["hier16_s0"]
    assert h["tiles_scored_per_token"] == 8 and h["tiles_active_per_token"] == 1  # 4 clusters + 4 members; 1 runs
    assert m["flat16_s0"]["tiles_scored_per_token"] == 16 and m["ternary_dense_s0"]["tiles_active_per_token"] == 4


def explodes_in_a_worker(cfg: dict):
    """A model factory that works in the main process and fails in every spawned worker."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError("factory exploded in the worker")
    return make_standin(cfg)


T.register_model_factory("test_validate:explodes_in_a_worker", explodes_in_a_worker)


def test_a_failing_worker_names_its_model_and_stops_the_run(tmp_path, capsys):
    rc = main(["validate", "--data", str(tiny_text(tmp_path)), "--out", str(tmp_path / "fail"), "--quick", "--iters",
               "3", "--no-progress", "--model-factory", "test_validate:explodes_in_a_worker", "--jobs", "2",
               "--seeds", "1", "--stages", "dense_baselines"])
    err = capsys.readouterr().err
    assert rc == 1 and "training" in err and "failed (worker exit code 1" in err and "Resume with" in err
    assert not list((tmp_path / "fail" / "models").glob("*/result.json"))


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
               "--iters", "2", "--no-progress", "--stages", "option_a", "--seeds", "1", "--jobs", "1"])
    assert rc == 0
    res = json.loads((tmp_path / "real" / "results.json").read_text())
    va = res["stages"]["option_a"]["option_a"]["val_loss"]
    assert all(math.isfinite(v) for v in va.values())
    assert abs(va["all tiles"] - res["models"]["ternary_dense_s0"]["final_val_loss"]) < 1e-6
    assert va["emergent x T"] != va["emergent"]


def test_mutual_information_against_closed_forms():
    assert mutual_information_bits(np.full((6, 4), 10.0)) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information_bits(np.eye(4) * 25) == pytest.approx(2.0)
    t = np.array([[30.0, 10.0], [10.0, 30.0]])  # binary symmetric: 1 - H(0.25)
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert mutual_information_bits(t) == pytest.approx(1 - h)


def _stats(mean, sd, n=3):
    """n values with exactly this mean and sample standard deviation."""
    if n == 1:
        return [mean]
    base = np.linspace(-1, 1, n)
    base = base / base.std(ddof=1) * sd
    return list(mean + base)


def test_arm_statistics_by_hand():
    st = V.arm_stats([2.0, 2.1, 2.3])
    assert st.n == 3 and st.mean == pytest.approx(2.1333333) and st.sd == pytest.approx(0.1527525)
    assert V.arm_stats([2.0]).sd is None
    a, b = V.arm_stats(_stats(2.0, 0.03)), V.arm_stats(_stats(2.1, 0.04))
    assert V.diff_se(a, b) == pytest.approx(math.sqrt(0.03 ** 2 / 3 + 0.04 ** 2 / 3))


def test_beats_needs_more_than_the_floor_and_twice_the_standard_error():
    # se = sqrt(2 * 0.01^2 / 3) = 0.00816: 2 se = 0.0163 > 0.01, so a gain of 0.015 is not a win
    st = {"a": V.arm_stats(_stats(2.000, 0.01)), "b": V.arm_stats(_stats(2.015, 0.01))}
    assert V.beats("a", "b", st).passed is False
    st["b"] = V.arm_stats(_stats(2.020, 0.01))
    assert V.beats("a", "b", st).passed is True
    # tiny noise: the 0.01 floor decides
    st = {"a": V.arm_stats(_stats(2.000, 1e-4)), "b": V.arm_stats(_stats(2.009, 1e-4))}
    assert V.beats("a", "b", st).passed is False
    st["b"] = V.arm_stats(_stats(2.011, 1e-4))
    assert V.beats("a", "b", st).passed is True
    # a loss is never a win, and an exact tie is not one either
    assert V.beats("b", "a", st).passed is False
    st["b"] = V.arm_stats(_stats(2.0, 1e-4))
    assert V.beats("a", "b", st).passed is False


def test_matches_allows_ties_and_small_losses_but_not_detectable_or_large_ones():
    mk = lambda ma, sa, mb, sb: {"a": V.arm_stats(_stats(ma, sa)), "b": V.arm_stats(_stats(mb, sb))}
    assert V.matches("a", "b", mk(2.0, 0.01, 2.0, 0.01)).passed is True        # tie
    assert V.matches("a", "b", mk(1.9, 0.01, 2.0, 0.01)).passed is True        # a is better
    assert V.matches("a", "b", mk(2.008, 1e-4, 2.0, 1e-4)).passed is True      # under the 0.01 floor
    assert V.matches("a", "b", mk(2.03, 1e-3, 2.0, 1e-3)).passed is False      # detectably worse (2 se ~ 0.0016)
    assert V.matches("a", "b", mk(2.03, 0.03, 2.0, 0.03)).passed is True       # within noise and margin
    assert V.matches("a", "b", mk(2.06, 0.2, 2.0, 0.2)).passed is False        # past the 0.05 margin
    one = {"a": V.arm_stats([2.0]), "b": V.arm_stats(_stats(2.0, 0.01))}
    assert V.matches("a", "b", one).passed is None and V.beats("a", "b", one).passed is None
    assert V.beats("a", "zzz", one).passed is None


def test_judge_on_hand_made_numbers():
    L = {a: _stats(2.0, 0.01) for a in ARMS}
    L.update(emergent=_stats(1.95, 0.01), random=_stats(2.10, 0.01), hash=_stats(1.90, 0.01),
             float=_stats(1.89, 0.01), hier16=_stats(2.2, 0.01), flat16=_stats(2.2, 0.01))
    rp = {a: 0 for a in ARMS}
    rp["learned"] = 512
    out = {c.name: c.passed for c in V.judge(L, rp, 0.2)}
    assert out["emergent matches learned"] is True
    assert out["emergent beats random"] is True
    assert out["emergent beats hash"] is False
    assert out["emergent beats random_signatures"] is True
    assert out["autonomy beats emergent"] is False
    assert out["hier16 beats emergent"] is False and out["hier16 matches flat16"] is True
    assert out["specialisation: mean I(class; tile) >= 0.05 bits (emergent)"] is True
    assert out["zero routing parameters (emergent, random_signatures, mean_signature, autonomy)"] is True
    assert out["float baseline within 0.03 nats of nanoGPT's 1.88"] is True
    rp["autonomy"] = 3
    bad = {c.name: c.passed for c in V.judge(dict(L, float=_stats(2.0, 0.01)), rp, 0.01)}
    assert bad["zero routing parameters (emergent, random_signatures, mean_signature, autonomy)"] is False
    assert bad["float baseline within 0.03 nats of nanoGPT's 1.88"] is False
    assert bad["specialisation: mean I(class; tile) >= 0.05 bits (emergent)"] is False
    assert all(c.passed is None for c in V.judge({"emergent": [1.9]}, {}, None))
    assert "not reproduced" in V.hierarchy_claim({a: V.arm_stats(v) for a, v in L.items()})


def test_report_flags_models_that_ignore_top_k():
    from trix.validate.report import active_k, topk_mismatches

    def m(ffn, routing, k, used):
        return {"config": {"model": {"ffn": ffn, "routing": routing, "top_k": k}},
                "history": [{"probe": {"active_k": [used, used]}}]}

    models = {"hier16_s0": m("hierarchical", "emergent", 4, 1), "emergent_s0": m("sparse", "emergent", 1, 1),
              "ternary_dense_s0": m("sparse", "dense", 1, 4), "float_s0": m("float", "dense", 1, None)}
    assert active_k(models["float_s0"]) == "-" and active_k(models["hier16_s0"]) == "1"
    assert topk_mismatches(models) == ["hier16_s0 (top_k 4, used 1)"]


def test_interrupting_the_main_process_stops_the_workers(tmp_path):
    """SIGINT to the main process alone (not its process group) must end the run with the resume
    message, the workers included, well before the models would have finished."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "int"
    args = ["validate", "--data", str(tiny_text(tmp_path)), "--out", str(out), "--quick", "--iters", "100000",
            "--no-progress", "--stages", "dense_baselines", "--seeds", "1", "--jobs", "2"]
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
    # inherited SIG_IGN: give the run Python's own handler, as a Ctrl-C at a terminal would find it.
    boot = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = ['trix'] + {args!r}; runpy.run_module('trix', run_name='__main__')")
    cmd = [sys.executable, "-c", boot]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list((out / "models").glob("*/ckpt.pt")):
            time.sleep(0.5)
        assert list((out / "models").glob("*/ckpt.pt")), "no model started"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130 and "Resume with" in err
    alive = ["?"]
    for _ in range(30):  # the workers and multiprocessing's resource tracker exit with the main process
        alive = subprocess.run(["pgrep", "-a", "-s", str(p.pid)], capture_output=True, text=True).stdout.splitlines()
        if not alive:
            break
        time.sleep(0.5)
    assert alive == []
