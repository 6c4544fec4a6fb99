// The tiled feed-forward layer. W_up [T*h, d] holds T tiles of h rows; tile t's down projection is
// the column slice W_down[:, t*h:(t+1)*h], stored per tile as a packed [T*d, h] matrix (rows
// t*d .. t*d+d-1 are tile t). Each input row uses only the tiles it was routed to:
//   y[i] = sum_j gate[i, j] * down_{t(i,j)}( act( up_{t(i,j)}(x[i]) ) )
// The dense FFN is every row using all T tiles with gate 1: one function, different gates.
#pragma once
#include <cstdint>

#include "trix/pack.h"

namespace trix {

enum class Activation { identity, relu, gelu, silu };

// act(v); gelu is the exact erf form, as torch.nn.functional.gelu.
float activate(Activation a, float v);

struct TiledFFN {
  TernaryView up;    // [T*h, d], scales: none, 1 or T*h
  TernaryView down;  // [T*d, h], scales: none, 1 or T*d
  int64_t tiles = 0;
  int64_t hidden() const { return tiles > 0 ? up.rows / tiles : 0; }
  int64_t dim() const { return up.cols; }
};

// Checks that up and down fit together as T tiles; throws std::invalid_argument otherwise.
void check_ffn(const TiledFFN& f, const char* func);

// x: [N, d]; tile_idx: [N, k] int32 in [0, T) or -1 (slot unused); gates: [N, k] or nullptr (all 1);
// y: [N, d] (overwritten). hidden_pre, when not null, receives up_t(x) before the activation,
// [N, k, h] (zero for unused slots), which the backward pass needs.
// Rows are grouped by tile, so each tile's weights are read once per call.
void tiled_ffn(const float* x, int64_t n, const TiledFFN& f, Activation act, const int32_t* tile_idx,
               const float* gates, int64_t k, float* y, float* hidden_pre = nullptr);

}  // namespace trix
