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

// int8 activations laid out once, on the calling thread (kernels::kSharedSlot), and read by every
// thread of the product; at levels without a separate layout step each call lays them out itself.
// One live instance per thread (the slot is reused).
class SharedI8 {
 public:
  SharedI8(const Kernels& kern, const int8_t* x, int64_t n, int64_t k) : kern_(kern), x_(x), n_(n), k_(k) {
    if (kern.prep_i8 == nullptr) return;
    const int64_t xs = kern.i8_row_bytes(k);
    auto* buf = static_cast<unsigned char*>(scratch(kSharedSlot, static_cast<size_t>(n * xs) + n * sizeof(int32_t)));
    xr_ = reinterpret_cast<int8_t*>(buf);
    sums_ = reinterpret_cast<int32_t*>(buf + n * xs);
    kern.prep_i8(x, n, k, xr_, sums_);
  }
  // acc[i*ldy + (m - m0)] for m in [m0, m1), as Kernels::gemm_i8.
  void gemm(const uint8_t* w, int64_t m0, int64_t m1, int32_t* acc, int64_t ldy) const {
    if (xr_ != nullptr) kern_.gemm_i8_prep(xr_, sums_, n_, k_, w, m0, m1, acc, ldy);
    else kern_.gemm_i8(x_, n_, k_, w, m0, m1, acc, ldy);
  }

 private:
  const Kernels& kern_;
  const int8_t* x_;
  int64_t n_, k_;
  int8_t* xr_ = nullptr;
  int32_t* sums_ = nullptr;
};

// Chunks per thread of the int8 products: their rows cost the same, so the extra chunks that let a
// thread take over a late one's work buy little, and each costs a hand-over (trix_bench --limits:
// +0.6 us at 2 chunks, +1.5 us at 4 on a 30 us region of two threads).
constexpr int kI8ChunksPerThread = 2;

inline void par_gemm_i8(const Kernels& kern, const int8_t* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                        int64_t m1, int32_t* acc, int64_t ldy) {
  const SharedI8 xs(kern, x, n, k);
  parallel_for(
      m1 - m0, row_grain(n, k), [&](int64_t b, int64_t e) { xs.gemm(w, m0 + b, m0 + e, acc + b, ldy); },
      kI8ChunksPerThread);
}

}  // namespace trix::kernels
