#include "trix/route.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "contracts.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "trix/error.h"

namespace trix {

void route_scores(const float* x, int64_t n, const TernaryView& sig, float* scores) {
  check_view(sig, "route_scores", "sig");
  TRIX_CHECK_ARG(n >= 0, "route_scores", "x", "must have a non-negative row count, got ", n);
  detail::check_no_overlap("route_scores", "out", scores, detail::bytes_of(n * sig.rows, sizeof(float)), "x", x,
                           detail::bytes_of(n * sig.cols, sizeof(float)));
  if (n == 0 || sig.rows == 0) return;
  kernels::par_gemm_f32(kernels::active(), x, n, sig.cols, sig.data, 0, sig.rows, scores, sig.rows);
}

void top_k(const float* scores, int64_t n, int64_t t, int64_t k, int32_t* idx, float* val) {
  TRIX_CHECK_ARG(t >= 1, "top_k", "scores", "must have at least one column (tile), got ", t);
  TRIX_CHECK_ARG(k >= 1 && k <= t, "top_k", "k", "must be in [1, ", t, "], got ", k);
  std::vector<int32_t> order(static_cast<size_t>(t));
  for (int64_t i = 0; i < n; ++i) {
    const float* s = scores + i * t;
    // a ranks before b: larger score first, NaN last, equal scores by lower index.
    auto before = [s](int32_t a, int32_t b) {
      const bool na = std::isnan(s[a]), nb = std::isnan(s[b]);
      if (na != nb) return nb;
      if (!na && s[a] != s[b]) return s[a] > s[b];
      return a < b;
    };
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    for (int64_t j = 0; j < k; ++j) {
      idx[i * k + j] = order[j];
      val[i * k + j] = s[order[j]];
    }
  }
}

void route(const float* x, int64_t n, const TernaryView& sig, int64_t k, int32_t* idx, float* val) {
  TRIX_CHECK_ARG(k >= 1 && k <= sig.rows, "route", "k", "must be in [1, ", sig.rows, "], got ", k);
  std::vector<float> scores(static_cast<size_t>(n * sig.rows));
  route_scores(x, n, sig, scores.data());
  top_k(scores.data(), n, sig.rows, k, idx, val);
}

}  // namespace trix
