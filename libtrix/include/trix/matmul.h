// Ternary matrix products. W is a packed [M, K] matrix (M outputs, K inputs), activations are
// row-major and contiguous. Every function dispatches to the best kernel for this CPU
// (trix/cpu.h); the scalar reference is the oracle for all of them. An output must not overlap any
// input (W's bytes and scales included): that is a std::invalid_argument on every SIMD level.
#pragma once
#include <cstdint>

#include "trix/pack.h"

namespace trix {

// The deepest int8 product (columns K of W) any function accepts: |acc| <= 128 * K must fit in int32,
// and the VNNI GEMV keeps a per-plane partial sum of up to 2^14 * K / 64 per lane before its shift,
// which reaches -2^31 exactly at K = 2^23. Larger K raises std::invalid_argument on every level.
constexpr int64_t kMaxI8Depth = int64_t(1) << 23;

// y[n, m] = scale(m) * sum_k x[n, k] * W[m, k]            x: [N, K], y: [N, M]
void matmul(const float* x, int64_t n, const TernaryView& w, float* y);

// dx[n, k] = sum_m g[n, m] * scale(m) * W[m, k]          g: [N, M], dx: [N, K]  (the backward of matmul)
void matmul_t(const float* g, int64_t n, const TernaryView& w, float* dx);

// acc[n, m] = sum_k xq[n, k] * W[m, k], exact in int32    xq: [N, K], acc: [N, M], K <= kMaxI8Depth
void matmul_i8_acc(const int8_t* xq, int64_t n, const TernaryView& w, int32_t* acc);

// W1.58A8: y[n, m] = float(acc[n, m]) * xscale[n] * scale(m), in that order (bit-exact on every CPU).
void matmul_i8(const int8_t* xq, const float* xscale, int64_t n, const TernaryView& w, float* y);

// W1.58A8 from float activations in one call: each row of x [N, K] quantized as
// quantize_activations does (trix/quantize.h), then matmul_i8; the same bits as the two calls. The
// int8 copy lives in a buffer the calling thread keeps.
void matmul_a8(const float* x, int64_t n, const TernaryView& w, float* y);

}  // namespace trix
