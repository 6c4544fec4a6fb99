#include "trix/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/kernels.h"
#include "contracts.h"
#include "kernels/parallel.h"
#include "lut_gemm.h"
#include "trix/error.h"
#include "trix/quantize.h"
#include "trix/threads.h"

namespace trix {

namespace {
// out [n, outs] of `each` bytes must not overlap in [n, ins] nor W's bytes and scales.
void check_out(const char* f, const char* out_name, const void* out, int64_t outs, size_t each, const char* in_name,
               const void* in, int64_t ins, size_t in_each, int64_t n, const TernaryView& w) {
  const size_t ob = detail::bytes_of(n * outs, each);
  detail::check_no_overlap(f, out_name, out, ob, in_name, in, detail::bytes_of(n * ins, in_each));
  detail::check_no_overlap(f, out_name, out, ob, "w", w.data, detail::bytes_of(w.rows * w.row_bytes(), 1));
  detail::check_no_overlap(f, out_name, out, ob, "w.scales", w.scales, detail::bytes_of(w.n_scales, sizeof(float)));
}
}  // namespace

namespace detail {
const float* row_scales(const TernaryView& w, int64_t b, int64_t e) {
  thread_local std::vector<float> s;
  if (s.size() < static_cast<size_t>(e - b)) s.resize(static_cast<size_t>(e - b));
  for (int64_t m = b; m < e; ++m) s[m - b] = w.scale(m);
  return s.data();
}
}  // namespace detail

void matmul(const float* x, int64_t n, const TernaryView& w, float* y) {
  check_view(w, "matmul", "w");
  TRIX_CHECK_ARG(n >= 0, "matmul", "x", "must have a non-negative row count, got ", n);
  check_out("matmul", "out", y, w.rows, sizeof(float), "x", x, w.cols, sizeof(float), n, w);
  if (n == 0 || w.rows == 0) return;
  const kernels::Kernels& kern = kernels::active();
  parallel_for(w.rows, kernels::row_grain(n, w.cols), [&](int64_t b, int64_t e) {
    kern.gemm_f32(x, n, w.cols, w.data, b, e, y + b, w.rows);
    if (w.n_scales == 0) return;
    const float* sc = detail::row_scales(w, b, e);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t m = b; m < e; ++m) y[i * w.rows + m] *= sc[m - b];
  });
}

void matmul_t(const float* g, int64_t n, const TernaryView& w, float* dx) {
  check_view(w, "matmul_t", "w");
  TRIX_CHECK_ARG(n >= 0, "matmul_t", "g", "must have a non-negative row count, got ", n);
  check_out("matmul_t", "out", dx, w.cols, sizeof(float), "g", g, w.rows, sizeof(float), n, w);
  if (n == 0 || w.cols == 0) return;
  const float* gs = g;
  std::vector<float> scaled;
  if (w.n_scales != 0) {
    scaled.resize(static_cast<size_t>(n * w.rows));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t m = 0; m < w.rows; ++m) scaled[i * w.rows + m] = g[i * w.rows + m] * w.scale(m);
    gs = scaled.data();
  }
  // Split over column blocks: each column of dx is summed by one thread in row order.
  const kernels::Kernels& kern = kernels::active();
  const int64_t blocks = (w.cols + kBlockWeights - 1) / kBlockWeights;
  const int64_t grain = (int64_t{1} << 18) / (kBlockWeights * n * (w.rows > 0 ? w.rows : 1)) + 1;
  parallel_for(blocks, grain, [&](int64_t b, int64_t e) {
    const int64_t c0 = b * kBlockWeights, c1 = std::min(w.cols, e * kBlockWeights);
    kern.gemm_t_f32(gs, n, w.rows, w.data, w.cols, c0, c1, dx);
  });
}

void matmul_i8_acc(const int8_t* xq, int64_t n, const TernaryView& w, int32_t* acc) {
  check_view(w, "matmul_i8_acc", "w");
  TRIX_CHECK_ARG(n >= 0, "matmul_i8_acc", "xq", "must have a non-negative row count, got ", n);
  detail::check_i8_depth("matmul_i8_acc", "w", w.cols);
  check_out("matmul_i8_acc", "out", acc, w.rows, sizeof(int32_t), "xq", xq, w.cols, 1, n, w);
  if (n == 0 || w.rows == 0) return;
  kernels::par_gemm_i8(kernels::active(), xq, n, w.cols, w.data, 0, w.rows, acc, w.rows);
}

void matmul_i8(const int8_t* xq, const float* xscale, int64_t n, const TernaryView& w, float* y) {
  check_view(w, "matmul_i8", "w");
  TRIX_CHECK_ARG(n >= 0, "matmul_i8", "xq", "must have a non-negative row count, got ", n);
  detail::check_i8_depth("matmul_i8", "w", w.cols);
  check_out("matmul_i8", "out", y, w.rows, sizeof(float), "xq", xq, w.cols, 1, n, w);
  detail::check_no_overlap("matmul_i8", "out", y, detail::bytes_of(n * w.rows, sizeof(float)), "xscale", xscale,
                           detail::bytes_of(n, sizeof(float)));
  if (n == 0 || w.rows == 0) return;
  const kernels::Kernels& kern = kernels::active();
  const kernels::SharedI8 xs(kern, xq, n, w.cols);
  parallel_for(w.rows, kernels::row_grain(n, w.cols), [&](int64_t b, int64_t e) {
    // Each chunk's int32 products in a buffer its thread keeps: a fresh n x rows vector per call
    // costs page faults comparable to the product.
    thread_local std::vector<int32_t> acc;
    const int64_t cols = e - b;
    if (acc.size() < static_cast<size_t>(n * cols)) acc.resize(static_cast<size_t>(n * cols));
    xs.gemm(w.data, b, e, acc.data(), cols);
    const float* sc = detail::row_scales(w, b, e);
    for (int64_t i = 0; i < n; ++i) kern.rescale_i32(acc.data() + i * cols, cols, xscale[i], sc, y + i * w.rows + b);
  }, kernels::kI8ChunksPerThread);
}

void matmul_a8(const float* x, int64_t n, const TernaryView& w, float* y) {
  check_view(w, "matmul_a8", "w");
  TRIX_CHECK_ARG(n >= 0, "matmul_a8", "x", "must have a non-negative row count, got ", n);
  check_out("matmul_a8", "out", y, w.rows, sizeof(float), "x", x, w.cols, sizeof(float), n, w);
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> xs;
  if (xq.size() < static_cast<size_t>(n * w.cols)) xq.resize(static_cast<size_t>(n * w.cols));
  if (xs.size() < static_cast<size_t>(n)) xs.resize(static_cast<size_t>(n));
  quantize_activations(x, n, w.cols, xq.data(), xs.data());
  matmul_i8(xq.data(), xs.data(), n, w, y);
}

}  // namespace trix
