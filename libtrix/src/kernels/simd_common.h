// Small helpers shared by the SIMD kernel files. Internal linkage only: each kernel file gets its
// own copy compiled with its own flags.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.h"

namespace trix::kernels {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// dst[0..kp) = src[0..k) followed by zeros.
inline void pad_copy(const float* src, int64_t k, int64_t kp, float* dst) {
  for (int64_t j = 0; j < k; ++j) dst[j] = src[j];
  for (int64_t j = k; j < kp; ++j) dst[j] = 0.0f;
}

// The blocking every GEMM driver shares: output rows [m0, m1) in chunks of 16 (their weights stay in L1
// while all activation rows pass), activation rows in groups of up to Cmax, Rmax output rows per
// micro-kernel call and one for the tail: micro(std::integral_constant<int, R>, C, m, i).
template <int Cmax, typename Micro, int Rmax = 4>
inline void for_each_block(int64_t n, int64_t m0, int64_t m1, Micro micro) {
  constexpr int64_t kRowChunk = 16;
  static_assert(kRowChunk % Rmax == 0, "row chunks hold whole micro-kernel row groups");
  for (int64_t mc = m0; mc < m1; mc += kRowChunk) {
    const int64_t me = imin(m1, mc + kRowChunk);
    for (int64_t i = 0; i < n; i += Cmax) {
      const int C = static_cast<int>(imin(Cmax, n - i));
      int64_t m = mc;
      for (; m + Rmax <= me; m += Rmax) micro(std::integral_constant<int, Rmax>{}, C, m, i);
      for (; m < me; ++m) micro(std::integral_constant<int, 1>{}, C, m, i);
    }
  }
}

// xr[0..kp) = x[0..k) followed by zeros; returns sum(x), the correction for codes w + 1.
inline int32_t pad_copy_i8(const int8_t* x, int64_t k, int64_t kp, int8_t* xr) {
  int32_t sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    xr[j] = x[j];
    sum += x[j];
  }
  for (int64_t j = k; j < kp; ++j) xr[j] = 0;
  return sum;
}

// max(r, the bit pattern of |x[c]|) over c0 <= c < k: the scalar tail of absmax_bits.
inline uint32_t absmax_bits_tail(const float* x, int64_t c0, int64_t k, uint32_t r) {
  for (int64_t c = c0; c < k; ++c) {
    uint32_t b;
    __builtin_memcpy(&b, x + c, sizeof b);
    b &= 0x7FFFFFFFu;
    r = b > r ? b : r;
  }
  return r;
}

// The SIMD quantizers' scalar tails: the clamp of a value already rounded half to even (the rule of
// the scalar reference, kernels/scalar.cpp).
inline int8_t clamp_i8(int32_t r) { return static_cast<int8_t>(r < -128 ? -128 : (r > 127 ? 127 : r)); }

// rescale_i32 for the entries j..n-1 past a level's last full vector.
inline void rescale_tail(const int32_t* acc, int64_t j, int64_t n, float s, const float* sc, float* y) {
  for (; j < n; ++j) y[j] = static_cast<float>(acc[j]) * s * sc[j];
}

// gemm_i8 from a level's two steps: its activation layout in this thread's scratch, then the product.
template <typename RowBytes, typename Prep, typename GemmPrep>
inline void gemm_i8_two_step(RowBytes row_bytes, Prep prep, GemmPrep gemm, const int8_t* xq, int64_t n, int64_t k,
                             const uint8_t* w, int64_t m0, int64_t m1, int32_t* acc, int64_t ldy) {
  int8_t* xr = static_cast<int8_t*>(scratch(0, static_cast<size_t>(n * row_bytes(k))));
  int32_t* sums = static_cast<int32_t*>(scratch(1, static_cast<size_t>(n) * sizeof(int32_t)));
  prep(xq, n, k, xr, sums);
  gemm(xr, sums, n, k, w, m0, m1, acc, ldy);
}

}  // namespace
}  // namespace trix::kernels
