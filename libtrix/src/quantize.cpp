#include "trix/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "trix/error.h"

namespace trix {

int64_t quant_scale_count(int64_t rows, const QuantParams& p) {
  return p.rule == QuantRule::absmean && p.per_row ? rows : 1;
}

namespace {
// Round half to even, clip to [-1, 1]: the rule torch.round(w / gamma).clamp(-1, 1) applies.
// For finite v that is (v > 0.5) - (v < -0.5): ties at +-0.5 round to the even 0. Comparisons, not
// std::nearbyint, which is a library call at the x86-64 baseline (no SSE4.1 roundss).
inline int8_t ternary_of(float v) {
  return static_cast<int8_t>((v > 0.5f) - (v < -0.5f));
}

float absmean(const float* w, int64_t n) {
  double s = 0.0;  // double: the mean of a large matrix must not depend on summation luck
  for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(w[i]));
  const float g = n > 0 ? static_cast<float>(s / static_cast<double>(n)) : 0.0f;
  return std::max(g, kAbsmeanEps);
}
}  // namespace

void quantize_ternary(const float* w, int64_t rows, int64_t cols, const QuantParams& p, int8_t* q,
                      float* scales) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, "quantize_ternary", "w", "must have a non-negative shape, got [",
                 rows, ", ", cols, "]");
  const int64_t total = rows * cols;
  for (int64_t i = 0; i < total; ++i)
    TRIX_CHECK_ARG(std::isfinite(w[i]), "quantize_ternary", "w", "must be finite, got ", w[i], " at [",
                   i / std::max<int64_t>(cols, 1), ", ", i % std::max<int64_t>(cols, 1), "]");
  if (p.rule == QuantRule::threshold) {
    TRIX_CHECK_ARG(p.threshold >= 0.0f && std::isfinite(p.threshold), "quantize_ternary", "threshold",
                   "must be a finite number >= 0, got ", p.threshold);
    for (int64_t i = 0; i < total; ++i) q[i] = w[i] > p.threshold ? 1 : (w[i] < -p.threshold ? -1 : 0);
    scales[0] = 1.0f;
    return;
  }
  if (p.per_row) {
    for (int64_t r = 0; r < rows; ++r) {
      const float g = absmean(w + r * cols, cols);
      for (int64_t c = 0; c < cols; ++c) q[r * cols + c] = ternary_of(w[r * cols + c] / g);
      scales[r] = g;
    }
    return;
  }
  const float g = absmean(w, total);
  for (int64_t i = 0; i < total; ++i) q[i] = ternary_of(w[i] / g);
  scales[0] = g;
}

PackedTernary pack_float(const float* w, int64_t rows, int64_t cols, const QuantParams& p) {
  PackedTernary out;
  out.rows = rows;
  out.cols = cols;
  std::vector<int8_t> q(static_cast<size_t>(std::max<int64_t>(rows * cols, 0)));
  out.scales.resize(static_cast<size_t>(quant_scale_count(rows, p)));
  quantize_ternary(w, rows, cols, p, q.data(), out.scales.data());
  out.data.resize(static_cast<size_t>(rows * packed_row_bytes(cols)));
  pack_int8(q.data(), rows, cols, out.data.data());
  return out;
}

void quantize_activations(const float* x, int64_t n, int64_t k, int8_t* xq, float* xscale) {
  TRIX_CHECK_ARG(n >= 0 && k >= 0, "quantize_activations", "x", "must have a non-negative shape");
  const kernels::Kernels& kern = kernels::active();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    const uint32_t bits = kern.absmax_bits(xi, k);
    if (bits >= 0x7F800000u)  // some entry is infinite or NaN: find the first for the message
      for (int64_t c = 0; c < k; ++c)
        TRIX_CHECK_ARG(std::isfinite(xi[c]), "quantize_activations", "x", "must be finite, got ", xi[c], " at [",
                       i, ", ", c, "]");
    float amax;
    std::memcpy(&amax, &bits, sizeof amax);
    amax = std::max(amax, kActivationEps);
    kern.quantize_i8(xi, k, 127.0f / amax, xq + i * k);
    xscale[i] = amax / 127.0f;
  }
}

}  // namespace trix
