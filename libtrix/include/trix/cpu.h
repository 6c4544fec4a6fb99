// Instruction-set levels and run-time dispatch. The CPU is probed once (cpuid plus xgetbv for the
// OS-saved registers on x86, getauxval on AArch64); the best level it supports is used unless the
// environment variable TRIX_SIMD or set_simd_level() picks another. Levels:
//   scalar        plain C++, every CPU (the reference the others are tested against)
//   avx2          x86-64 AVX2 + FMA
//   avx512        x86-64 AVX-512 F/BW/VL, int8 dot products through vpmaddubsw
//   avx512_vnni   the same plus AVX512_VNNI (vpdpbusd)
//   neon          AArch64 Advanced SIMD
//   neon_dotprod  AArch64 with the dot-product extension (sdot)
// Integer results (matmul_i8*) are identical at every level; float results differ only by the order
// of additions (see docs/benchmarks.md for the tolerance the tests use).
#pragma once
#include <string>
#include <vector>

namespace trix {

enum class SimdLevel { scalar, avx2, avx512, avx512_vnni, neon, neon_dotprod };

// "scalar", "avx2", ... as listed above.
const char* simd_level_name(SimdLevel level);
// The inverse of simd_level_name; throws std::invalid_argument for an unknown name.
SimdLevel parse_simd_level(const std::string& name);

// True when this build has kernels for `level` and this CPU (and OS) can run them.
bool simd_level_supported(SimdLevel level);
// Every supported level, scalar first, best last.
std::vector<SimdLevel> available_simd_levels();
// The best supported level (what is used when nothing else is asked for).
SimdLevel best_simd_level();

// The level in use. On first use it is TRIX_SIMD if set (an unknown or unsupported value is
// reported once on stderr and the best level is used), else the best level.
SimdLevel simd_level();
// Switches every later call to `level`; throws std::invalid_argument if it is not supported.
// Not meant to be called while other threads are inside libtrix.
void set_simd_level(SimdLevel level);

}  // namespace trix
