#include "trix/ffn.h"

#include <cmath>
#include <vector>

#include "contracts.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "lut_gemm.h"
#include "trix/error.h"

namespace trix {

float activate(Activation a, float v) {
  switch (a) {
    case Activation::identity: return v;
    case Activation::relu: return v > 0.0f ? v : 0.0f;
    case Activation::gelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case Activation::silu: return v / (1.0f + std::exp(-v));
  }
  return v;
}

void check_ffn(const TiledFFN& f, const char* func) {
  check_view(f.up, func, "up");
  check_view(f.down, func, "down");
  TRIX_CHECK_ARG(f.tiles > 0, func, "tiles", "must be positive, got ", f.tiles);
  TRIX_CHECK_ARG(f.up.rows % f.tiles == 0, func, "up", "must have a multiple of tiles (", f.tiles,
                 ") rows, got ", f.up.rows);
  TRIX_CHECK_ARG(f.down.rows == f.tiles * f.up.cols, func, "down", "must have tiles * d = ",
                 f.tiles * f.up.cols, " rows, got ", f.down.rows);
  TRIX_CHECK_ARG(f.down.cols == f.hidden(), func, "down", "must have h = ", f.hidden(),
                 " columns (up rows / tiles), got ", f.down.cols);
}

void tiled_ffn(const float* x, int64_t n, const TiledFFN& f, Activation act, const int32_t* tile_idx,
               const float* gates, int64_t k, float* y, float* hidden_pre) {
  detail::tiled_ffn_lut(x, n, f, act, tile_idx, gates, k, y, hidden_pre, nullptr, nullptr);
}

namespace detail {

void tiled_ffn_lut(const float* x, int64_t n, const TiledFFN& f, Activation act, const int32_t* tile_idx,
                   const float* gates, int64_t k, float* y, float* hidden_pre, const uint8_t* up_lut,
                   const uint8_t* down_lut) {
  check_ffn(f, "tiled_ffn");
  TRIX_CHECK_ARG(n >= 0, "tiled_ffn", "x", "must have a non-negative row count, got ", n);
  TRIX_CHECK_ARG(k >= 1, "tiled_ffn", "tile_idx", "must have at least one slot per row, got ", k);
  const int64_t T = f.tiles, h = f.hidden(), d = f.dim();
  const size_t yb = detail::bytes_of(n * d, sizeof(float)), hb = detail::bytes_of(n * k * h, sizeof(float));
  detail::check_no_overlap("tiled_ffn", "out", y, yb, "x", x, yb);
  detail::check_no_overlap("tiled_ffn", "hidden_pre", hidden_pre, hb, "x", x, yb);
  detail::check_no_overlap("tiled_ffn", "hidden_pre", hidden_pre, hb, "out", y, yb);
  for (int64_t s = 0; s < n * k; ++s)
    TRIX_CHECK_ARG(tile_idx[s] >= -1 && tile_idx[s] < T, "tiled_ffn", "tile_idx", "must hold tile ids in [0, ",
                   T, ") or -1, got ", tile_idx[s], " at [", s / k, ", ", s % k, "]");

  // Group the (row, slot) pairs by tile with a counting sort: tile t's pairs are
  // order[offset[t] .. offset[t+1]), in increasing (row, slot) order.
  std::vector<int64_t> offset(static_cast<size_t>(T + 1), 0), order;
  for (int64_t s = 0; s < n * k; ++s)
    if (tile_idx[s] >= 0) ++offset[tile_idx[s] + 1];
  for (int64_t t = 0; t < T; ++t) offset[t + 1] += offset[t];
  order.resize(static_cast<size_t>(offset[T]));
  {
    std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
    for (int64_t s = 0; s < n * k; ++s)
      if (tile_idx[s] >= 0) order[fill[tile_idx[s]]++] = s;
  }

  // Per-slot outputs, reduced afterwards in slot order so the sum never depends on grouping.
  std::vector<float> slot_out(static_cast<size_t>(n * k * d), 0.0f);
  if (hidden_pre) std::fill(hidden_pre, hidden_pre + n * k * h, 0.0f);
  const kernels::Kernels& kern = kernels::active();
  const bool lut = up_lut && down_lut && lut_available() && h % kernels::kLutRows == 0 && d % kernels::kLutRows == 0;
  std::vector<float> xt, ht, zt;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t cnt = offset[t + 1] - offset[t];
    if (cnt == 0) continue;
    xt.resize(static_cast<size_t>(cnt * d));
    ht.resize(static_cast<size_t>(cnt * h));
    zt.resize(static_cast<size_t>(cnt * d));
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t row = order[offset[t] + j] / k;
      std::copy(x + row * d, x + row * d + d, xt.begin() + j * d);
    }
    if (lut)
      lut_gemm(xt.data(), cnt, d, up_lut, t * h, (t + 1) * h, ht.data(), h);
    else
      kernels::par_gemm_f32(kern, xt.data(), cnt, d, f.up.data, t * h, (t + 1) * h, ht.data(), h);
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t s = order[offset[t] + j];
      for (int64_t r = 0; r < h; ++r) {
        float& v = ht[j * h + r];
        v *= f.up.scale(t * h + r);
        if (hidden_pre) hidden_pre[s * h + r] = v;
        v = activate(act, v);
      }
    }
    if (lut)
      lut_gemm(ht.data(), cnt, h, down_lut, t * d, (t + 1) * d, zt.data(), d);
    else
      kernels::par_gemm_f32(kern, ht.data(), cnt, h, f.down.data, t * d, (t + 1) * d, zt.data(), d);
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t s = order[offset[t] + j];
      for (int64_t c = 0; c < d; ++c) slot_out[s * d + c] = zt[j * d + c] * f.down.scale(t * d + c);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    float* yi = y + i * d;
    std::fill(yi, yi + d, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t s = i * k + j;
      if (tile_idx[s] < 0) continue;
      const float g = gates ? gates[s] : 1.0f;
      for (int64_t c = 0; c < d; ++c) yi[c] += g * slot_out[s * d + c];
    }
  }
}

}  // namespace detail

}  // namespace trix
