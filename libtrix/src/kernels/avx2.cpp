// AVX2 + FMA kernels. One 32-byte load is one weight block; (w >> 2s) & 3 is plane s, weights
// 32s..32s+31, matched by 32 consecutive activations. Internal linkage, no std:: templates.
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/simd_common.h"
#include "trix/pack.h"

namespace trix::kernels {
namespace {

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------- int8 activations (exact)
// vpmaddubsw(code, x) gives int16 pair sums within +-512 (codes <= 2), so they are summed in int16
// and widened (vpmaddwd by ones) only every kFlush blocks: 64 pair sums of -512 reach -32768 exactly,
// never beyond. Per row and plane: one vpmaddubsw and one vpaddw instead of three ops.
constexpr int64_t kFlush = 16;

inline __m256i widen_add(__m256i acc32, __m256i acc16) {
  return _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, _mm256_set1_epi16(1)));
}

// R weight rows x C activation rows (C >= 2): each plane is decoded once per row and used C times.
// The int32 totals are scalars, so the R x C int16 accumulators, the decoded planes and one
// activation vector fit the 16 ymm registers (with vector int32 totals too GCC spilled every
// accumulator every block).
template <int R, int C>
void micro_i8(const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int64_t kp, const int32_t* sums,
              int32_t* out, int64_t ldy) {
  int32_t tot[R][C] = {};
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t b0 = 0; b0 < nb; b0 += kFlush) {
    __m256i h[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) h[r][c] = _mm256_setzero_si256();
    const int64_t b1 = imin(nb, b0 + kFlush);
    for (int64_t b = b0; b < b1; ++b) {
      __m256i wv[R];
      for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * rb + b * 32));
      for (int s = 0; s < 4; ++s) {
        __m256i u[R];
        for (int r = 0; r < R; ++r) u[r] = _mm256_and_si256(s == 0 ? wv[r] : _mm256_srli_epi16(wv[r], 2 * s), three);
        for (int c = 0; c < C; ++c) {
          const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(xr + c * kp + b * 128 + 32 * s));
          for (int r = 0; r < R; ++r) h[r][c] = _mm256_add_epi16(h[r][c], _mm256_maddubs_epi16(u[r], xv));
        }
        // Pins each plane's adds here: GCC otherwise computes all 32 products of a block first and
        // spills them.
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < C; ++c) __asm__("" : "+x"(h[r][c]));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) tot[r][c] += hsum_epi32(_mm256_madd_epi16(h[r][c], _mm256_set1_epi16(1)));
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[c * ldy + r] = tot[r][c] - sums[c];
}

// One activation row (GEMV): planes 0 and 1 are masked in place (w & 3 = code, w & 12 = 4 code), planes
// 2 and 3 the same after one shift, so a block costs 5 decode ops instead of 7. Pair sums of scale 1
// (planes 0, 2: +-1024 per block) and of scale 4 (planes 1, 3: +-4096 per block) go to two int16
// accumulators, widened every 8 blocks (8 * -4096 = -32768 exactly); the scale-4 sums are multiples
// of 4, so the shift back is exact, and the int32 total stays within sum(code * x) >= -256 K.
constexpr int64_t kFlushGemv = 8;
// Rows r * rs (rs bytes apart) of w; row r's result goes to out[r * os].
template <int R>
void gemv_i8(const uint8_t* w, int64_t rs, int64_t nb, const int8_t* xr, int32_t sum, int32_t* out, int64_t os) {
  __m256i a[R];
  for (int r = 0; r < R; ++r) a[r] = _mm256_setzero_si256();
  const __m256i m1 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(12), ones = _mm256_set1_epi16(1);
  for (int64_t b0 = 0; b0 < nb; b0 += kFlushGemv) {
    __m256i h1[R], h4[R];
    for (int r = 0; r < R; ++r) h1[r] = h4[r] = _mm256_setzero_si256();
    const int64_t b1 = imin(nb, b0 + kFlushGemv);
    for (int64_t b = b0; b < b1; ++b) {
      const int8_t* xb = xr + b * 128;
      const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb));
      const __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb + 32));
      const __m256i x2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb + 64));
      const __m256i x3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb + 96));
      for (int r = 0; r < R; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * rs + b * 32));
        const __m256i t = _mm256_srli_epi16(v, 4);
        h1[r] = _mm256_add_epi16(h1[r], _mm256_maddubs_epi16(_mm256_and_si256(v, m1), x0));
        h4[r] = _mm256_add_epi16(h4[r], _mm256_maddubs_epi16(_mm256_and_si256(v, m4), x1));
        h1[r] = _mm256_add_epi16(h1[r], _mm256_maddubs_epi16(_mm256_and_si256(t, m1), x2));
        h4[r] = _mm256_add_epi16(h4[r], _mm256_maddubs_epi16(_mm256_and_si256(t, m4), x3));
        __asm__("" : "+x"(h1[r]), "+x"(h4[r]));  // keeps GCC from hoisting (and spilling) products
      }
    }
    for (int r = 0; r < R; ++r)
      a[r] = _mm256_add_epi32(_mm256_add_epi32(a[r], _mm256_madd_epi16(h1[r], ones)),
                              _mm256_srai_epi32(_mm256_madd_epi16(h4[r], ones), 2));
  }
  for (int r = 0; r < R; ++r) out[r * os] = hsum_epi32(a[r]) - sum;
}

// The GEMV over rows [m0, m1): four rows a quarter of the range apart, so the weights are read as
// four long sequential streams, which the hardware prefetchers follow; four adjacent rows make a
// new short stream every 4 KiB. Zen 3, 4096 x 4096, interleaved A/B (docs/benchmarks.md): cold
// (weights from DRAM) 2.1-2.6x faster than adjacent rows, warm 4-9% faster, from L2 the same.
void gemv_i8_rows(const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int32_t sum, int64_t m0, int64_t m1,
                  int32_t* out) {
  const int64_t q = (m1 - m0) / 4;
  for (int64_t i = 0; i < q; ++i) gemv_i8<4>(w + (m0 + i) * rb, q * rb, nb, xr, sum, out + i, q);
  for (int64_t m = m0 + 4 * q; m < m1; ++m) gemv_i8<1>(w + m * rb, rb, nb, xr, sum, out + (m - m0), 1);
}

template <int R>
void micro_i8_c(int C, const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int64_t kp,
                const int32_t* sums, int32_t* out, int64_t ldy) {
  switch (C) {
    case 1: gemv_i8<R>(w, rb, nb, xr, sums[0], out, 1); break;  // the last activation row of a GEMM
    case 2: micro_i8<R, 2>(w, rb, nb, xr, kp, sums, out, ldy); break;
    case 3: micro_i8<R, 3>(w, rb, nb, xr, kp, sums, out, ldy); break;
    default: micro_i8<R, 4>(w, rb, nb, xr, kp, sums, out, ldy); break;
  }
}

int64_t i8_row_bytes(int64_t k) { return packed_row_bytes(k) / kBlockBytes * kBlockWeights; }

void prep_i8(const int8_t* xq, int64_t n, int64_t k, int8_t* xr, int32_t* sums) {
  const int64_t kp = i8_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) sums[i] = pad_copy_i8(xq + i * k, k, kp, xr + i * kp);
}

void gemm_i8_prep(const int8_t* xr, const int32_t* sums, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                  int64_t m1, int32_t* acc, int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, kp = nb * kBlockWeights;
  auto micro = [&](auto r, int C, int64_t m, int64_t i) {
    micro_i8_c<decltype(r)::value>(C, w + m * rb, rb, nb, xr + i * kp, kp, sums + i, acc + i * ldy + (m - m0), ldy);
  };
  // One activation row: four weight rows share each activation load. More: two weight rows times
  // up to four activation rows (8 int16 accumulators; each decoded plane used four times).
  if (n == 1) gemv_i8_rows(w, rb, nb, xr, sums[0], m0, m1, acc);
  else for_each_block<4, decltype(micro), 2>(n, m0, m1, micro);
}

void gemm_i8(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
             int32_t* acc, int64_t ldy) {
  gemm_i8_two_step(i8_row_bytes, prep_i8, gemm_i8_prep, xq, n, k, w, m0, m1, acc, ldy);
}

// ---------------------------------------------------------------- activation quantizer
// The bit patterns of |x| order as the magnitudes do (inf and NaN above every finite value).
uint32_t absmax_bits(const float* x, int64_t k) {
  const __m256i mag = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i m = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 8 <= k; c += 8)
    m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c)), mag));
  __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
  h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0xB1));
  uint32_t r = static_cast<uint32_t>(_mm_cvtsi128_si32(h));
  return absmax_bits_tail(x, c, k, r);
}

// vcvtps2dq and the scalar tail's vcvtss2si round by MXCSR, half to even by default, as nearbyint
// does; |x * inv| <= 127, and the saturating packs clamp as the reference does.
void quantize_i8(const float* x, int64_t k, float inv, int8_t* xq) {
  const __m256 s = _mm256_set1_ps(inv);
  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + c), s));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + c + 8), s));
    const __m128i w16a = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i w16b = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + c), _mm_packs_epi16(w16a, w16b));
  }
  for (; c < k; ++c) {
    const int r = _mm_cvtss_si32(_mm_set_ss(x[c] * inv));
    xq[c] = clamp_i8(r);
  }
}

// vcvtdq2ps rounds by MXCSR as the scalar conversion does; two multiplies in the same order.
void rescale_i32(const int32_t* acc, int64_t n, float s, const float* sc, float* y) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)));
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(a, sv), _mm256_loadu_ps(sc + j)));
  }
  rescale_tail(acc, j, n, s, sc, y);
}

// ---------------------------------------------------------------- float activations
// Two 8-entry tables (vpermd reads three index bits; only the low two, the code, matter):
// keep = all ones for +-1, zero for 0; flip = the sign bit for -1. (x & keep) ^ flip gives
// x, -x or +0 without a multiply, so a zero weight ignores inf/NaN inputs like the reference.
inline __m256i keep_table() { return _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0); }
inline __m256i flip_table() {
  const int f = static_cast<int>(0x80000000u);
  return _mm256_setr_epi32(f, 0, 0, 0, f, 0, 0, 0);
}

inline __m256 signed_select(__m256 x, __m256i idx, __m256i keep, __m256i flip) {
  const __m256i kk = _mm256_permutevar8x32_epi32(keep, idx), ff = _mm256_permutevar8x32_epi32(flip, idx);
  return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_and_si256(_mm256_castps_si256(x), kk), ff));
}

template <int R, int C>
void micro_f32(const uint8_t* w, int64_t rb, int64_t nb, const float* xp, int64_t kp, float* out, int64_t ldy) {
  const __m256i keep = keep_table(), flip = flip_table();
  __m256 a[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) a[r][c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b)
    for (int q = 0; q < 4; ++q) {  // bytes 8q..8q+7 of the block
      __m256i v[R];
      for (int r = 0; r < R; ++r)
        v[r] = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + r * rb + b * 32 + q * 8)));
      for (int s = 0; s < 4; ++s)
        for (int c = 0; c < C; ++c) {
          const __m256 xv = _mm256_load_ps(xp + c * kp + b * 128 + 32 * s + 8 * q);
          for (int r = 0; r < R; ++r) {
            const __m256i idx = s == 0 ? v[r] : _mm256_srli_epi32(v[r], 2 * s);
            a[r][c] = _mm256_add_ps(a[r][c], signed_select(xv, idx, keep, flip));
          }
        }
    }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[c * ldy + r] = hsum_ps(a[r][c]);
}

template <int R>
void micro_f32_c(int C, const uint8_t* w, int64_t rb, int64_t nb, const float* xp, int64_t kp, float* out,
                 int64_t ldy) {
  if (C == 1) micro_f32<R, 1>(w, rb, nb, xp, kp, out, ldy);
  else micro_f32<R, 2>(w, rb, nb, xp, kp, out, ldy);
}

void gemm_f32(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1, float* y,
              int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, kp = nb * kBlockWeights;
  float* xp = static_cast<float*>(scratch(0, static_cast<size_t>(n * kp) * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) pad_copy(x + i * k, k, kp, xp + i * kp);
  for_each_block<2>(n, m0, m1, [&](auto r, int C, int64_t m, int64_t i) {
    micro_f32_c<decltype(r)::value>(C, w + m * rb, rb, nb, xp + i * kp, kp, y + i * ldy + (m - m0), ldy);
  });
}

// Same order of additions as the scalar reference (row by row), hence bit-identical to it.
void gemm_t_f32(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0, int64_t c1,
                float* dx) {
  const int64_t rb = packed_row_bytes(k);
  const __m256i keep = keep_table(), flip = flip_table();
  for (int64_t i = 0; i < n; ++i) {
    const float* gi = g + i * mrows;
    float* dxi = dx + i * k;
    for (int64_t b = c0 / kBlockWeights; b * kBlockWeights < c1; ++b) {
      __m256 a[16];
      for (int q = 0; q < 16; ++q) a[q] = _mm256_setzero_ps();
      for (int64_t m = 0; m < mrows; ++m) {
        const __m256 gm = _mm256_set1_ps(gi[m]);
        for (int q = 0; q < 4; ++q) {
          const __m256i v =
              _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + m * rb + b * 32 + q * 8)));
          for (int s = 0; s < 4; ++s) {
            const __m256i idx = s == 0 ? v : _mm256_srli_epi32(v, 2 * s);
            a[4 * s + q] = _mm256_add_ps(a[4 * s + q], signed_select(gm, idx, keep, flip));
          }
        }
      }
      for (int s = 0; s < 4; ++s)
        for (int q = 0; q < 4; ++q) {
          const int64_t col = b * kBlockWeights + 32 * s + 8 * q, cnt = imin(8, c1 - col);
          if (cnt >= 8) _mm256_storeu_ps(dxi + col, a[4 * s + q]);
          else if (cnt > 0) {
            alignas(32) float tmp[8];
            _mm256_store_ps(tmp, a[4 * s + q]);
            for (int64_t j = 0; j < cnt; ++j) dxi[col + j] = tmp[j];
          }
        }
    }
  }
}

}  // namespace

const Kernels& avx2() {
  static const Kernels k{"avx2", gemm_f32, gemm_t_f32, gemm_i8, i8_row_bytes, prep_i8, gemm_i8_prep,
                         absmax_bits, quantize_i8, rescale_i32, nullptr, nullptr};
  return k;
}

}  // namespace trix::kernels
