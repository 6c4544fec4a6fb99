// Shared pieces of the training operations (train_linear.cpp, train_ffn.cpp): argument checks and
// decoding ternary codes to effective float weights.
#pragma once
#include <cstdint>

#include "trix/train_ops.h"

namespace trix::train_detail {

// Checks q, scales and the shape [rows, cols] (rows < 0: any); names the function and argument.
void check_codes(const TernaryCodes& w, const char* func, const char* name, int64_t rows, int64_t cols);

// out[(r - r0) * cols + c] = scale(r) * q[r, c] for r0 <= r < r1 (the effective weight rows).
void decode_rows(const TernaryCodes& w, int64_t r0, int64_t r1, float* out);
// out[c * (r1 - r0) + (r - r0)] = scale(r) * q[r, c]: the same rows, transposed.
void decode_rows_t(const TernaryCodes& w, int64_t r0, int64_t r1, float* out);

// Scratch buffers of the training calls, kept per calling thread between calls: the page faults of
// fresh multi-megabyte buffers cost more than the products at training sizes. Each slot is one
// buffer of at least n floats, contents undefined; a call uses each slot for one purpose.
enum ScratchSlot : int { kScratchUp, kScratchDown, kScratchX, kScratchHidden, kScratchOut, kScratchGrad,
                         kScratchAct, kScratchDpre, kScratchDx, kScratchCount };
float* scratch(ScratchSlot slot, int64_t n);

// Products below this many multiply-adds stay on one thread (train_gemm_parallel): a parallel region
// costs a few microseconds, the time of about 100K multiply-adds.
constexpr int64_t kParallelMacs = int64_t{1} << 21;

}  // namespace trix::train_detail
