#!/usr/bin/env bash
# Cross-builds libtrix and its googletest suite for AArch64 and runs the suite under qemu-aarch64
# twice: on a CPU with the dot-product extension (level neon_dotprod) and on one without (neon).
# TRIX_EXPECT_LEVEL makes the suite fail if the best level detected is not the intended one.
# Usage: bash .ci/neon.sh [build-dir]   (default build-neon). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-neon}
SYSROOT=/usr/aarch64-linux-gnu

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -f /usr/src/googletest/CMakeLists.txt ] || need+=(googletest)
command -v ninja >/dev/null || need+=(ninja-build)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

TOOLCHAIN=$PWD/cmake/toolchain-aarch64.cmake
JOBS=${TRIX_JOBS:-2}

# googletest from Debian's source package, cross-built into a private prefix.
GT_BUILD=$BUILD/googletest GT_PREFIX=$BUILD/googletest-install
cmake -S /usr/src/googletest -B "$GT_BUILD" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF -DCMAKE_INSTALL_PREFIX="$PWD/$GT_PREFIX" >/dev/null
cmake --build "$GT_BUILD" -j"$JOBS"
cmake --install "$GT_BUILD" >/dev/null

cmake -S . -B "$BUILD/trix" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" -DCMAKE_BUILD_TYPE=Release \
  -DTRIX_BUILD_TESTS=ON -DTRIX_BUILD_TOOLS=OFF -DTRIX_BUILD_PYTHON=OFF \
  -DCMAKE_PREFIX_PATH="$PWD/$GT_PREFIX" >/dev/null
cmake --build "$BUILD/trix" -j"$JOBS"

TESTS=$BUILD/trix/tests_cpp/trix_tests
file "$TESTS" | grep -q "ARM aarch64" || { echo "neon.sh: $TESTS is not an AArch64 binary" >&2; exit 1; }

run() {  # run <qemu cpu> <expected best level>
  echo "== qemu-aarch64 -cpu $1 (expecting $2)"
  TRIX_EXPECT_LEVEL=$2 qemu-aarch64 -cpu "$1" -L "$SYSROOT" "$TESTS" --gtest_brief=1
  # The expectation test must really have run (not been skipped).
  local out
  out=$(TRIX_EXPECT_LEVEL=$2 qemu-aarch64 -cpu "$1" -L "$SYSROOT" "$TESTS" --gtest_filter=Kernels.ExpectedBestLevel)
  grep -q "\[       OK \] Kernels.ExpectedBestLevel" <<<"$out" || { echo "$out"; exit 1; }
}
run max neon_dotprod
run cortex-a53 neon
echo "neon.sh: AArch64 suite passed with and without dotprod"
