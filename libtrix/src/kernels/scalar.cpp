// The scalar reference: plain loops over decoded weights. It is the oracle every SIMD kernel is
// tested against, and the fallback on any CPU.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "trix/pack.h"

namespace trix::kernels {
namespace {

void gemm_f32(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1, float* y,
              int64_t ldy) {
  const int64_t rb = packed_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    for (int64_t m = m0; m < m1; ++m) {
      const uint8_t* row = w + m * rb;
      float acc = 0.0f;
      for (int64_t c = 0; c < k; ++c) {
        const int q = weight_at(row, c);
        if (q > 0) acc += xi[c];
        else if (q < 0) acc -= xi[c];
      }
      y[i * ldy + (m - m0)] = acc;
    }
  }
}

void gemm_t_f32(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0,
                int64_t c1, float* dx) {
  const int64_t rb = packed_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) {
    float* dxi = dx + i * k;
    for (int64_t c = c0; c < c1; ++c) dxi[c] = 0.0f;
    for (int64_t m = 0; m < mrows; ++m) {
      const float gm = g[i * mrows + m];
      const uint8_t* row = w + m * rb;
      for (int64_t c = c0; c < c1; ++c) {
        const int q = weight_at(row, c);
        if (q > 0) dxi[c] += gm;
        else if (q < 0) dxi[c] -= gm;
      }
    }
  }
}

void gemm_i8(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
             int32_t* acc, int64_t ldy) {
  const int64_t rb = packed_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) {
    const int8_t* xi = xq + i * k;
    for (int64_t m = m0; m < m1; ++m) {
      const uint8_t* row = w + m * rb;
      int32_t s = 0;
      for (int64_t c = 0; c < k; ++c) s += weight_at(row, c) * static_cast<int32_t>(xi[c]);
      acc[i * ldy + (m - m0)] = s;
    }
  }
}

uint32_t absmax_bits(const float* x, int64_t k) {
  uint32_t m = 0;
  for (int64_t c = 0; c < k; ++c) {
    uint32_t b;
    std::memcpy(&b, x + c, sizeof b);
    b &= 0x7FFFFFFFu;
    m = b > m ? b : m;
  }
  return m;
}

void quantize_i8(const float* x, int64_t k, float inv, int8_t* xq) {
  for (int64_t c = 0; c < k; ++c) {
    const float r = std::nearbyint(x[c] * inv);
    xq[c] = static_cast<int8_t>(r < -128.0f ? -128.0f : (r > 127.0f ? 127.0f : r));
  }
}

void rescale_i32(const int32_t* acc, int64_t n, float s, const float* sc, float* y) {
  for (int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(acc[j]) * s * sc[j];
}

}  // namespace

const Kernels& scalar() {
  static const Kernels k{"scalar", gemm_f32, gemm_t_f32, gemm_i8, nullptr, nullptr, nullptr,
                         absmax_bits, quantize_i8, rescale_i32, nullptr, nullptr};
  return k;
}

}  // namespace trix::kernels
