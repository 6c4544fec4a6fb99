#!/usr/bin/env bash
# The Triton kernels (python/trix/triton) on CPU tensors under Triton's interpreter: installs the
# triton that matches the installed torch and runs the tests marked `triton`. The plain pytest step
# skips those tests (no GPU, no TRITON_INTERPRET), so they run once, here. Expects trix installed.
# Usage: bash .ci/triton.sh            (about 1 minute of tests on 2 idle cores, plus the download)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# torch's CUDA wheels name their triton (torch 2.13.0: Requires-Dist triton==3.7.1); the CPU wheel
# names none, so the pin below is the one torch==2.13.0's CUDA wheel declares.
PIN=$("$PY" - <<'PYEOF'
import importlib.metadata as m
reqs = [r.split(";")[0].replace(" ", "") for r in (m.requires("torch") or []) if r.startswith("triton")]
print(reqs[0] if reqs else "")
PYEOF
)
PIN=${PIN:-triton==3.7.1}
# --no-deps: pip must never resolve (and replace) torch.
"$PY" -m pip install -q --no-deps "$PIN"
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

cd tests_py
TRITON_INTERPRET=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider -m triton .
