// trix::PreparedMatrix (the private 16-row layout and the table-lookup float GEMV) against the
// scalar reference at every level this CPU supports: awkward sizes, row counts around the 16-row
// groups, several activation rows, scales, threads, zero weights under inf/NaN, int8 paths exact.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "test_util.h"
#include "trix/cpu.h"
#include "trix/matmul.h"
#include "trix/pack.h"
#include "trix/prepared.h"
#include "trix/threads.h"

namespace {

using trix::SimdLevel;

struct LevelGuard {
  SimdLevel before = trix::simd_level();
  int threads = trix::get_num_threads();
  ~LevelGuard() {
    trix::set_simd_level(before);
    trix::set_num_threads(threads);
  }
};

trix::PackedTernary make(int64_t rows, int64_t cols, uint32_t seed, int64_t n_scales) {
  trix::PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.data.resize(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  const auto q = trix_test::random_ternary(rows * cols, seed);
  trix::pack_int8(q.data(), rows, cols, p.data.data());
  const auto s = trix_test::random_floats(n_scales, seed + 1);
  for (float v : s) p.scales.push_back(std::fabs(v) + 0.1f);
  return p;
}

// The tolerance of test_kernels.cpp (reordered additions of +-x), times the largest scale.
float tol(const float* x, int64_t k, float scale) {
  double s = 0;
  for (int64_t c = 0; c < k; ++c) s += std::fabs(x[c]);
  return static_cast<float>((4.0 * k * 1.2e-7 * s / std::sqrt(static_cast<double>(k)) + 1e-6 * s) * scale + 1e-30);
}

std::vector<float> scalar_matmul(const std::vector<float>& x, int64_t n, const trix::PackedTernary& w) {
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  const SimdLevel before = trix::simd_level();
  trix::set_simd_level(SimdLevel::scalar);
  trix::matmul(x.data(), n, w.view(), y.data());
  trix::set_simd_level(before);
  return y;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, const std::vector<float>& x, int64_t n,
                  const trix::PackedTernary& w, const std::string& what) {
  float smax = 1.0f;
  for (float s : w.scales) smax = std::max(smax, s);
  for (int64_t i = 0; i < n; ++i) {
    const float t = tol(x.data() + i * w.cols, w.cols, smax);
    for (int64_t m = 0; m < w.rows; ++m)
      ASSERT_NEAR(got[i * w.rows + m], ref[i * w.rows + m], t) << what << " i=" << i << " m=" << m;
  }
}

TEST(KernelsPrepared, LayoutInterleaves16Rows) {
  const auto w = make(37, 300, 1, 0);
  const trix::PreparedMatrix p(w.view());
  const int64_t rb = trix::packed_row_bytes(300);
  EXPECT_EQ(p.rows(), 37);
  EXPECT_EQ(p.cols(), 300);
  EXPECT_EQ(p.nbytes(), 37 * rb + 48 * rb + 64);
  for (int64_t m = 0; m < 48; ++m)
    for (int64_t pos = 0; pos < rb; ++pos)
      ASSERT_EQ(p.layout()[(m / 16) * rb * 16 + (pos / 4) * 64 + (m % 16) * 4 + pos % 4], m < 37 ? w.data[m * rb + pos] : trix::kZeroByte);
}

TEST(KernelsPrepared, EmptyShapes) {
  LevelGuard guard;
  for (SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    for (auto [m, k] : {std::pair<int64_t, int64_t>{0, 5}, {3, 0}, {0, 0}}) {
      const auto w = make(m, k, 9, 1);
      const trix::PreparedMatrix p(w.view());
      std::vector<float> x(static_cast<size_t>(2 * k) + 1, 1.0f), y(static_cast<size_t>(2 * m) + 1, -1.0f);
      trix::matmul(x.data(), 2, p, y.data());
      for (int64_t i = 0; i < 2 * m; ++i) EXPECT_EQ(y[i], 0.0f) << trix::simd_level_name(l) << " m=" << m << " k=" << k;
      EXPECT_EQ(y[2 * m], -1.0f);
    }
  }
}

TEST(KernelsPrepared, OwnsItsCopy) {
  auto w = make(20, 130, 2, 1);
  const trix::PreparedMatrix p(w.view());
  const auto x = trix_test::random_floats(130, 3);
  const auto ref = scalar_matmul(x, 1, w);
  std::fill(w.data.begin(), w.data.end(), trix::kZeroByte);  // the source changes; the prepared copy does not
  w.scales[0] = 100.0f;
  std::vector<float> got(20);
  trix::matmul(x.data(), 1, p, got.data());
  for (int64_t m = 0; m < 20; ++m) EXPECT_NE(got[m], 0.0f);
  auto w2 = make(20, 130, 2, 1);
  expect_close(got, ref, x, 1, w2, "owns copy");
}

TEST(KernelsPrepared, FloatMatchesScalarAtEveryLevel) {
  LevelGuard guard;
  uint32_t seed = 500;
  for (SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    for (int64_t k : trix_test::awkward_sizes())
      for (int64_t m : {1, 5, 15, 16, 17, 33, 63, 64, 65, 129})
        for (int64_t n : {1, 3}) {
          const auto w = make(m, k, seed++, (m % 2) ? m : 1);
          const auto x = trix_test::random_floats(n * k, seed++);
          const trix::PreparedMatrix p(w.view());
          const auto ref = scalar_matmul(x, n, w);
          std::vector<float> got(ref.size(), -7.0f);
          trix::matmul(x.data(), n, p, got.data());
          expect_close(got, ref, x, n, w,
                       std::string(trix::simd_level_name(l)) + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
                           " n=" + std::to_string(n));
        }
  }
}

TEST(KernelsPrepared, FloatLargeKManyRowsAndThreads) {
  LevelGuard guard;
  for (SimdLevel l : trix::available_simd_levels()) {
    if (l == SimdLevel::scalar) continue;
    trix::set_simd_level(l);
    for (int64_t k : {4096, 16384}) {
      const int64_t m = 257, n = 5;
      const auto w = make(m, k, 900 + static_cast<uint32_t>(k), 0);
      const auto x = trix_test::random_floats(n * k, 901);
      const trix::PreparedMatrix p(w.view());
      const auto ref = scalar_matmul(x, n, w);
      std::vector<float> one(ref.size()), two(ref.size());
      trix::set_num_threads(1);
      trix::matmul(x.data(), n, p, one.data());
      trix::set_num_threads(2);
      trix::matmul(x.data(), n, p, two.data());
      ASSERT_EQ(one, two) << trix::simd_level_name(l) << " k=" << k;  // same instructions per row
      expect_close(one, ref, x, n, w, std::string(trix::simd_level_name(l)) + " k=" + std::to_string(k));
    }
  }
}

TEST(KernelsPrepared, ManyActivationRowsAcrossTableChunks) {
  // n larger than one chunk of tables (the chunk is ~2 MiB of tables: 16 rows at k = 4096).
  LevelGuard guard;
  const int64_t m = 40, k = 4096, n = 37;
  const auto w = make(m, k, 77, m);
  const auto x = trix_test::random_floats(n * k, 78);
  const trix::PreparedMatrix p(w.view());
  const auto ref = scalar_matmul(x, n, w);
  for (SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<float> got(ref.size(), -1.0f);
    trix::matmul(x.data(), n, p, got.data());
    expect_close(got, ref, x, n, w, trix::simd_level_name(l));
  }
}

TEST(KernelsPrepared, ZeroWeightIgnoresInfinityAndNaN) {
  LevelGuard guard;
  const int64_t k = 200, m = 3;
  std::vector<int8_t> wq(static_cast<size_t>(m * k), 0);
  wq[5] = 1;
  wq[k + 7] = -1;
  wq[2 * k + 101] = 1;
  trix::PackedTernary w;
  w.rows = m;
  w.cols = k;
  w.data.resize(static_cast<size_t>(m * trix::packed_row_bytes(k)));
  trix::pack_int8(wq.data(), m, k, w.data.data());
  const trix::PreparedMatrix p(w.view());
  std::vector<float> x(static_cast<size_t>(k), 1.0f);
  x[100] = INFINITY;  // same table as column 68 (byte 4, high nibble pair 68 / 100)
  x[69] = NAN;        // same table as column 101
  x[101] = 2.0f;
  for (SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<float> y(static_cast<size_t>(m));
    trix::matmul(x.data(), 1, p, y.data());
    EXPECT_EQ(y[0], 1.0f) << trix::simd_level_name(l);
    EXPECT_EQ(y[1], -1.0f) << trix::simd_level_name(l);
    EXPECT_EQ(y[2], 2.0f) << trix::simd_level_name(l);
  }
}

TEST(KernelsPrepared, IntegerPathsAreIdenticalToTheView) {
  LevelGuard guard;
  const int64_t m = 65, k = 16384, n = 3;
  trix::PackedTernary w;
  w.rows = m;
  w.cols = k;
  w.data.assign(static_cast<size_t>(m * trix::packed_row_bytes(k)), 0);  // every weight -1
  w.scales = {0.5f};
  std::vector<int8_t> xq(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) xq[i] = (i % 3 == 0) ? -128 : 127;
  const std::vector<float> xs{0.1f, 0.2f, 0.3f};
  const trix::PreparedMatrix p(w.view());
  for (SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<int32_t> a(static_cast<size_t>(n * m)), b(a.size());
    trix::matmul_i8_acc(xq.data(), n, w.view(), a.data());
    trix::matmul_i8_acc(xq.data(), n, p, b.data());
    ASSERT_EQ(a, b) << trix::simd_level_name(l);
    std::vector<float> ya(a.size()), yb(a.size());
    trix::matmul_i8(xq.data(), xs.data(), n, w.view(), ya.data());
    trix::matmul_i8(xq.data(), xs.data(), n, p, yb.data());
    ASSERT_EQ(ya, yb) << trix::simd_level_name(l);
  }
}

}  // namespace
