// The table-lookup float product over the private 16-row layout (kernels.h, lut_offset), shared by
// PreparedMatrix and the model engine, which keeps a layout beside each mapped ternary matrix. Not
// installed.
#pragma once
#include <cstdint>
#include <vector>

#include "trix/ffn.h"
#include "trix/pack.h"

namespace trix::detail {

// The scales of rows [b, e) of w as a plain array, valid until the calling thread's next call
// (matmul.cpp): rescaling loops over it vectorize, where w.scale(m) branches on the scale count (at
// N = 64 the branchy loop took ~15% of a 4096 x 4096 int8 product, ad hoc timing).
const float* row_scales(const TernaryView& w, int64_t b, int64_t e);

// Whether the active kernels have the table-lookup GEMV (AVX-512 levels today).
bool lut_available();

// The private layout of w's codes (w already validated).
std::vector<uint8_t> lut_layout(const TernaryView& w);

// Rows [m0, m1) of x [n, k] @ W^T, unscaled, into y[i * ldy + (m - m0)], reading the codes of W from
// layout; m0 must be a multiple of 16 and the active level must have the table GEMV.
void lut_gemm(const float* x, int64_t n, int64_t k, const uint8_t* layout, int64_t m0, int64_t m1, float* y,
              int64_t ldy);

// y [n, w.rows] = x [n, w.cols] @ W^T times the scales, reading the codes from layout (built by
// lut_layout from w); falls back to matmul on w where the active level has no table GEMV. Arguments
// are checked by the caller.
void lut_matmul(const float* x, int64_t n, const TernaryView& w, const uint8_t* layout, float* y);

// tiled_ffn (trix/ffn.h) with the layouts of f.up and f.down (or nullptr: the public-format kernels);
// the layouts are used where the level has the table GEMV and hidden and d are multiples of 16.
void tiled_ffn_lut(const float* x, int64_t n, const TiledFFN& f, Activation act, const int32_t* tile_idx,
                   const float* gates, int64_t k, float* y, float* hidden_pre, const uint8_t* up_lut,
                   const uint8_t* down_lut);

}  // namespace trix::detail
