// Internal kernel table: one instance per instruction set (kernels/<isa>.cpp), chosen at run time.
// Kernels see raw packed rows in the public format and compute unscaled products; the public
// functions in src/*.cpp check arguments, split work and apply scales.
#pragma once
#include <cstdint>

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

}  // namespace trix::kernels
