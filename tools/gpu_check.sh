#!/usr/bin/env bash
# On a machine with a CUDA GPU, in one command: install trix (and the triton torch names, if missing),
# run the triton-marked tests on the GPU (not the interpreter), the whole pytest suite, then
# tools/gpu_bench.py. Logs and gpu_bench.json go to OUT_DIR (default build/gpu-check).
# Usage: bash tools/gpu_check.sh [OUT_DIR]      (PYTHON=... to pick the interpreter)
# Exit status: non-zero if any of the three failed (each runs regardless of the others).
set -uo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "gpu_check.sh: unknown option '$1' (expected an output folder, or --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
OUT_DIR=${1:-build/gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
unset TRITON_INTERPRET TRIX_FORCE_TRITON
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 2
"$PY" -c "import triton" 2>/dev/null || "$PY" -m pip install -q --no-deps "triton==3.7.1" || exit 2
"$PY" -m pip install -q nanobind scikit-build-core cmake ninja && "$PY" -m pip install -q --no-build-isolation --no-deps . || exit 2
status=0
(cd tests_py && "$PY" -m pytest -q -p no:cacheprovider -m triton .) 2>&1 | tee "$OUT_DIR/pytest_triton.txt" || status=1
(cd tests_py && "$PY" -m pytest -q -p no:cacheprovider .) 2>&1 | tee "$OUT_DIR/pytest_all.txt" || status=1
"$PY" tools/gpu_bench.py --out "$OUT_DIR/gpu_bench.json" 2>&1 | tee "$OUT_DIR/gpu_bench.md" || status=1
exit $status
