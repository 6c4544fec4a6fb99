// Row-parallel wrappers over the active kernels, used by matmul, tiled_ffn and route (baseline code
// only). Each output row is computed by one thread with the same instructions whatever the split,
// so results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"
#include "trix/threads.h"

namespace trix::kernels {

// Rows per chunk: a multiple of 16 (the kernels' row blocking) with at least ~256K weight-ops, so
// small products stay on the calling thread.
inline int64_t row_grain(int64_t n, int64_t k) {
  const int64_t per_row = std::max<int64_t>(1, n * k);
  const int64_t rows = (int64_t{1} << 18) / per_row + 1;
  return (rows + 15) / 16 * 16;
}

// y[i*ldy + (m - m0)] for m in [m0, m1), as Kernels::gemm_f32.
inline void par_gemm_f32(const Kernels& kern, const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                         int64_t m1, float* y, int64_t ldy) {
  parallel_for(m1 - m0, row_grain(n, k), [&](int64_t b, int64_t e) {
    kern.gemm_f32(x, n, k, w, m0 + b, m0 + e, y + b, ldy);
  });
}

inline void par_gemm_i8(const Kernels& kern, const int8_t* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                        int64_t m1, int32_t* acc, int64_t ldy) {
  parallel_for(m1 - m0, row_grain(n, k), [&](int64_t b, int64_t e) {
    kern.gemm_i8(x, n, k, w, m0 + b, m0 + e, acc + b, ldy);
  });
}

}  // namespace trix::kernels
