// AVX-512 kernels, included by avx512.cpp (TRIX_VNNI 0: vpmaddubsw + vpmaddwd) and avx512_vnni.cpp
// (TRIX_VNNI 1: vpdpbusd). Everything here has internal linkage and uses no std:: templates, so no
// AVX-512 code can be picked by the linker for a baseline caller.
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/simd_common.h"
#include "trix/pack.h"

namespace trix::kernels {
namespace {

// ---------------------------------------------------------------- int8 activations (exact)
// Activations are reordered once per product so one 64-byte load matches plane s of two consecutive
// weight blocks: xr[p*256 + s*64 + h*32 + j] = x[(2p+h)*128 + 32s + j] (0 past k).
int64_t i8_data_bytes(int64_t k) { return (packed_row_bytes(k) / kBlockBytes + 1) / 2 * 256; }
// Rows a multiple of 4 KiB apart would all map to the same L1 sets: pad by one line.
int64_t i8_row_bytes(int64_t k) { return i8_data_bytes(k) % 4096 == 0 ? i8_data_bytes(k) + 64 : i8_data_bytes(k); }

// Returns sum(x) (the correction for codes w + 1): 32-byte pieces by masked loads (zeros past k),
// summed by vpsadbw on x ^ 0x80 (each byte + 128), less 128 per byte.
int32_t prep_i8_row(const int8_t* x, int64_t k, int8_t* xr) {
  const int64_t pieces = i8_data_bytes(k) / 32;  // (block, plane) pairs, both blocks of the last pair
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i s64 = _mm256_setzero_si256();
  for (int64_t q = 0; q < pieces; ++q) {
    const int64_t p = q / 8, s = (q / 2) % 4, h = q % 2;
    const int64_t c0 = (2 * p + h) * 128 + 32 * s, len = imin(32, k - c0);
    const __mmask32 mask = len >= 32 ? ~__mmask32{0} : (len > 0 ? (__mmask32{1} << len) - 1 : 0);
    const __m256i v = _mm256_maskz_loadu_epi8(mask, x + (len > 0 ? c0 : 0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(xr + q * 32), v);
    s64 = _mm256_add_epi64(s64, _mm256_sad_epu8(_mm256_xor_si256(v, bias), _mm256_setzero_si256()));
  }
  const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s64), _mm256_extracti128_si256(s64, 1));
  const int64_t total = _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
  return static_cast<int32_t>(total - 128 * 32 * pieces);
}

void prep_i8(const int8_t* xq, int64_t n, int64_t k, int8_t* xr, int32_t* sums) {
  const int64_t xs = i8_row_bytes(k);
  for (int64_t i = 0; i < n; ++i) sums[i] = prep_i8_row(xq + i * k, k, xr + i * xs);
}

// With VNNI, vpdpbusd is issued from inline asm so the accumulator stays in its register: with the
// intrinsic, GCC 12 copied every accumulator to a fresh register and back around each vpdpbusd (and
// spilled some), ~10x the instructions of the loop's real work.
inline __m512i dot_u8s8(__m512i acc, __m512i u, __m512i x) {
#if TRIX_VNNI
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(x));
  return acc;
#else
  // u holds codes 0..2, so each pair sum is within +-512: vpmaddubsw cannot saturate.
  const __m512i p = _mm512_maddubs_epi16(u, x);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
#endif
}

// The four lane totals of v0..v3 as one int32 vector, by a reduction tree shared by the four
// (16 vector ops instead of ~36 for four separate reductions).
inline __m128i hsum4(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  // 128-bit lanes: [v0 | v0 | v1 | v1] and [v2 | v2 | v3 | v3] halves summed
  const __m512i a = _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, 0x44), _mm512_shuffle_i32x4(v0, v1, 0xEE));
  const __m512i b = _mm512_add_epi32(_mm512_shuffle_i32x4(v2, v3, 0x44), _mm512_shuffle_i32x4(v2, v3, 0xEE));
  // [v0 | v1 | v2 | v3], four dwords each
  __m512i d = _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x88), _mm512_shuffle_i32x4(a, b, 0xDD));
  d = _mm512_add_epi32(d, _mm512_shuffle_epi32(d, _MM_PERM_BADC));
  d = _mm512_add_epi32(d, _mm512_shuffle_epi32(d, _MM_PERM_CDAB));
  return _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), d));
}

// R rows x C activation rows. With VNNI and one activation row (GEMV) the codes are masked in place
// (w & 3<<2s = code * 4^s, at most 128) into four accumulators and shifted back at the end: one op
// per plane instead of two. Exact: every lane sum of plane s is a multiple of 4^s, |sum| < 2^31.
template <int R, int C, int S>
struct I8Acc {
  __m512i a[R][C][S];
};

// One 64-byte piece (two weight blocks) of R rows against C activation rows; Half: only the first
// 32 bytes exist (the last block of a row with an odd block count). Each plane reloads the weights
// from L1 rather than keeping them in registers: with 24 accumulators GCC otherwise runs out of
// registers and copies accumulators around every vpdpbusd. The pieces are kept apart from the loop,
// the half one outside it: with both loads in one loop body GCC kept the accumulators on the stack.
template <int R, int C, int S, bool Half>
__attribute__((always_inline)) inline void i8_piece(I8Acc<R, C, S>& acc, const uint8_t* w, int64_t rb,
                                                    const int8_t* xr, int64_t xs) {
  const __m512i three = _mm512_set1_epi8(3);
  for (int s = 0; s < 4; ++s) {
    __m512i u[R];
    for (int r = 0; r < R; ++r) {
      const __m512i wv = Half ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, w + r * rb) : _mm512_loadu_si512(w + r * rb);
      if (S == 4) u[r] = _mm512_and_si512(wv, _mm512_set1_epi8(static_cast<char>(3 << (2 * s))));
      else u[r] = _mm512_and_si512(s == 0 ? wv : _mm512_srli_epi16(wv, 2 * s), three);
    }
    for (int c = 0; c < C; ++c) {
      const __m512i xv = _mm512_load_si512(xr + c * xs + s * 64);
      for (int r = 0; r < R; ++r) acc.a[r][c][S == 4 ? s : 0] = dot_u8s8(acc.a[r][c][S == 4 ? s : 0], u[r], xv);
    }
  }
}

// Loop: the row has full pieces (at least one); Half: it ends in a half piece. One instance per
// case and a loop that runs at least once, so no path joins another with the accumulators live:
// at such a join (a zero-trip loop, an optional tail) GCC kept them all on the stack.
template <int R, int C, bool Loop, bool Half>
void micro_i8_body(const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int64_t xs, const int32_t* sums,
                   int32_t* out, int64_t ldy) {
  constexpr int S = (TRIX_VNNI && C == 1) ? 4 : 1;
  I8Acc<R, C, S> acc;
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int s = 0; s < S; ++s) acc.a[r][c][s] = _mm512_setzero_si512();
  const int64_t full = nb / 2;
  if constexpr (Loop) {
    int64_t p = 0;
    do {
      if (C == 1)  // the GEMV streams its weights once: fetch two row groups ahead into L1
        for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(w + (r + 2 * R) * rb + p * 64), _MM_HINT_T0);
      i8_piece<R, C, S, false>(acc, w + p * 64, rb, xr + p * 256, xs);
    } while (++p < full);
  }
  if constexpr (Half) i8_piece<R, C, S, true>(acc, w + full * 64, rb, xr + full * 256, xs);
  // Per (row, activation row) one vector; planes shifted back lane by lane (each lane of plane s is
  // a multiple of 4^s, so the shift is exact and no lane total can overflow).
  __m512i v[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      v[r][c] = acc.a[r][c][0];
      if (S == 4) {
        v[r][c] = _mm512_add_epi32(v[r][c], _mm512_srai_epi32(acc.a[r][c][S == 4 ? 1 : 0], 2));
        v[r][c] = _mm512_add_epi32(v[r][c], _mm512_srai_epi32(acc.a[r][c][S == 4 ? 2 : 0], 4));
        v[r][c] = _mm512_add_epi32(v[r][c], _mm512_srai_epi32(acc.a[r][c][S == 4 ? 3 : 0], 6));
      }
    }
  for (int c = 0; c < C; ++c) {
    if (R == 4) {
      const __m128i t = hsum4(v[0][c], v[1][c], v[2 % R][c], v[3 % R][c]);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c * ldy), _mm_sub_epi32(t, _mm_set1_epi32(sums[c])));
    } else {
      for (int r = 0; r < R; ++r) out[c * ldy + r] = _mm512_reduce_add_epi32(v[r][c]) - sums[c];
    }
  }
}

template <int R, int C>
void micro_i8(const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int64_t xs, const int32_t* sums,
              int32_t* out, int64_t ldy) {
  const bool loop = nb >= 2, half = nb % 2 != 0;
  if (loop && half) micro_i8_body<R, C, true, true>(w, rb, nb, xr, xs, sums, out, ldy);
  else if (loop) micro_i8_body<R, C, true, false>(w, rb, nb, xr, xs, sums, out, ldy);
  else if (half) micro_i8_body<R, C, false, true>(w, rb, nb, xr, xs, sums, out, ldy);
  else  // k = 0: no weights
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) out[c * ldy + r] = -sums[c];
}

// Activation rows per micro-kernel call: R = 4 weight rows x 6 = 24 accumulators (of 32 registers).
// Without VNNI each product needs two temporaries (vpmaddubsw, vpmaddwd): 4 x 4 leaves room for them.
constexpr int kI8Cmax = TRIX_VNNI ? 6 : 4;

template <int R>
void micro_i8_c(int C, const uint8_t* w, int64_t rb, int64_t nb, const int8_t* xr, int64_t xs,
                const int32_t* sums, int32_t* out, int64_t ldy) {
  switch (C) {
    case 1: micro_i8<R, 1>(w, rb, nb, xr, xs, sums, out, ldy); break;
    case 2: micro_i8<R, 2>(w, rb, nb, xr, xs, sums, out, ldy); break;
    case 3: micro_i8<R, 3>(w, rb, nb, xr, xs, sums, out, ldy); break;
    case 4: micro_i8<R, 4>(w, rb, nb, xr, xs, sums, out, ldy); break;
    case 5: micro_i8<R, 5>(w, rb, nb, xr, xs, sums, out, ldy); break;
    default: micro_i8<R, 6>(w, rb, nb, xr, xs, sums, out, ldy); break;
  }
}

void gemm_i8_prep(const int8_t* xr, const int32_t* sums, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                  int64_t m1, int32_t* acc, int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, xs = i8_row_bytes(k);
  for_each_block<kI8Cmax>(n, m0, m1, [&](auto r, int C, int64_t m, int64_t i) {
    micro_i8_c<decltype(r)::value>(C, w + m * rb, rb, nb, xr + i * xs, xs, sums + i, acc + i * ldy + (m - m0), ldy);
  });
}

void gemm_i8(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
             int32_t* acc, int64_t ldy) {
  gemm_i8_two_step(i8_row_bytes, prep_i8, gemm_i8_prep, xq, n, k, w, m0, m1, acc, ldy);
}

// ---------------------------------------------------------------- activation quantizer
// The bit patterns of |x| order as the magnitudes do (inf and NaN above every finite value).
uint32_t absmax_bits(const float* x, int64_t k) {
  const __m512i mag = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i m = _mm512_setzero_si512();
  for (int64_t c = 0; c < k; c += 16) {
    const __mmask16 mask = k - c >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (k - c)) - 1);
    m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_maskz_loadu_epi32(mask, x + c), mag));
  }
  return static_cast<uint32_t>(_mm512_reduce_max_epu32(m));
}

// vcvtps2dq rounds by MXCSR, half to even by default, as nearbyint does; |x * inv| <= 127, and
// vpmovsdb saturates as the reference clamps.
void quantize_i8(const float* x, int64_t k, float inv, int8_t* xq) {
  const __m512 s = _mm512_set1_ps(inv);
  for (int64_t c = 0; c < k; c += 16) {
    const __mmask16 mask = k - c >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (k - c)) - 1);
    const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + c), s));
    _mm_mask_storeu_epi8(xq + c, mask, _mm512_cvtsepi32_epi8(q));
  }
}

// vcvtdq2ps rounds by MXCSR as the scalar conversion does; two multiplies in the same order.
void rescale_i32(const int32_t* acc, int64_t n, float s, const float* sc, float* y) {
  const __m512 sv = _mm512_set1_ps(s);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = n - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 a = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, acc + j));
    _mm512_mask_storeu_ps(y + j, mask, _mm512_mul_ps(_mm512_mul_ps(a, sv), _mm512_maskz_loadu_ps(mask, sc + j)));
  }
}

// ---------------------------------------------------------------- float activations
// A weight never multiplies: a 16-entry table maps each 2-bit code (the low two bits of the index;
// vpermd reads four) to a pattern P and vpternlogd keeps x's magnitude where P has it and flips
// x's sign where P's sign bit is set: +1 -> x, -1 -> -x, 0 -> +-0. A zero weight therefore
// ignores an infinite or NaN input, as the scalar reference does.
constexpr int kTernSelect = 0x68;  // (C ? A ^ B : A & B) with A = x, B = P, C = sign mask

inline __m512i code_table() {
  return _mm512_setr_epi32(-1, 0, 0x7FFFFFFF, 0, -1, 0, 0x7FFFFFFF, 0, -1, 0, 0x7FFFFFFF, 0, -1, 0,
                           0x7FFFFFFF, 0);
}

inline __m512 signed_select(__m512 x, __m512i p, __m512i sign) {
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(x), p, sign, kTernSelect));
}

template <int R, int C>
void micro_f32(const uint8_t* w, int64_t rb, int64_t nb, const float* xp, int64_t kp, float* out, int64_t ldy) {
  const __m512i lut = code_table(), sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __m512 a[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) a[r][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b)
    for (int h = 0; h < 2; ++h) {
      __m512i v[R];
      for (int r = 0; r < R; ++r)
        v[r] = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * rb + b * 32 + h * 16)));
      for (int s = 0; s < 4; ++s) {
        __m512i p[R];
        for (int r = 0; r < R; ++r)
          p[r] = _mm512_permutexvar_epi32(s == 0 ? v[r] : _mm512_srli_epi32(v[r], 2 * s), lut);
        for (int c = 0; c < C; ++c) {
          const __m512 xv = _mm512_load_ps(xp + c * kp + b * 128 + 32 * s + 16 * h);
          for (int r = 0; r < R; ++r) a[r][c] = _mm512_add_ps(a[r][c], signed_select(xv, p[r], sign));
        }
      }
    }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[c * ldy + r] = _mm512_reduce_add_ps(a[r][c]);
}

template <int R>
void micro_f32_c(int C, const uint8_t* w, int64_t rb, int64_t nb, const float* xp, int64_t kp, float* out,
                 int64_t ldy) {
  switch (C) {
    case 1: micro_f32<R, 1>(w, rb, nb, xp, kp, out, ldy); break;
    case 2: micro_f32<R, 2>(w, rb, nb, xp, kp, out, ldy); break;
    case 3: micro_f32<R, 3>(w, rb, nb, xp, kp, out, ldy); break;
    default: micro_f32<R, 4>(w, rb, nb, xp, kp, out, ldy); break;
  }
}

void gemm_f32(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1, float* y,
              int64_t ldy) {
  const int64_t rb = packed_row_bytes(k), nb = rb / kBlockBytes, kp = nb * kBlockWeights;
  float* xp = static_cast<float*>(scratch(0, static_cast<size_t>(n * kp) * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) pad_copy(x + i * k, k, kp, xp + i * kp);
  for_each_block<4>(n, m0, m1, [&](auto r, int C, int64_t m, int64_t i) {
    micro_f32_c<decltype(r)::value>(C, w + m * rb, rb, nb, xp + i * kp, kp, y + i * ldy + (m - m0), ldy);
  });
}

// ---------------------------------------------------------------- float GEMV by table lookup
// (PreparedMatrix layout, see kernels.h). One public byte holds the codes of columns j, j+32 (low
// nibble) and j+64, j+96 (high nibble): each nibble indexes a 16-entry table of the four sums
// +-x_a +-x_b (one zmm), and vpermps reads only the low 4 bits of its index. Per 16 rows and 4
// weights: one vpmovzxbd, one shift, two vpermps, two adds; no multiply, no sign handling.
void lut_tables(const float* x, int64_t k, float* t) {
  const int64_t nb = (k + kBlockWeights - 1) / kBlockWeights, kp = nb * kBlockWeights;
  float* xp = static_cast<float*>(scratch(1, static_cast<size_t>(kp) * sizeof(float)));
  pad_copy(x, k, kp, xp);
  const __m512i pa = code_table(), sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i pb = _mm512_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF,
                                       0x7FFFFFFF, 0, 0, 0, 0);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = xp + b * kBlockWeights;
    float* tb = t + b * 32 * 32;
    for (int j = 0; j < 32; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m512 v = _mm512_add_ps(signed_select(_mm512_set1_ps(xb[j + 64 * h]), pa, sign),
                                       signed_select(_mm512_set1_ps(xb[j + 32 + 64 * h]), pb, sign));
        _mm512_store_ps(tb + (j * 2 + h) * 16, v);
      }
  }
}

// 64 bytes hold 4 byte positions of 16 rows (dword r = row r's bytes pos..pos+3). A load at byte
// offset q puts row r's byte pos+q in the low byte of dword r, so the low nibbles need no shift (the
// vector shuffle/shift pipe is the bottleneck here; loads are not); the high nibbles need one.
// The last load reads up to 3 bytes past a group's data: the layout has 64 bytes of slack.
template <int R>
void lut_groups_f32(const float* t, int64_t rb, const uint8_t* w, float* y) {
  __m512 lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t pos = 0; pos < rb; pos += 4) {
    for (int q = 0; q < 4; ++q) {
      const __m512 tl = _mm512_load_ps(t + (pos + q) * 32), th = _mm512_load_ps(t + (pos + q) * 32 + 16);
      for (int r = 0; r < R; ++r) {
        const __m512i v = _mm512_loadu_si512(w + (r * rb + pos) * 16 + q);
        lo[r] = _mm512_add_ps(lo[r], _mm512_permutexvar_ps(v, tl));
        // fma(p, 1, acc) rounds exactly as add(acc, p) but issues on the multiply pipes, leaving the
        // add pipes to the other accumulators.
        hi[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), th), one, hi[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_storeu_ps(y + 16 * r, _mm512_add_ps(lo[r], hi[r]));
}

void gemv_lut(const float* t, int64_t rb, const uint8_t* wl, int64_t g0, int64_t g1, float* y) {
  int64_t g = g0;
  for (; g + 4 <= g1; g += 4) lut_groups_f32<4>(t, rb, wl + g * rb * 16, y + (g - g0) * 16);
  for (; g < g1; ++g) lut_groups_f32<1>(t, rb, wl + g * rb * 16, y + (g - g0) * 16);
}

// dx[c] accumulates +-g[m] row by row in increasing m, exactly as the scalar reference does, so the
// transposed product is bit-identical to it.
void gemm_t_f32(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0, int64_t c1,
                float* dx) {
  const int64_t rb = packed_row_bytes(k);
  const __m512i lut = code_table(), sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  for (int64_t i = 0; i < n; ++i) {
    const float* gi = g + i * mrows;
    float* dxi = dx + i * k;
    for (int64_t b = c0 / kBlockWeights; b * kBlockWeights < c1; ++b) {
      __m512 a[8];
      for (int q = 0; q < 8; ++q) a[q] = _mm512_setzero_ps();
      for (int64_t m = 0; m < mrows; ++m) {
        const __m512 gm = _mm512_set1_ps(gi[m]);
        for (int h = 0; h < 2; ++h) {
          const __m512i v =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + m * rb + b * 32 + h * 16)));
          for (int s = 0; s < 4; ++s) {
            const __m512i p = _mm512_permutexvar_epi32(s == 0 ? v : _mm512_srli_epi32(v, 2 * s), lut);
            a[2 * s + h] = _mm512_add_ps(a[2 * s + h], signed_select(gm, p, sign));
          }
        }
      }
      for (int s = 0; s < 4; ++s)
        for (int h = 0; h < 2; ++h) {
          const int64_t col = b * kBlockWeights + 32 * s + 16 * h, cnt = imin(16, c1 - col);
          if (cnt >= 16) _mm512_storeu_ps(dxi + col, a[2 * s + h]);
          else if (cnt > 0) _mm512_mask_storeu_ps(dxi + col, static_cast<__mmask16>((1u << cnt) - 1), a[2 * s + h]);
        }
    }
  }
}

}  // namespace
}  // namespace trix::kernels
