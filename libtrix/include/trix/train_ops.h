// Training operations: whole forward and backward passes of the ternary layers, on float
// activations and the ternary codes of the latent weights (quantize_ternary), in one call each.
//
// The effective weight is W = scale * q (q in {-1, 0, 1}). The weight gradients are the straight-
// through estimator's: the gradient of the effective weight, passed to the latent weight unchanged.
// Products run on a register-blocked float GEMM (train_gemm below) whose every output element is
// one fused multiply-add chain in a fixed order, so results are identical for any thread count and
// at every SIMD level (the scalar reference uses std::fma in the same order).
#pragma once
#include <cstdint>
#include <string>

#include "trix/ffn.h"

namespace trix {

// Ternary codes of a matrix: q [rows, cols] int8 in {-1, 0, 1}; scales: n_scales = 1 (one for the
// matrix) or rows (one per row). Effective weight W[r, c] = scale(r) * q[r, c].
struct TernaryCodes {
  const int8_t* q = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0, cols = 0, n_scales = 1;
  float scale(int64_t r) const { return scales[n_scales == 1 ? 0 : r]; }
};

// C[i, j] (= or +=) sum_p A(i, p) * B(p, j), for i < m, j < n, p < k, with A(i, p) = a[i*rsa + p*csa],
// B(p, j) = b[p*rsb + j*csb] and C row-major with leading dimension ldc. Single-threaded (callers
// split the work); each C element is one FMA chain over p = 0 .. k-1.
void train_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
                int64_t rsb, int64_t csb, float* c, int64_t ldc, bool accumulate);
// The same product split over get_num_threads() threads (B packed once, shared), with the same bits
// as train_gemm; products too small to gain from threads run on the caller.
void train_gemm_parallel(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
                         int64_t rsb, int64_t csb, float* c, int64_t ldc, bool accumulate);

// "identity" | "relu" | "gelu" | "silu"; throws std::invalid_argument naming func otherwise.
Activation parse_activation(const std::string& name, const char* func);

// Ternary linear layer, y [N, M] = x [N, K] @ W^T.
void linear_forward(const float* x, int64_t n, const TernaryCodes& w, float* y);
// Backward: dx [N, K] = g [N, M] @ W (if dx), dw [M, K] = g^T @ x (if dw; the STE gradient).
void linear_backward(const float* g, const float* x, int64_t n, const TernaryCodes& w, float* dx, float* dw);

// The tiled FFN (trix/ffn.h's layout: up [T*h, d], down [T*d, h], tile t = rows t*h.. / t*d..).
// x [N, d]; tile_idx [N, k] int32 in [0, T) or -1 (slot unused); gates [N, k] or nullptr (all 1).
// y [N, d] = sum over used slots of gate * down_t(act(up_t(x))); hidden_pre [N, k, h] receives
// up_t(x) (zero for unused slots). Slots are grouped by tile once; the work is split over
// (tile, token block) pairs. The activations (and their derivatives in the backward) are the
// polynomial forms of kernels/train_math.h, within 2e-7 of the erf / exp forms of activate().
struct TiledCodes {
  TernaryCodes up, down;
  int64_t tiles = 0;
};
void ffn_train_forward(const float* x, int64_t n, const TiledCodes& f, Activation act, const int32_t* tile_idx,
                       const float* gates, int64_t k, float* y, float* hidden_pre);

// Backward of ffn_train_forward from gy [N, d] and the saved hidden_pre. Each output may be null
// (not computed): dx [N, d]; dup [T*h, d] and ddown [T*d, h] (the STE gradients; rows of tiles no
// slot was routed to are exactly zero); dgates [N, k] (zero for unused slots; only with gates).
void ffn_train_backward(const float* gy, const float* x, int64_t n, const TiledCodes& f, Activation act,
                        const int32_t* tile_idx, const float* gates, int64_t k, const float* hidden_pre,
                        float* dx, float* dup, float* ddown, float* dgates);

// Tile signatures from ternary codes: sig[t, c] = sign(sum_r q[t*h + r, c]), [T, d] int8 (the same
// rule as tile_signatures on the packed matrix).
void tile_signatures_codes(const int8_t* q, int64_t rows, int64_t cols, int64_t tiles, int8_t* sig);

}  // namespace trix
