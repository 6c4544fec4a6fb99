// The int8 kernels' partial sums at every depth: the AVX2 kernels sum vpmaddubsw pairs in int16 and
// widen them every 8 (one activation row) or 16 (several) blocks of 128 weights, so depths around
// those boundaries, the adversarial extremes that bring an int16 sum exactly to -32768, and the
// deepest K the API accepts (2^23, where sum(code * x) reaches -2^31) must all match the scalar
// reference on every level, for one activation row (the GEMV path) and for several.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "test_util.h"
#include "trix/cpu.h"
#include "trix/pack.h"

namespace {

using trix::SimdLevel;

std::vector<uint8_t> pack(const std::vector<int8_t>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> p(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  trix::pack_int8(w.data(), rows, cols, p.data());
  return p;
}

void expect_levels_match(const std::vector<int8_t>& x, int64_t n, int64_t k, const std::vector<uint8_t>& w, int64_t m,
                         const std::string& what) {
  std::vector<int32_t> ref(static_cast<size_t>(n * m));
  trix::kernels::scalar().gemm_i8(x.data(), n, k, w.data(), 0, m, ref.data(), m);
  for (SimdLevel l : trix::available_simd_levels()) {
    if (l == SimdLevel::scalar) continue;
    std::vector<int32_t> got(ref.size(), 12345);
    trix::kernels::for_level(l)->gemm_i8(x.data(), n, k, w.data(), 0, m, got.data(), m);
    ASSERT_EQ(ref, got) << trix::simd_level_name(l) << " " << what;
  }
}

// x row r of n: all +127, all -128, alternating, runs of 32 (one plane each), in turn.
std::vector<int8_t> extreme_rows(int64_t n, int64_t k) {
  std::vector<int8_t> x(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c) {
      int8_t v = 127;
      switch (i % 4) {
        case 1: v = -128; break;
        case 2: v = (c % 2) ? 127 : -128; break;
        case 3: v = (c % 64 < 32) ? -128 : 127; break;
        default: break;
      }
      x[i * k + c] = v;
    }
  return x;
}

TEST(KernelsInt8Depth, RandomAroundWideningBoundaries) {
  uint32_t seed = 500;
  for (int64_t k : {1023, 1024, 1025, 1151, 2047, 2048, 2049, 3072, 3073, 4096 + 129})
    for (int64_t m : {1, 2, 3, 5, 17})
      for (int64_t n : {1, 2, 3, 4, 5, 7}) {
        const auto w = pack(trix_test::random_ternary(m * k, seed++), m, k);
        const auto x = trix_test::random_int8(n * k, seed++);
        expect_levels_match(x, n, k, w, m, "k=" + std::to_string(k) + " m=" + std::to_string(m) + " n=" + std::to_string(n));
      }
}

TEST(KernelsInt8Depth, ExtremesAroundWideningBoundaries) {
  for (int64_t k : {1024, 1025, 2048, 2049, 8192})
    for (int wv : {-1, 1})
      for (int64_t n : {1, 4, 5}) {
        const int64_t m = 3;
        const auto w = pack(std::vector<int8_t>(static_cast<size_t>(m * k), static_cast<int8_t>(wv)), m, k);
        expect_levels_match(extreme_rows(n, k), n, k, w, m,
                            "extreme k=" + std::to_string(k) + " w=" + std::to_string(wv) + " n=" + std::to_string(n));
      }
}

TEST(KernelsInt8Depth, DeepestAcceptedDepth) {
  // K = 2^23: all +1 weights (code 2) with x = -128 make sum(code * x) = -2^31 exactly; the result,
  // -2^30, must still be exact (one row: the scalar reference is slow under qemu and ASan).
  const int64_t k = int64_t{1} << 23, m = 1;
  const auto w = pack(std::vector<int8_t>(static_cast<size_t>(k), 1), m, k);
  for (int64_t n : {1, 2}) {
    const auto x = extreme_rows(n, k);
    std::vector<int32_t> ref(static_cast<size_t>(n * m));
    trix::kernels::scalar().gemm_i8(x.data(), n, k, w.data(), 0, m, ref.data(), m);
    EXPECT_EQ(ref[0], static_cast<int32_t>(127 * k));
    if (n > 1) EXPECT_EQ(ref[m], static_cast<int32_t>(-128 * k));
    expect_levels_match(x, n, k, w, m, "k=2^23 n=" + std::to_string(n));
  }
}

}  // namespace
