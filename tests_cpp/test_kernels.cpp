// Every SIMD level this CPU supports against kernels::scalar(), in one run: awkward sizes,
// adversarial int8 inputs (all weights -1, activations +127 / -128, K up to 16384), row sub-ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "test_util.h"
#include "trix/cpu.h"
#include "trix/pack.h"

namespace {

using trix::SimdLevel;
using trix::kernels::Kernels;

std::vector<uint8_t> pack(const std::vector<int8_t>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> p(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  trix::pack_int8(w.data(), rows, cols, p.data());
  return p;
}

std::vector<SimdLevel> simd_levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : trix::available_simd_levels())
    if (l != SimdLevel::scalar) out.push_back(l);
  return out;
}

// Float tolerance: the levels only reorder additions of +-x, so the error is bounded by
// k * eps * sum|x| (documented in docs/benchmarks.md).
float f32_tol(const float* x, int64_t k) {
  double s = 0;
  for (int64_t c = 0; c < k; ++c) s += std::fabs(x[c]);
  return static_cast<float>(4.0 * k * 1.2e-7 * s / std::sqrt(static_cast<double>(k)) + 1e-6 * s + 1e-30);
}

void check_i8(const Kernels& kern, const std::vector<int8_t>& x, int64_t n, int64_t k, const std::vector<uint8_t>& w,
              int64_t m0, int64_t m1, const std::string& what) {
  const int64_t ldy = m1 - m0;
  std::vector<int32_t> ref(static_cast<size_t>(n * ldy)), got(ref.size(), 12345);
  trix::kernels::scalar().gemm_i8(x.data(), n, k, w.data(), m0, m1, ref.data(), ldy);
  kern.gemm_i8(x.data(), n, k, w.data(), m0, m1, got.data(), ldy);
  ASSERT_EQ(ref, got) << kern.name << " " << what;
}

TEST(Kernels, EveryLevelIsListedAndSelectable) {
  const auto levels = trix::available_simd_levels();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), SimdLevel::scalar);
  EXPECT_EQ(levels.back(), trix::best_simd_level());
  const SimdLevel before = trix::simd_level();
  for (SimdLevel l : levels) {
    trix::set_simd_level(l);
    EXPECT_EQ(trix::simd_level(), l);
    EXPECT_STREQ(trix::kernels::active().name, trix::simd_level_name(l));
    EXPECT_EQ(trix::parse_simd_level(trix::simd_level_name(l)), l);
  }
  trix::set_simd_level(before);
  EXPECT_THROW(trix::parse_simd_level("sse9"), std::invalid_argument);
#if defined(__x86_64__)
  EXPECT_FALSE(trix::simd_level_supported(SimdLevel::neon));
  EXPECT_THROW(trix::set_simd_level(SimdLevel::neon), std::invalid_argument);
#elif defined(__aarch64__)
  EXPECT_TRUE(trix::simd_level_supported(SimdLevel::neon));
  EXPECT_FALSE(trix::simd_level_supported(SimdLevel::avx2));
#endif
}

// TRIX_EXPECT_LEVEL (set by .ci/neon.sh and usable anywhere) pins which level must be the best one,
// so a CI run proves it exercised the level it meant to.
TEST(Kernels, ExpectedBestLevel) {
  const char* want = std::getenv("TRIX_EXPECT_LEVEL");
  if (want == nullptr) GTEST_SKIP() << "TRIX_EXPECT_LEVEL not set";
  EXPECT_STREQ(trix::simd_level_name(trix::best_simd_level()), want);
}

TEST(Kernels, Int8MatchesScalarOnAwkwardSizes) {
  for (SimdLevel l : simd_levels()) {
    const Kernels& kern = *trix::kernels::for_level(l);
    uint32_t seed = 1;
    for (int64_t k : trix_test::awkward_sizes())
      for (int64_t m : {1, 3, 4, 5, 17, 33}) {
        const auto w = pack(trix_test::random_ternary(m * k, seed++), m, k);
        for (int64_t n : {1, 2, 3, 5}) {
          const auto x = trix_test::random_int8(n * k, seed++);
          check_i8(kern, x, n, k, w, 0, m, "n=" + std::to_string(n) + " m=" + std::to_string(m) + " k=" + std::to_string(k));
        }
      }
  }
}

TEST(Kernels, Int8RowSubrangesAndManyRows) {
  for (SimdLevel l : simd_levels()) {
    const Kernels& kern = *trix::kernels::for_level(l);
    const int64_t m = 70, k = 300, n = 9;
    const auto w = pack(trix_test::random_ternary(m * k, 7), m, k);
    const auto x = trix_test::random_int8(n * k, 8);
    for (auto [m0, m1] : {std::pair<int64_t, int64_t>{0, 70}, {1, 2}, {3, 40}, {17, 70}, {5, 22}})
      check_i8(kern, x, n, k, w, m0, m1, "rows " + std::to_string(m0) + ".." + std::to_string(m1));
  }
}

TEST(Kernels, Int8AdversarialExtremesAreExact) {
  for (int64_t k : {int64_t{255}, int64_t{4096}, int64_t{16384}, int64_t{16383}}) {
    const int64_t m = 5, n = 4;
    for (int wv : {-1, 1}) {
      const auto w = pack(std::vector<int8_t>(static_cast<size_t>(m * k), static_cast<int8_t>(wv)), m, k);
      std::vector<int8_t> x(static_cast<size_t>(n * k));
      for (int64_t c = 0; c < k; ++c) {
        x[c] = 127;                                   // row 0: all +127
        x[k + c] = -128;                              // row 1: all -128
        x[2 * k + c] = (c % 2) ? 127 : -128;          // row 2: alternating
        x[3 * k + c] = (c % 64 < 32) ? -128 : 127;    // row 3: runs of one plane
      }
      std::vector<int32_t> ref(static_cast<size_t>(n * m));
      trix::kernels::scalar().gemm_i8(x.data(), n, k, w.data(), 0, m, ref.data(), m);
      // The reference itself against closed forms: no overflow anywhere.
      EXPECT_EQ(ref[0], static_cast<int32_t>(wv * 127 * k));
      EXPECT_EQ(ref[m], static_cast<int32_t>(wv * -128 * k));
      for (SimdLevel l : simd_levels())
        check_i8(*trix::kernels::for_level(l), x, n, k, w, 0, m, "adversarial k=" + std::to_string(k));
    }
  }
}

TEST(Kernels, FloatMatchesScalarWithinTolerance) {
  for (SimdLevel l : simd_levels()) {
    const Kernels& kern = *trix::kernels::for_level(l);
    uint32_t seed = 100;
    for (int64_t k : trix_test::awkward_sizes())
      for (int64_t m : {1, 4, 5, 33})
        for (int64_t n : {1, 2, 5}) {
          const auto w = pack(trix_test::random_ternary(m * k, seed++), m, k);
          const auto x = trix_test::random_floats(n * k, seed++);
          std::vector<float> ref(static_cast<size_t>(n * m)), got(ref.size(), -7.0f);
          trix::kernels::scalar().gemm_f32(x.data(), n, k, w.data(), 0, m, ref.data(), m);
          kern.gemm_f32(x.data(), n, k, w.data(), 0, m, got.data(), m);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < m; ++r)
              ASSERT_NEAR(got[i * m + r], ref[i * m + r], f32_tol(x.data() + i * k, k))
                  << kern.name << " n=" << n << " m=" << m << " k=" << k;
        }
  }
}

TEST(Kernels, FloatZeroWeightIgnoresInfinity) {
  // The reference skips zero weights; SIMD levels must not turn 0 * inf into NaN.
  const int64_t k = 200, m = 3;
  std::vector<int8_t> wq(static_cast<size_t>(m * k), 0);
  wq[5] = 1;
  wq[k + 7] = -1;
  const auto w = pack(wq, m, k);
  std::vector<float> x(static_cast<size_t>(k), 1.0f);
  x[100] = INFINITY;
  x[150] = NAN;
  for (SimdLevel l : simd_levels()) {
    std::vector<float> y(static_cast<size_t>(m));
    trix::kernels::for_level(l)->gemm_f32(x.data(), 1, k, w.data(), 0, m, y.data(), m);
    EXPECT_EQ(y[0], 1.0f) << trix::simd_level_name(l);
    EXPECT_EQ(y[1], -1.0f) << trix::simd_level_name(l);
    EXPECT_EQ(y[2], 0.0f) << trix::simd_level_name(l);
  }
}

TEST(Kernels, TransposedIsBitIdenticalToScalar) {
  // Every level adds +-g[m] into dx in the scalar's row order, so the results are identical.
  for (SimdLevel l : simd_levels()) {
    const Kernels& kern = *trix::kernels::for_level(l);
    uint32_t seed = 300;
    for (int64_t k : trix_test::awkward_sizes())
      for (int64_t m : {1, 5, 33})
        for (int64_t n : {1, 3}) {
          const auto w = pack(trix_test::random_ternary(m * k, seed++), m, k);
          const auto g = trix_test::random_floats(n * m, seed++);
          std::vector<float> ref(static_cast<size_t>(n * k), -3.0f), got(ref.size(), -3.0f);
          trix::kernels::scalar().gemm_t_f32(g.data(), n, m, w.data(), k, 0, k, ref.data());
          kern.gemm_t_f32(g.data(), n, m, w.data(), k, 0, k, got.data());
          ASSERT_EQ(ref, got) << kern.name << " n=" << n << " m=" << m << " k=" << k;
          if (k > 128) {  // a column range starting at a block boundary leaves other columns alone
            std::vector<float> part(static_cast<size_t>(n * k), -3.0f);
            kern.gemm_t_f32(g.data(), n, m, w.data(), k, 128, k, part.data());
            for (int64_t i = 0; i < n; ++i)
              for (int64_t c = 0; c < k; ++c)
                ASSERT_EQ(part[i * k + c], c < 128 ? -3.0f : ref[i * k + c]) << kern.name << " c=" << c;
          }
        }
  }
}

}  // namespace
