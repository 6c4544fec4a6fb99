#include <algorithm>
#include <cmath>
#include <vector>

#include "train_common.h"
#include "trix/error.h"
#include "trix/threads.h"

namespace trix {
namespace train_detail {

void check_codes(const TernaryCodes& w, const char* func, const char* name, int64_t rows, int64_t cols) {
  TRIX_CHECK_ARG(w.rows >= 0 && w.cols >= 0, func, name, "must have a non-negative shape, got [", w.rows, ", ",
                 w.cols, "]");
  TRIX_CHECK_ARG(rows < 0 || w.rows == rows, func, name, "must have ", rows, " rows, got ", w.rows);
  TRIX_CHECK_ARG(cols < 0 || w.cols == cols, func, name, "must have ", cols, " columns, got ", w.cols);
  TRIX_CHECK_ARG(w.n_scales == 1 || w.n_scales == w.rows, func, name, "must have 1 or rows = ", w.rows,
                 " scales, got ", w.n_scales);
  TRIX_CHECK_ARG(w.q != nullptr || w.rows * w.cols == 0, func, name, "must have codes, got a null pointer");
  TRIX_CHECK_ARG(w.scales != nullptr, func, name, "must have scales, got a null pointer");
  for (int64_t i = 0; i < w.rows * w.cols; ++i)
    TRIX_CHECK_ARG(w.q[i] >= -1 && w.q[i] <= 1, func, name, "must hold codes in {-1, 0, 1}, got ",
                   static_cast<int>(w.q[i]), " at [", i / w.cols, ", ", i % w.cols, "]");
}

float* scratch(ScratchSlot slot, int64_t n) {
  thread_local std::vector<float> bufs[kScratchCount];
  std::vector<float>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

void decode_rows(const TernaryCodes& w, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    const float s = w.scale(r);
    const int8_t* q = w.q + r * w.cols;
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) o[c] = s * static_cast<float>(q[c]);
  }
}

void decode_rows_t(const TernaryCodes& w, int64_t r0, int64_t r1, float* out) {
  // Sixteen rows at a time, so each write fills a cache line instead of touching one per element.
  constexpr int64_t kRows = 16;
  const int64_t m = r1 - r0;
  for (int64_t rb = r0; rb < r1; rb += kRows) {
    const int64_t re = std::min(r1, rb + kRows);
    float s[kRows];
    for (int64_t r = rb; r < re; ++r) s[r - rb] = w.scale(r);
    for (int64_t c = 0; c < w.cols; ++c) {
      float* o = out + c * m + (rb - r0);
      for (int64_t r = rb; r < re; ++r) o[r - rb] = s[r - rb] * static_cast<float>(w.q[r * w.cols + c]);
    }
  }
}

}  // namespace train_detail

using namespace train_detail;

void linear_forward(const float* x, int64_t n, const TernaryCodes& w, float* y) {
  check_codes(w, "linear_forward", "w", -1, -1);
  TRIX_CHECK_ARG(n >= 0, "linear_forward", "x", "must have a non-negative row count, got ", n);
  const int64_t m = w.rows, k = w.cols;
  if (n == 0 || m == 0) return;
  float* wt = scratch(kScratchUp, m * k);
  decode_rows_t(w, 0, m, wt);  // [K, M]: B(p, j) = W[j, p]
  train_gemm_parallel(n, m, k, x, k, 1, wt, m, 1, y, m, false);
}

void linear_backward(const float* g, const float* x, int64_t n, const TernaryCodes& w, float* dx, float* dw) {
  check_codes(w, "linear_backward", "w", -1, -1);
  TRIX_CHECK_ARG(n >= 0, "linear_backward", "g", "must have a non-negative row count, got ", n);
  const int64_t m = w.rows, k = w.cols;
  if (dx != nullptr && n > 0 && k > 0) {
    float* wd = scratch(kScratchUp, m * k);
    decode_rows(w, 0, m, wd);
    train_gemm_parallel(n, k, m, g, m, 1, wd, k, 1, dx, k, false);
  }
  // dw[r, c] = sum_i g[i, r] * x[i, c]: A = g^T (rows r, depth i), B = x.
  if (dw != nullptr && m > 0 && k > 0) train_gemm_parallel(m, k, n, g, 1, m, x, k, 1, dw, k, false);
}

Activation parse_activation(const std::string& name, const char* func) {
  if (name == "identity") return Activation::identity;
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  if (name == "silu") return Activation::silu;
  throw_invalid(func, "activation", "must be one of identity, relu, gelu, silu; got '" + name + "'");
}

void tile_signatures_codes(const int8_t* q, int64_t rows, int64_t cols, int64_t tiles, int8_t* sig) {
  TRIX_CHECK_ARG(tiles > 0 && rows % tiles == 0, "tile_signatures_codes", "tiles",
                 "must be positive and divide the row count ", rows, ", got ", tiles);
  const int64_t h = rows / tiles;
  std::vector<int32_t> sum(static_cast<size_t>(cols));
  for (int64_t t = 0; t < tiles; ++t) {
    std::fill(sum.begin(), sum.end(), 0);
    for (int64_t r = t * h; r < (t + 1) * h; ++r)
      for (int64_t c = 0; c < cols; ++c) sum[c] += q[r * cols + c];
    for (int64_t c = 0; c < cols; ++c) sig[t * cols + c] = static_cast<int8_t>((sum[c] > 0) - (sum[c] < 0));
  }
}

}  // namespace trix
