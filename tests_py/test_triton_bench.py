"""tools/gpu_bench.py at toy sizes under the interpreter (or on the GPU): its correctness checks and
bookkeeping run, so the script a GPU session will run is not stale. Nothing is timed here."""
import importlib.util
from pathlib import Path

import pytest

from triton_env import DEVICE

pytestmark = pytest.mark.triton

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "gpu_bench.py"


def load_bench():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT.name} is not beside the tests (installed package without the source tree)")
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def count_calls(fn):
    fn()
    return 1.0


def test_gpu_bench_runs_its_checks_at_toy_sizes():
    bench = load_bench()
    rows = bench.packed_products([(40, 130)], [1, 3], DEVICE, count_calls)
    assert [(r["shape"], r["batch"]) for r in rows] == [("40x130", 1), ("40x130", 3)]
    assert all(r["packed_weight_bytes"] == 40 * 64 and r["rel_err"] < 1e-2 for r in rows)
    ffn = bench.tiled_ffn_step(24, 16, 2, 2, DEVICE, count_calls)
    assert ffn["hidden_per_tile"] == 16 and ffn["trix_packed_weight_bytes"] == 2 * 16 * 32 + 2 * 16 * 32
    assert ffn["dense_bf16_weight_bytes"] == 2 * 2 * 32 * 16 and ffn["rel_err"] < 1e-4
    sweep = bench.gemv_block_sweep(40, 130, DEVICE, count_calls, weight_rows=(16, 32))
    assert sorted(sweep) == [16, 32]
