// Internal kernel table: one instance per instruction set (kernels/<isa>.cpp), chosen at run time.
// Kernels see raw packed rows in the public format and compute unscaled products; the public
// functions in src/*.cpp check arguments, split work and apply scales.
#pragma once
#include <cstddef>
#include <cstdint>

#include "trix/cpu.h"

namespace trix::kernels {

struct Kernels {
  const char* name;
  // y[i*ldy + (m - m0)] = sum_c x[i*k + c] * W[m, c]   for i < n, m0 <= m < m1 (unscaled float product)
  void (*gemm_f32)(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
                   float* y, int64_t ldy);
  // dx[i*k + c] = sum_{m < mrows} g[i*mrows + m] * W[m, c]   for i < n, c0 <= c < c1
  // (g already multiplied by the row scales; c0 and c1 are multiples of kBlockWeights or c1 = k)
  void (*gemm_t_f32)(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0,
                     int64_t c1, float* dx);
  // acc[i*ldy + (m - m0)] = sum_c xq[i*k + c] * W[m, c]   exact in int32
  void (*gemm_i8)(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
                  int32_t* acc, int64_t ldy);
};

const Kernels& scalar();
// The kernels in use: the best this CPU supports, or the level chosen by TRIX_SIMD / set_simd_level.
const Kernels& active();
// The table for a level, or nullptr when this build has none (it may still not run on this CPU:
// see simd_level_supported).
const Kernels* for_level(SimdLevel level);

// One table per instruction set, each in its own file compiled with that ISA's flags only.
const Kernels& avx2();
const Kernels& avx512();
const Kernels& avx512_vnni();
const Kernels& neon();
const Kernels& neon_dotprod();

// A per-thread, 64-byte aligned scratch buffer of at least `bytes` (valid until the next call with
// the same slot on this thread). Kernels use it for padded / reordered activations.
constexpr int kScratchSlots = 2;
void* scratch(int slot, size_t bytes);

}  // namespace trix::kernels
