// A packed matrix prepared for repeated products: an owning copy of the public format plus a
// private layout the fastest kernels read (for AVX-512: rows interleaved 16 at a time so a float
// GEMV is a table lookup per 4 weights). Build it once at load time; it never goes stale because it
// owns its copy (changing the source matrix afterwards does not change it). It costs twice the
// packed size in memory. Results equal the TernaryView functions' within the float tolerance of
// docs/benchmarks.md (integer paths: identical).
#pragma once
#include <cstdint>
#include <vector>

#include "trix/pack.h"

namespace trix {

class PreparedMatrix {
 public:
  PreparedMatrix() = default;
  // Copies w (data and scales) and builds the private layout; checks w as matmul does.
  explicit PreparedMatrix(const TernaryView& w);

  int64_t rows() const { return packed_.rows; }
  int64_t cols() const { return packed_.cols; }
  // The public-format copy (with its scales).
  TernaryView view() const { return packed_.view(); }
  // Bytes held (public copy, private layout and scales).
  int64_t nbytes() const;
  // Internal: the private layout (see src/kernels/kernels.h).
  const uint8_t* layout() const { return layout_.data(); }

 private:
  PackedTernary packed_;
  std::vector<uint8_t> layout_;
};

// As matmul / matmul_t / matmul_i8_acc / matmul_i8 / matmul_a8 in trix/matmul.h, on a prepared matrix.
void matmul(const float* x, int64_t n, const PreparedMatrix& w, float* y);
void matmul_t(const float* g, int64_t n, const PreparedMatrix& w, float* dx);
void matmul_i8_acc(const int8_t* xq, int64_t n, const PreparedMatrix& w, int32_t* acc);
void matmul_i8(const int8_t* xq, const float* xscale, int64_t n, const PreparedMatrix& w, float* y);
void matmul_a8(const float* x, int64_t n, const PreparedMatrix& w, float* y);

}  // namespace trix
