// Ternary quantization of float weights and int8 quantization of activations.
#pragma once
#include <cstdint>

#include "trix/pack.h"

namespace trix {

enum class QuantRule {
  absmean,    // BitNet b1.58: gamma = mean|W|, q = clip(round(W / gamma), -1, 1), scale = gamma
  threshold,  // the prototype: q = +1 if W > t, -1 if W < -t, else 0; scale = 1
};

struct QuantParams {
  QuantRule rule = QuantRule::absmean;
  float threshold = 0.5f;  // only for QuantRule::threshold
  bool per_row = false;    // absmean: one gamma per row instead of one for the matrix
};

constexpr float kAbsmeanEps = 1e-5f;     // gamma is at least this (an all-zero matrix stays zero)
constexpr float kActivationEps = 1e-5f;  // absmax of an activation row is at least this

// Number of scales quantize_ternary writes: 1, or rows when per_row.
int64_t quant_scale_count(int64_t rows, const QuantParams& p);

// q: rows * cols int8 in {-1,0,1}; scales: quant_scale_count entries. Round half to even.
void quantize_ternary(const float* w, int64_t rows, int64_t cols, const QuantParams& p, int8_t* q,
                      float* scales);

// Quantize then pack into the public format.
PackedTernary pack_float(const float* w, int64_t rows, int64_t cols, const QuantParams& p = {});

// Per-row absmax int8 quantization of activations (BitNet b1.58, W1.58A8):
//   amax = max(max_k |x[n,k]|, kActivationEps); xq = clamp(round_half_even(x * (127 / amax)), -128, 127);
//   xscale[n] = amax / 127 (so that x ~ xq * xscale).
void quantize_activations(const float* x, int64_t n, int64_t k, int8_t* xq, float* xscale);

}  // namespace trix
