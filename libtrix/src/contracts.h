// Checks at the API boundary that the kernels rely on and do not repeat (docs/format.md "Limits and
// rules"): outputs never overlap inputs, int8 products stay exact in int32. Not installed.
#pragma once
#include <cstddef>
#include <cstdint>

#include "trix/error.h"
#include "trix/matmul.h"

namespace trix::detail {

inline bool overlaps(const void* a, size_t na, const void* b, size_t nb) {
  if (a == nullptr || b == nullptr || na == 0 || nb == 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + nb && pb < pa + na;
}

// An output buffer that overlaps an input would be read after it was partly written, and the
// kernels of different SIMD levels write in different orders: refuse it on every level.
inline void check_no_overlap(const char* func, const char* out, const void* o, size_t out_bytes, const char* in,
                             const void* i, size_t in_bytes) {
  TRIX_CHECK_ARG(!overlaps(o, out_bytes, i, in_bytes), func, out, "must not overlap argument '", in,
                 "' (write the result to a separate buffer)");
}

inline size_t bytes_of(int64_t count, size_t each) { return count > 0 ? static_cast<size_t>(count) * each : 0; }

inline void check_i8_depth(const char* func, const char* arg, int64_t k) {
  TRIX_CHECK_ARG(k <= kMaxI8Depth, func, arg, "must have at most ", kMaxI8Depth,
                 " columns for an int8 product (the limit of exact int32 accumulation on every SIMD level), got ",
                 k);
}

}  // namespace trix::detail
