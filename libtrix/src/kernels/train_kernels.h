// The training GEMM's micro-kernel table: one per instruction set, like kernels.h, kept apart so that
// the inference kernels and the training kernels change independently.
#pragma once
#include <cstdint>

namespace trix::kernels {

// The largest register block of any level's micro-kernel (rows of A by columns of B).
constexpr int64_t kTrainMaxMR = 12;
constexpr int64_t kTrainMaxNR = 32;

struct TrainKernels {
  const char* name;
  // The micro-kernel's register block: mr rows of A by nr columns of B. The block changes only which
  // elements one call computes, never an element's chain, so every level gives the same bits.
  int64_t mr, nr;
  // c[i*ldc + j] = (load ? c[i*ldc + j] : 0) + sum_p ap[p*mr + i] * bp[p*nr + j], one fused
  // multiply-add per p in increasing p, for i < mr, j < nr (full block; panels zero-padded).
  void (*micro)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load);
  // For i < n: a[i] = act(v[i]) and, when g is not null, g[i] = act'(v[i]) (act: trix::Activation's
  // value; the formulas of train_math.h, identical at every level). a may alias v.
  void (*activation)(int act, const float* v, int64_t n, float* a, float* g);
};

const TrainKernels& train_scalar();
const TrainKernels& train_avx2();
const TrainKernels& train_avx512();
// The table for the active SIMD level (avx2 at avx2, avx512 at both AVX-512 levels).
const TrainKernels& train_active();

}  // namespace trix::kernels
