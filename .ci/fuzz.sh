#!/usr/bin/env bash
# libFuzzer targets (fuzz/fuzz_<name>.cpp) built with clang and -fsanitize=fuzzer,address,undefined
# against a libtrix built with the same sanitizers, each run for a bounded time on its seed corpus
# (fuzz/corpus/<name>/ plus freshly written seeds). Fails on any crash, sanitizer report, leak,
# timeout (10 s an input) or allocation over 2 GiB. FUZZ_SECONDS sets the whole fuzzing budget
# (default 150 s, split evenly, at most 60 s a target). Prints executions per target.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUDGET=${FUZZ_SECONDS:-150}

# clang and its libFuzzer/sanitizer runtimes (Debian: clang, libclang-rt-dev), installed if a test
# program does not build.
fuzzer_works() {
  command -v clang++ >/dev/null && echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer,address,undefined -o /tmp/trix-fuzz-probe - >/dev/null 2>&1
}
if ! fuzzer_works && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi
fuzzer_works || { echo "fuzz.sh: clang with libFuzzer is not available" >&2; exit 1; }
rm -f /tmp/trix-fuzz-probe

B=build/fuzz
cmake -S . -B "$B" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRIX_BUILD_FUZZ=ON \
  -DTRIX_BUILD_TESTS=OFF -DTRIX_BUILD_TOOLS=OFF >/dev/null
if ! cmake --build "$B" -j "$JOBS" >"$B/build.log" 2>&1; then cat "$B/build.log"; exit 1; fi

targets=()
for src in fuzz/fuzz_*.cpp; do n=$(basename "$src" .cpp); targets+=("${n#fuzz_}"); done
per=$(( BUDGET / ${#targets[@]} )); [ "$per" -gt 60 ] && per=60; [ "$per" -lt 5 ] && per=5

rm -rf "$B/work" "$B/artifacts"
mkdir -p "$B/work" "$B/artifacts"
for t in "${targets[@]}"; do
  mkdir -p "$B/work/$t"
  if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t/." "$B/work/$t/"; fi
done
"$B/fuzz/trix_fuzz_seeds" "$B/work"  # fresh seeds in the current format (same names)

status=0
summary=""
for t in "${targets[@]}"; do
  log="$B/artifacts/$t.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$B/fuzz/fuzz_$t" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$B/artifacts/$t-" "$B/work/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=$(printf '%-14s FAILED (exit %d) after %s executions; input and log in %s\n' "$t" "$rc" "$execs" "$B/artifacts")$'\n'
    tail -40 "$log"
  else
    summary+=$(printf '%-14s %9s executions in %d s, no crash\n' "$t" "$execs" "$per")$'\n'
  fi
done
printf '\nfuzz summary:\n%s' "$summary"
exit $status
