#!/usr/bin/env bash
# The model path end to end (issue 10), after the Python package and the CMake package
# (build/ci-install) are installed: train a small model with `trix train`, `trix export` it, then
# require the same greedy text from `trix generate` (torch), trix_generate (C++, on the PATH),
# trix.Model (Python, no torch) and examples/generate built against the installed package.
# Checkpoints of `trix validate --quick` (build/ci-validate), when present, go through the same check.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/ci-model
rm -rf "$B"
mkdir -p "$B"
PROMPT="The "
N=200

cmake -S examples/generate -B "$B/app" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/ci-install" >/dev/null
cmake --build "$B/app" >/dev/null
command -v trix_generate >/dev/null || { echo "trix_generate is not on the PATH after pip install ." >&2; exit 1; }
trix_generate --help | head -1

same_text() {  # CKPT NAME
  local ckpt=$1 name=$2 model="$B/$2.trixm"
  python3 -m trix export "$ckpt" -o "$model" >/dev/null
  if [ "$(python3 -c 'import sys, trix; print(trix.Model.load(sys.argv[1]).config["routing"])' "$model")" = random ]; then
    echo "model $name: random routing draws differ between engines by design (docs/model_format.md); exported and loaded only"
    return
  fi
  local torch_text cpp_text py_text app_text
  torch_text=$(python3 -m trix generate "$ckpt" --prompt "$PROMPT" -n $N --temperature 0)
  cpp_text=$(trix_generate "$model" --prompt "$PROMPT" -n $N --temperature 0)
  py_text=$(python3 -c 'import sys, trix; print(trix.Model.load(sys.argv[1]).generate(sys.argv[2], int(sys.argv[3]), temperature=0))' \
    "$model" "$PROMPT" $N)
  app_text=$("$B/app/trix_example_generate" "$model" "$PROMPT" $N)
  for other in "$cpp_text" "$py_text" "$app_text"; do
    if [ "$other" != "$torch_text" ]; then
      printf 'model %s: greedy text differs\ntorch:\n%s\nother:\n%s\n' "$name" "$torch_text" "$other" >&2
      exit 1
    fi
  done
  echo "model $name: identical greedy text from trix generate, trix_generate, trix.Model and the example app"
}

# A small model on the README as data: every front end must give the same greedy text.
python3 -m trix train --data README.md --iters 30 --out "$B/train" --no-progress --ffn sparse --routing emergent \
  --config <(echo '{"model": {"block_size": 32, "n_layer": 2, "n_head": 2, "d_model": 32, "tiles": 4}, "eval_interval": 1000, "final_eval_batches": 2}') >/dev/null
same_text "$B/train/ckpt.pt" train-sparse-emergent
trix_generate "$B/train-sparse-emergent.trixm" --bench --pp 64 --tg 16 --reps 1 | tail -3

if [ -d build/ci-validate/models ]; then
  # One checkpoint per distinct (ffn, routing, train_mode, hierarchy wrapper) of the study: bounded time.
  python3 - > "$B/validate.txt" <<'PY'
import glob, torch
seen = set()
for ck in sorted(glob.glob("build/ci-validate/models/*/ckpt.pt")):
    m = torch.load(ck, map_location="cpu", weights_only=False)["model_config"]
    key = (m.get("ffn"), m.get("routing"), m.get("train_mode"), m.get("hier_wrapper"))
    if key not in seen:
        seen.add(key)
        print(ck)
PY
  while read -r ck; do
    same_text "$ck" "validate-$(basename "$(dirname "$ck")")"
  done < "$B/validate.txt"
fi
