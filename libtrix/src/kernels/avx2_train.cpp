// AVX2 + FMA micro-kernel of the training GEMM: 6 x 16 block in 12 accumulators, one broadcast of A
// and two loads of B per step. Internal linkage, no std:: templates (ISA flags stay in this file).
#include <immintrin.h>

#include "kernels/train_kernels.h"

namespace trix::kernels {
namespace {

void micro_6x16(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load) {
  __m256 acc[6][2];
  for (int i = 0; i < 6; ++i) {
    acc[i][0] = load ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
    acc[i][1] = load ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    for (int i = 0; i < 6; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    ap += 6;
    bp += 16;
  }
  for (int i = 0; i < 6; ++i) {
    _mm256_storeu_ps(c + i * ldc, acc[i][0]);
    _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
  }
}

static_assert(kTrainMR == 6 && kTrainNR == 16, "micro_6x16 is written for a 6 x 16 block");

}  // namespace

const TrainKernels& train_avx2() {
  static const TrainKernels k{"avx2", micro_6x16};
  return k;
}

}  // namespace trix::kernels
