// AVX-512 micro-kernel of the training GEMM: a 12 x 32 block in 24 accumulators (two loads of B and
// twelve broadcasts of A per step), and the activations sixteen lanes at a time. Each element is the
// same FMA chain as at every other level, so the results are the scalar reference's bits. Internal
// linkage, no std:: templates (ISA flags stay in this file).
#include <immintrin.h>

#include <cstdint>

#include "kernels/train_kernels.h"
#include "kernels/train_math.h"

namespace trix::kernels {
namespace {

constexpr int64_t kMR = 12, kNR = 32;
static_assert(kMR <= kTrainMaxMR && kNR <= kTrainMaxNR, "the driver's edge buffer holds the block");

// Named accumulators: GCC keeps them in registers (an array of __m512 is stored every step).
#define TRIX_ACC(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define TRIX_DECL(i) __m512 c##i##a, c##i##b;
#define TRIX_LOAD(i) c##i##a = _mm512_loadu_ps(c + (i) * ldc), c##i##b = _mm512_loadu_ps(c + (i) * ldc + 16);
#define TRIX_ZERO(i) c##i##a = c##i##b = _mm512_setzero_ps();
#define TRIX_STEP(i)                                 \
  {                                                  \
    const __m512 a = _mm512_set1_ps(ap[i]);          \
    c##i##a = _mm512_fmadd_ps(a, b0, c##i##a);       \
    c##i##b = _mm512_fmadd_ps(a, b1, c##i##b);       \
  }
#define TRIX_STORE(i) _mm512_storeu_ps(c + (i) * ldc, c##i##a), _mm512_storeu_ps(c + (i) * ldc + 16, c##i##b);

void micro_12x32(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load) {
  TRIX_ACC(TRIX_DECL)
  if (load) {
    TRIX_ACC(TRIX_LOAD)
  } else {
    TRIX_ACC(TRIX_ZERO)
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
    TRIX_ACC(TRIX_STEP)
    ap += kMR;
    bp += kNR;
  }
  TRIX_ACC(TRIX_STORE)
}
#undef TRIX_ACC
#undef TRIX_DECL
#undef TRIX_LOAD
#undef TRIX_ZERO
#undef TRIX_STEP
#undef TRIX_STORE

// Masks travel as all-ones / all-zeros lanes, as in the scalar and AVX2 forms of train_math.h.
struct Avx512V {
  using T = __m512;
  static T set(float v) { return _mm512_set1_ps(v); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  // Operand order as the scalar (a < b ? a : b) and (a > b ? a : b), NaN included.
  static T min(T a, T b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), b, a); }
  static T max(T a, T b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), b, a); }
  static T floor(T a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static T abs(T a) { return _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32(INT32_MIN), _mm512_castps_si512(a))); }
  static T copysign(T m, T s) {
    const __m512i sign = _mm512_set1_epi32(INT32_MIN);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(sign, _mm512_castps_si512(m)),
                                               _mm512_and_si512(sign, _mm512_castps_si512(s))));
  }
  static T gt0(T a) {
    return _mm512_castsi512_ps(_mm512_movm_epi32(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ)));
  }
  static T select(T mask, T a, T b) { return _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(mask)), b, a); }
  static T pow2(T n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
};

void activation_avx512(int act, const float* v, int64_t n, float* a, float* g) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 ai, gi;
    TrainMath<Avx512V>::eval(act, _mm512_loadu_ps(v + i), ai, gi);
    _mm512_storeu_ps(a + i, ai);
    if (g) _mm512_storeu_ps(g + i, gi);
  }
  if (i < n) {  // the tail in masked lanes: the same operations per element
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    __m512 ai, gi;
    TrainMath<Avx512V>::eval(act, _mm512_maskz_loadu_ps(m, v + i), ai, gi);
    _mm512_mask_storeu_ps(a + i, m, ai);
    if (g) _mm512_mask_storeu_ps(g + i, m, gi);
  }
}

}  // namespace

const TrainKernels& train_avx512() {
  static const TrainKernels k{"avx512", kMR, kNR, micro_12x32, activation_avx512};
  return k;
}

}  // namespace trix::kernels
