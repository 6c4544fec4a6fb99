#include "trix/prepared.h"

#include <algorithm>
#include <vector>

#include "contracts.h"
#include "kernels/kernels.h"
#include "lut_gemm.h"
#include "trix/error.h"
#include "trix/matmul.h"
#include "trix/threads.h"

namespace trix {

namespace detail {

bool lut_available() {
  const kernels::Kernels& kern = kernels::active();
  return kern.gemv_lut != nullptr && kern.lut_tables != nullptr;
}

std::vector<uint8_t> lut_layout(const TernaryView& w) {
  const int64_t rb = w.row_bytes(), groups = kernels::lut_groups(w.rows);
  std::vector<uint8_t> layout(static_cast<size_t>(groups * rb * kernels::kLutRows + kernels::kLutSlack), kZeroByte);
  for (int64_t m = 0; m < w.rows; ++m)
    for (int64_t pos = 0; pos < rb; ++pos) layout[kernels::lut_offset(rb, m, pos)] = w.data[m * rb + pos];
  return layout;
}

void lut_gemm(const float* x, int64_t n, int64_t k, const uint8_t* layout, int64_t m0, int64_t m1, float* y,
              int64_t ldy) {
  const kernels::Kernels& kern = kernels::active();
  if (n == 0 || m1 <= m0) return;
  const int64_t rb = packed_row_bytes(k), tf = kernels::lut_table_floats(k);
  const int64_t g_begin = m0 / kernels::kLutRows, g_end = kernels::lut_groups(m1);
  // Activation rows in chunks whose tables stay small (about 2 MiB); within a chunk, row groups in
  // spans whose weights stay in L2 while each activation row of the chunk passes over them.
  const int64_t nchunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{1} << 19) / tf));
  const int64_t span = std::max<int64_t>(1, (int64_t{1} << 18) / (rb * kernels::kLutRows));
  float* tables = static_cast<float*>(kernels::scratch(0, static_cast<size_t>(nchunk * tf) * sizeof(float)));
  const int64_t grain = std::max<int64_t>(1, ((int64_t{1} << 18) / std::max<int64_t>(1, k)) / kernels::kLutRows + 1);
  for (int64_t i0 = 0; i0 < n; i0 += nchunk) {
    const int64_t ni = std::min(nchunk, n - i0);
    parallel_for(ni, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) kern.lut_tables(x + (i0 + i) * k, k, tables + i * tf);
    });
    parallel_for(g_end - g_begin, grain, [&](int64_t b, int64_t e) {
      float tmp[kernels::kLutRows * 64];
      for (int64_t gs = g_begin + b; gs < g_begin + e; gs += std::min<int64_t>(span, 64)) {
        const int64_t ge = std::min(g_begin + e, gs + std::min<int64_t>(span, 64));
        const int64_t r0 = gs * kernels::kLutRows, r1 = std::min(m1, ge * kernels::kLutRows);
        for (int64_t i = 0; i < ni; ++i) {
          kern.gemv_lut(tables + i * tf, rb, layout, gs, ge, tmp);
          std::copy(tmp, tmp + (r1 - r0), y + (i0 + i) * ldy + (r0 - m0));
        }
      }
    });
  }
}

void lut_matmul(const float* x, int64_t n, const TernaryView& v, const uint8_t* layout, float* y) {
  if (!lut_available() || v.cols == 0) {
    matmul(x, n, v, y);  // a level without the table GEMV
    return;
  }
  lut_gemm(x, n, v.cols, layout, 0, v.rows, y, v.rows);
  if (v.n_scales == 0) return;
  const float* sc = row_scales(v, 0, v.rows);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < v.rows; ++m) y[i * v.rows + m] *= sc[m];
}

}  // namespace detail

PreparedMatrix::PreparedMatrix(const TernaryView& w) {
  check_view(w, "PreparedMatrix", "w");
  validate_packed(w.data, w.rows, w.cols, "PreparedMatrix");  // bytes from users are checked once, here
  packed_.rows = w.rows;
  packed_.cols = w.cols;
  packed_.data.assign(w.data, w.data + w.rows * w.row_bytes());
  packed_.scales.assign(w.scales, w.scales + w.n_scales);
  layout_ = detail::lut_layout(w);
}

int64_t PreparedMatrix::nbytes() const {
  return static_cast<int64_t>(packed_.data.size() + layout_.size() + 4 * packed_.scales.size());
}

void matmul(const float* x, int64_t n, const PreparedMatrix& w, float* y) {
  TRIX_CHECK_ARG(n >= 0, "matmul", "x", "must have a non-negative row count, got ", n);
  const TernaryView v = w.view();
  detail::check_no_overlap("matmul", "out", y, detail::bytes_of(n * v.rows, sizeof(float)), "x", x,
                           detail::bytes_of(n * v.cols, sizeof(float)));
  detail::lut_matmul(x, n, v, w.layout(), y);
}

void matmul_t(const float* g, int64_t n, const PreparedMatrix& w, float* dx) { matmul_t(g, n, w.view(), dx); }

void matmul_i8_acc(const int8_t* xq, int64_t n, const PreparedMatrix& w, int32_t* acc) {
  matmul_i8_acc(xq, n, w.view(), acc);
}

void matmul_i8(const int8_t* xq, const float* xscale, int64_t n, const PreparedMatrix& w, float* y) {
  matmul_i8(xq, xscale, n, w.view(), y);
}

void matmul_a8(const float* x, int64_t n, const PreparedMatrix& w, float* y) { matmul_a8(x, n, w.view(), y); }

}  // namespace trix
