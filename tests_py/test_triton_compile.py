"""Every trix.triton kernel compiles for an H100/H200 (sm_90) through Triton's real GPU pipeline, to a
cubin, with no GPU (trix.triton.compile_check, in a process without the interpreter), and its bf16
products use tensor-core instructions. What the kernels compute is tested under the interpreter."""
import os
import subprocess
import sys

import pytest

import triton_env  # noqa: F401  (skips the module where the triton tests do not run)

pytestmark = pytest.mark.triton


def test_kernels_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRIX_FORCE_TRITON")}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # a real compile, not a cache hit
    r = subprocess.run([sys.executable, "-m", "trix.triton.compile_check", "--arch", "90"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 14 and all(line.startswith("ok ") for line in lines), r.stdout
    for line in lines:
        if "bf16" in line or "ffn" in line:
            assert "mma" in line, line
