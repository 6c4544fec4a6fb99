// The training GEMM's micro-kernel table: one per instruction set, like kernels.h, kept apart so that
// the inference kernels and the training kernels change independently.
#pragma once
#include <cstdint>

namespace trix::kernels {

// Register block of the micro-kernel: kTrainMR rows of A by kTrainNR columns of B.
constexpr int64_t kTrainMR = 6;
constexpr int64_t kTrainNR = 16;

struct TrainKernels {
  const char* name;
  // c[i*ldc + j] = (load ? c[i*ldc + j] : 0) + sum_p ap[p*MR + i] * bp[p*NR + j], one fused
  // multiply-add per p in increasing p, for i < MR, j < NR (full block; panels zero-padded).
  void (*micro)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load);
  // For i < n: a[i] = act(v[i]) and, when g is not null, g[i] = act'(v[i]) (act: trix::Activation's
  // value; the formulas of train_math.h, identical at every level). a may alias v.
  void (*activation)(int act, const float* v, int64_t n, float* a, float* g);
};

const TrainKernels& train_scalar();
const TrainKernels& train_avx2();
// The table for the active SIMD level (avx2 for every x86 level above scalar).
const TrainKernels& train_active();

}  // namespace trix::kernels
