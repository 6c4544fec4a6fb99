"""Shared set-up of the `triton`-marked tests (test_triton_*.py).

They run on a GPU, or on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 before the
kernels are imported: `TRITON_INTERPRET=1 python -m pytest -m triton tests_py`, as .ci/triton.sh does).
Anywhere else (no triton, or triton without a GPU and without the interpreter) the modules skip, so
the plain pytest run neither fails nor runs them a second time.
"""
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

INTERPRET = os.environ.get("TRITON_INTERPRET", "") == "1"
if not (INTERPRET or torch.cuda.is_available()):
    pytest.skip("Triton kernels need a GPU or TRITON_INTERPRET=1 (see .ci/triton.sh)", allow_module_level=True)

DEVICE = "cpu" if INTERPRET else "cuda"


def tol(dtype, scale: float) -> float:
    """Absolute tolerance for a product computed from inputs already in `dtype` and accumulated in
    float32, output rounded to `dtype`: a few units in the last place of the output's magnitude."""
    eps = {torch.float32: 2.0 ** -20, torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}[dtype]
    return 4 * eps * max(scale, 1.0)
