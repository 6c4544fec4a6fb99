"""Two-thread scaling of the int8 products, robust to a shared machine.

Runs `trix_bench --threads 1,2` several times (each run times one thread and two threads back to back,
so both see the same machine state), and reports per shape and batch the median over runs of the
speedup of the median call and of the fastest call, with their ranges. A single run can be spoiled by
a vCPU the host takes away; the median over runs is the figure to quote.

    python tools/thread_scaling.py --bench build/dev/tools/trix_bench --runs 9 [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def one_run(bench, shapes, ns, level):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.json")
        subprocess.run([bench, "--shapes", shapes, "--n", ns, "--threads", "1,2", "--levels", level, "--ops", "int8",
                        "--cold-mib", "0", "--json", path], check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return json.load(f)


PREFERRED = ("avx512_vnni", "avx512", "avx2", "neon_dotprod", "neon", "scalar")


def best_level(bench):
    """The first level of PREFERRED that this CPU and build run (trix_bench refuses the others)."""
    for level in PREFERRED:
        probe = subprocess.run([bench, "--shapes", "64x128", "--n", "1", "--threads", "1", "--levels", level,
                                "--ops", "int8", "--min-ms", "1", "--cold-mib", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            return level
    raise SystemExit(f"{bench} runs none of the levels {', '.join(PREFERRED)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="path of the trix_bench binary")
    ap.add_argument("--runs", type=int, default=9, help="trix_bench runs (default 9)")
    ap.add_argument("--shapes", default="4096x4096", help="as trix_bench --shapes (default 4096x4096)")
    ap.add_argument("--n", default="1,64", help="as trix_bench --n (default 1,64)")
    ap.add_argument("--level", help="one SIMD level (default: the best this CPU runs)")
    ap.add_argument("--json", help="also write the per-run speedups here")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error(f"argument --runs must be >= 1, got {a.runs}")
    if a.level is None:
        a.level = best_level(a.bench)
        print(f"level {a.level}")
    speedups = {}
    for _ in range(a.runs):
        rows = one_run(a.bench, a.shapes, a.n, a.level)
        by = {(r["m"], r["k"], r["n"], r["threads"]): r for r in rows if r["level"] == a.level}
        for (m, k, n, t), r in by.items():
            two = by.get((m, k, n, 2))
            if t == 1 and two is not None:
                s = speedups.setdefault(f"{m}x{k} N={n}", {"median": [], "fastest": []})
                s["median"].append(r["median_us"] / two["median_us"])
                s["fastest"].append(r["min_us"] / two["min_us"])
    for key, s in speedups.items():
        med, fast = s["median"], s["fastest"]
        print(f"{key}: {len(med)} runs; two threads vs one, median call {statistics.median(med):.2f}x "
              f"({min(med):.2f}-{max(med):.2f}), fastest call {statistics.median(fast):.2f}x "
              f"({min(fast):.2f}-{max(fast):.2f})")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"level": a.level, "runs": a.runs, "speedups": speedups}, f, indent=1)
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
