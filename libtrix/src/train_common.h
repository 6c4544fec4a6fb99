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

// Rows of a token block: a multiple of the micro-kernel's rows, large enough that re-packing the
// weights per block costs a few percent, small enough to split a tile over two threads.
constexpr int64_t kTokenBlock = 96;
// Output rows of a weight-gradient block.
constexpr int64_t kGradBlock = 64;

}  // namespace trix::train_detail
