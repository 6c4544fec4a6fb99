// AArch64 NEON kernels, included by neon.cpp (TRIX_DOTPROD 0: smull + sadalp) and neon_dotprod.cpp
// (TRIX_DOTPROD 1: sdot). A 16-byte load is half of a weight block; vshr + vand by plane s gives
// 16 consecutive weights as codes 0..2, matched by 16 consecutive int8 / float activations.
// Internal linkage, no std:: templates (see avx512_body.h).
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/simd_common.h"
#include "trix/pack.h"

namespace trix::kernels {
namespace {

inline uint8x16_t plane(uint8x16_t w, int s) {
  const uint8x16_t three = vdupq_n_u8(3);
  switch (s) {
    case 0: return vandq_u8(w, three);
    case 1: return vandq_u8(vshrq_n_u8(w, 2), three);
    case 2: return vandq_u8(vshrq_n_u8(w, 4), three);
    default: return vshrq_n_u8(w, 6);
  }
}

// ---------------------------------------------------------------- int8 activations (exact)

#if TRIX_DOTPROD
// sdot: four products summed into each int32 lane, exact.
using Partial = int32x4_t;
constexpr int64_t kFlush = 1 << 20;  // never needed: the partial sums are already int32
inline Partial partial_zero() { return vdupq_n_s32(0); }
inline Partial dot_u8s8(Partial acc, uint8x16_t u, int8x16_t x) { return vdotq_s32(acc, vreinterpretq_s8_u8(u), x); }
inline int32x4_t widen_add(int32x4_t acc, Partial p) { return vaddq_s32(acc, p); }
#else
// smlal: products (|2 * -128| = 256) summed in int16 lanes, 16 per lane per block of 128 weights,
// widened by sadalp every kFlush = 8 blocks (8 * 16 * -256 = -32768 exactly, never beyond): one
// instruction per 8 MACs instead of two (smull + sadalp).
using Partial = int16x8_t;
constexpr int64_t kFlush = 8;
inline Partial partial_zero() { return vdupq_n_s16(0); }
inline Partial dot_u8s8(Partial acc, uint8x16_t u, int8x16_t x) {
  const int8x16_t us = vreinterpretq_s8_u8(u);  // codes 0..2 are valid signed bytes
  acc = vmlal_s8(acc, vget_low_s8(us), vget_low_s8(x));
  return vmlal_high_s8(acc, us, x);
}
inline int32x4_t widen_add(int32x4_t acc, Partial p) { return vpadalq_s16(acc, p); }
#endif

template <int R>
void micro_i8(const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int32_t sum, int32_t* out) {
  int32x4_t a[R];
  for (int r = 0; r < R; ++r) a[r] = vdupq_n_s32(0);
  for (int64_t b0 = 0; b0 < nb; b0 += kFlush) {
    Partial h[R];
    for (int r = 0; r < R; ++r) h[r] = partial_zero();
    const int64_t b1 = imin(nb, b0 + kFlush);
    for (int64_t b = b0; b < b1; ++b)
      for (int q = 0; q < 2; ++q) {
        uint8x16_t wv[R];
        for (int r = 0; r < R; ++r) wv[r] = vld1q_u8(w + r * rb + b * 32 + 16 * q);
        for (int s = 0; s < 4; ++s) {
          const int8x16_t xv = vld1q_s8(xr + b * 128 + 32 * s + 16 * q);
          for (int r = 0; r < R; ++r) h[r] = dot_u8s8(h[r], plane(wv[r], s), xv);
        }
      }
    for (int r = 0; r < R; ++r) a[r] = widen_add(a[r], h[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = vaddvq_s32(a[r]) - sum;
}

void gemm_i8(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
             int32_t* acc, int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, kp = nb * kBlockWeights;
  int8_t* xr = static_cast<int8_t*>(scratch(0, static_cast<size_t>(kp)));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t sum = pad_copy_i8(xq + i * k, k, kp, xr);
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) micro_i8<4>(w + m * rb, rb, nb, xr, sum, acc + i * ldy + (m - m0));
    for (; m < m1; ++m) micro_i8<1>(w + m * rb, rb, nb, xr, sum, acc + i * ldy + (m - m0));
  }
}

// ---------------------------------------------------------------- float activations
// +1 -> x, -1 -> -x, 0 -> +0 by masks, never a multiply: a zero weight ignores inf / NaN inputs.
struct Masks {
  uint32x4_t nz[4], neg[4];
};

inline void widen(uint8x16_t m, uint32x4_t out[4]) {
  const int8x16_t s = vreinterpretq_s8_u8(m);
  const int16x8_t lo = vmovl_s8(vget_low_s8(s)), hi = vmovl_high_s8(s);
  out[0] = vreinterpretq_u32_s32(vmovl_s16(vget_low_s16(lo)));
  out[1] = vreinterpretq_u32_s32(vmovl_high_s16(lo));
  out[2] = vreinterpretq_u32_s32(vmovl_s16(vget_low_s16(hi)));
  out[3] = vreinterpretq_u32_s32(vmovl_high_s16(hi));
}

inline Masks masks(uint8x16_t codes) {
  Masks m;
  widen(vmvnq_u8(vceqq_u8(codes, vdupq_n_u8(1))), m.nz);
  widen(vceqq_u8(codes, vdupq_n_u8(0)), m.neg);  // all ones where the weight is -1
  return m;
}

inline float32x4_t select(float32x4_t x, uint32x4_t nz, uint32x4_t neg) {
  const uint32x4_t sign = vdupq_n_u32(0x80000000u);
  const uint32x4_t v = veorq_u32(vreinterpretq_u32_f32(x), vandq_u32(neg, sign));
  return vreinterpretq_f32_u32(vandq_u32(v, nz));
}

template <int R>
void micro_f32(const uint8_t* w, int64_t rb, int64_t nb, const float* xp, float* out) {
  float32x4_t a[R];
  for (int r = 0; r < R; ++r) a[r] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b)
    for (int q = 0; q < 2; ++q) {
      uint8x16_t wv[R];
      for (int r = 0; r < R; ++r) wv[r] = vld1q_u8(w + r * rb + b * 32 + 16 * q);
      for (int s = 0; s < 4; ++s) {
        Masks mk[R];
        for (int r = 0; r < R; ++r) mk[r] = masks(plane(wv[r], s));
        for (int j = 0; j < 4; ++j) {
          const float32x4_t xv = vld1q_f32(xp + b * 128 + 32 * s + 16 * q + 4 * j);
          for (int r = 0; r < R; ++r) a[r] = vaddq_f32(a[r], select(xv, mk[r].nz[j], mk[r].neg[j]));
        }
      }
    }
  for (int r = 0; r < R; ++r) out[r] = vaddvq_f32(a[r]);
}

void gemm_f32(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1, float* y,
              int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, kp = nb * kBlockWeights;
  float* xp = static_cast<float*>(scratch(0, static_cast<size_t>(kp) * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) {
    pad_copy(x + i * k, k, kp, xp);
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) micro_f32<4>(w + m * rb, rb, nb, xp, y + i * ldy + (m - m0));
    for (; m < m1; ++m) micro_f32<1>(w + m * rb, rb, nb, xp, y + i * ldy + (m - m0));
  }
}

// Row-by-row accumulation like the scalar reference: bit-identical to it.
void gemm_t_f32(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0, int64_t c1,
                float* dx) {
  const int64_t rb = packed_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) {
    const float* gi = g + i * mrows;
    float* dxi = dx + i * k;
    for (int64_t b = c0 / kBlockWeights; b * kBlockWeights < c1; ++b) {
      float32x4_t a[32];  // column 32s + 16q + 4j + lane of the block is a[8s + 4q + j]
      for (int q = 0; q < 32; ++q) a[q] = vdupq_n_f32(0.0f);
      for (int64_t m = 0; m < mrows; ++m) {
        const float32x4_t gm = vdupq_n_f32(gi[m]);
        for (int q = 0; q < 2; ++q) {
          const uint8x16_t wv = vld1q_u8(w + m * rb + b * 32 + 16 * q);
          for (int s = 0; s < 4; ++s) {
            const Masks mk = masks(plane(wv, s));
            for (int j = 0; j < 4; ++j)
              a[8 * s + 4 * q + j] = vaddq_f32(a[8 * s + 4 * q + j], select(gm, mk.nz[j], mk.neg[j]));
          }
        }
      }
      for (int v = 0; v < 32; ++v) {
        const int64_t col = b * kBlockWeights + 4 * v, cnt = imin(4, c1 - col);
        if (cnt >= 4) vst1q_f32(dxi + col, a[v]);
        else if (cnt > 0) {
          float tmp[4];
          vst1q_f32(tmp, a[v]);
          for (int64_t j = 0; j < cnt; ++j) dxi[col + j] = tmp[j];
        }
      }
    }
  }
}

// ---------------------------------------------------------------- activation quantizer
// The bit patterns of |x| order as the magnitudes do (inf and NaN above every finite value).
uint32_t absmax_bits(const float* x, int64_t k) {
  uint32x4_t m = vdupq_n_u32(0);
  const uint32x4_t mag = vdupq_n_u32(0x7FFFFFFFu);
  int64_t c = 0;
  for (; c + 4 <= k; c += 4) m = vmaxq_u32(m, vandq_u32(vreinterpretq_u32_f32(vld1q_f32(x + c)), mag));
  uint32_t r = vmaxvq_u32(m);
  return absmax_bits_tail(x, c, k, r);
}

// scvtf rounds to nearest as the scalar conversion does; two multiplies in the same order.
void rescale_i32(const int32_t* acc, int64_t n, float s, const float* sc, float* y) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    vst1q_f32(y + j, vmulq_f32(vmulq_n_f32(vcvtq_f32_s32(vld1q_s32(acc + j)), s), vld1q_f32(sc + j)));
  rescale_tail(acc, j, n, s, sc, y);
}

// fcvtns rounds half to even, as nearbyint does in the default rounding mode; |x * inv| <= 127.
void quantize_i8(const float* x, int64_t k, float inv, int8_t* xq) {
  const float32x4_t s = vdupq_n_f32(inv);
  int64_t c = 0;
  for (; c + 8 <= k; c += 8) {
    const int32x4_t a = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + c), s));
    const int32x4_t b = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + c + 4), s));
    vst1_s8(xq + c, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
  }
  for (; c < k; ++c) {
    const int32_t r = vcvtns_s32_f32(x[c] * inv);
    xq[c] = clamp_i8(r);
  }
}

}  // namespace
}  // namespace trix::kernels
