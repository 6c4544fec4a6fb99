// AVX2 + FMA micro-kernel of the training GEMM: 6 x 16 block in 12 accumulators, one broadcast of A
// and two loads of B per step. Internal linkage, no std:: templates (ISA flags stay in this file).
#include <immintrin.h>

#include "kernels/train_kernels.h"
#include "kernels/train_math.h"

namespace trix::kernels {
namespace {

// Twelve named accumulators (an array of __m256 makes GCC store them to the stack every step).
#define TRIX_ROW(i, c0, c1)                                         \
  {                                                                 \
    const __m256 a = _mm256_broadcast_ss(ap + (i));                 \
    c0 = _mm256_fmadd_ps(a, b0, c0);                                \
    c1 = _mm256_fmadd_ps(a, b1, c1);                                \
  }

void micro_6x16(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (load) {
    c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
    c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    TRIX_ROW(0, c00, c01)
    TRIX_ROW(1, c10, c11)
    TRIX_ROW(2, c20, c21)
    TRIX_ROW(3, c30, c31)
    TRIX_ROW(4, c40, c41)
    TRIX_ROW(5, c50, c51)
    ap += 6;
    bp += 16;
  }
  _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
  _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}
#undef TRIX_ROW

struct Avx2V {
  using T = __m256;
  static T set(float v) { return _mm256_set1_ps(v); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  // Operand order as the scalar (a < b ? a : b) and (a > b ? a : b), NaN included.
  static T min(T a, T b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static T max(T a, T b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static T floor(T a) { return _mm256_floor_ps(a); }
  static T abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static T copysign(T m, T s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign, m), _mm256_and_ps(sign, s));
  }
  static T gt0(T a) { return _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GT_OQ); }
  static T select(T mask, T a, T b) { return _mm256_blendv_ps(b, a, mask); }
  static T pow2(T n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
};

void activation_avx2(int act, const float* v, int64_t n, float* a, float* g) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 ai, gi;
    TrainMath<Avx2V>::eval(act, _mm256_loadu_ps(v + i), ai, gi);
    _mm256_storeu_ps(a + i, ai);
    if (g) _mm256_storeu_ps(g + i, gi);
  }
  if (i < n) {  // the tail through a full register: the same operations per element
    float vb[8] = {0}, ab[8], gb[8];
    for (int64_t j = i; j < n; ++j) vb[j - i] = v[j];
    __m256 ai, gi;
    TrainMath<Avx2V>::eval(act, _mm256_loadu_ps(vb), ai, gi);
    _mm256_storeu_ps(ab, ai);
    _mm256_storeu_ps(gb, gi);
    for (int64_t j = i; j < n; ++j) {
      a[j] = ab[j - i];
      if (g) g[j] = gb[j - i];
    }
  }
}

}  // namespace

const TrainKernels& train_avx2() {
  static const TrainKernels k{"avx2", 6, 16, micro_6x16, activation_avx2};
  return k;
}

}  // namespace trix::kernels
