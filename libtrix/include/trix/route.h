// Flat routing: scores = x . sig^T, then the best tile(s) per row. Ties go to the lowest tile index.
#pragma once
#include <cstdint>

#include "trix/pack.h"

namespace trix {

// x: [N, d] float; sig: packed [T, d] (its scales are ignored); scores: [N, T].
void route_scores(const float* x, int64_t n, const TernaryView& sig, float* scores);

// scores: [N, T]; idx/val: [N, k], best first; equal scores keep the lower index first.
// NaN scores rank below every number.
void top_k(const float* scores, int64_t n, int64_t t, int64_t k, int32_t* idx, float* val);

// route_scores followed by top_k (k = 1 is top-1 routing).
void route(const float* x, int64_t n, const TernaryView& sig, int64_t k, int32_t* idx, float* val);

}  // namespace trix
