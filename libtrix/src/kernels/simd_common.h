// Small helpers shared by the SIMD kernel files. Internal linkage only: each kernel file gets its
// own copy compiled with its own flags.
#pragma once
#include <cstdint>

namespace trix::kernels {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// dst[0..kp) = src[0..k) followed by zeros.
inline void pad_copy(const float* src, int64_t k, int64_t kp, float* dst) {
  for (int64_t j = 0; j < k; ++j) dst[j] = src[j];
  for (int64_t j = k; j < kp; ++j) dst[j] = 0.0f;
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

}  // namespace
}  // namespace trix::kernels
