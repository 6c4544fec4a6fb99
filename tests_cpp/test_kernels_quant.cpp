// The activation quantizer's kernels and the two-step int8 product (prep_i8 + gemm_i8_prep) at every
// level this CPU has, against kernels::scalar(): awkward lengths, exact rounding ties, the clamp,
// signed zeros, subnormals, and inf / NaN at every position of a row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "test_util.h"
#include "trix/cpu.h"
#include "trix/matmul.h"
#include "trix/pack.h"
#include "trix/quantize.h"

namespace {

using trix::kernels::Kernels;

std::vector<const Kernels*> all_levels() {
  std::vector<const Kernels*> out;
  for (trix::SimdLevel l : trix::available_simd_levels()) out.push_back(trix::kernels::for_level(l));
  return out;
}

const std::vector<int64_t>& lengths() {
  static const std::vector<int64_t> s{0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 4097};
  return s;
}

// Values whose products with inv = 1 are exact halves (ties), the clamp's edges, zeros of both
// signs, subnormals and plain noise, in a pattern that reaches every lane and the tail.
std::vector<float> hard_row(int64_t k, uint32_t seed) {
  const float pool[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 127.0f, -127.0f,
                        127.49f, -127.5f, 0.0f, -0.0f, 1e-40f, -1e-40f, 0.49999997f, -0.50000006f};
  std::vector<float> v = trix_test::random_floats(k, seed, 40.0f);
  for (int64_t c = 0; c < k; c += 3) v[static_cast<size_t>(c)] = pool[(c / 3 + seed) % (sizeof pool / sizeof *pool)];
  return v;
}

TEST(KernelsQuant, AbsmaxAndQuantizeMatchScalarAtEveryLevel) {
  const Kernels& ref = trix::kernels::scalar();
  for (const Kernels* kern : all_levels())
    for (int64_t k : lengths())
      for (uint32_t seed : {1u, 2u, 3u}) {
        const std::vector<float> x = hard_row(k, seed);
        EXPECT_EQ(kern->absmax_bits(x.data(), k), ref.absmax_bits(x.data(), k)) << kern->name << " k=" << k;
        for (float inv : {1.0f, 127.0f / 126.9f, 0.37f}) {
          std::vector<int8_t> a(static_cast<size_t>(k) + 1, 77), b(a);
          ref.quantize_i8(x.data(), k, inv, a.data());
          kern->quantize_i8(x.data(), k, inv, b.data());
          ASSERT_EQ(a, b) << kern->name << " k=" << k << " inv=" << inv;  // b[k] = 77: nothing written past k
        }
      }
}

TEST(KernelsQuant, AbsmaxFlagsInfAndNanAtEveryPosition) {
  const float bad[] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                       std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()};
  for (const Kernels* kern : all_levels())
    for (int64_t k : {1, 16, 17, 33, 100})
      for (int64_t pos = 0; pos < k; ++pos)
        for (float b : bad) {
          std::vector<float> x = trix_test::random_floats(k, 9);
          x[static_cast<size_t>(pos)] = b;
          EXPECT_GE(kern->absmax_bits(x.data(), k), 0x7F800000u) << kern->name << " k=" << k << " pos=" << pos;
        }
}

TEST(KernelsQuant, QuantizeActivationsIsLevelIndependent) {
  const int64_t n = 5, k = 333;
  const std::vector<float> x = trix_test::random_floats(n * k, 4, 3.0f);
  const trix::SimdLevel before = trix::simd_level();
  std::vector<int8_t> q0;
  std::vector<float> s0;
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<int8_t> q(static_cast<size_t>(n * k));
    std::vector<float> s(static_cast<size_t>(n));
    trix::quantize_activations(x.data(), n, k, q.data(), s.data());
    if (q0.empty()) {
      q0 = q;
      s0 = s;
    }
    EXPECT_EQ(q, q0) << trix::simd_level_name(l);
    EXPECT_EQ(s, s0) << trix::simd_level_name(l);
    std::vector<float> bad(x);
    bad[static_cast<size_t>(2 * k + 300)] = std::numeric_limits<float>::quiet_NaN();
    try {
      trix::quantize_activations(bad.data(), n, k, q.data(), s.data());
      ADD_FAILURE() << "no error for NaN at " << trix::simd_level_name(l);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("at [2, 300]"), std::string::npos) << e.what();
    }
  }
  trix::set_simd_level(before);
}

TEST(KernelsQuant, TwoStepInt8ProductMatchesScalar) {
  const Kernels& ref = trix::kernels::scalar();
  for (const Kernels* kern : all_levels()) {
    if (kern->prep_i8 == nullptr) continue;
    for (int64_t k : {1, 33, 128, 129, 255, 257, 1000})
      for (int64_t n : {1, 2, 5, 9}) {
        const int64_t m = 37;
        const std::vector<int8_t> x = trix_test::random_int8(n * k, static_cast<uint32_t>(k + n));
        const std::vector<int8_t> t = trix_test::random_ternary(m * k, static_cast<uint32_t>(k));
        std::vector<uint8_t> w(static_cast<size_t>(m * trix::packed_row_bytes(k)));
        trix::pack_int8(t.data(), m, k, w.data());
        const int64_t xs = kern->i8_row_bytes(k);
        ASSERT_EQ(xs % 64, 0) << kern->name;
        std::vector<int8_t> xr(static_cast<size_t>(n * xs) + 64);
        int8_t* xa = xr.data() + (64 - reinterpret_cast<uintptr_t>(xr.data()) % 64) % 64;
        std::vector<int32_t> sums(static_cast<size_t>(n));
        kern->prep_i8(x.data(), n, k, xa, sums.data());
        for (auto [m0, m1] : {std::pair<int64_t, int64_t>{0, m}, {3, 20}, {17, 18}}) {
          std::vector<int32_t> a(static_cast<size_t>(n * (m1 - m0))), b(a.size(), -1);
          ref.gemm_i8(x.data(), n, k, w.data(), m0, m1, a.data(), m1 - m0);
          kern->gemm_i8_prep(xa, sums.data(), n, k, w.data(), m0, m1, b.data(), m1 - m0);
          ASSERT_EQ(a, b) << kern->name << " k=" << k << " n=" << n << " rows " << m0 << ".." << m1;
        }
      }
  }
}

}  // namespace

namespace {

TEST(KernelsQuant, MatmulA8IsQuantizeThenMatmulI8) {
  for (int64_t n : {0, 1, 3, 17})
    for (int64_t k : {1, 130, 1000}) {
      const int64_t m = 45;
      const std::vector<int8_t> t = trix_test::random_ternary(m * k, static_cast<uint32_t>(k));
      std::vector<uint8_t> w(static_cast<size_t>(m * trix::packed_row_bytes(k)));
      trix::pack_int8(t.data(), m, k, w.data());
      std::vector<float> scales = trix_test::random_floats(m, 5);
      const trix::TernaryView v{w.data(), m, k, scales.data(), m};
      const std::vector<float> x = trix_test::random_floats(n * k, static_cast<uint32_t>(n + k), 2.0f);
      std::vector<int8_t> xq(static_cast<size_t>(n * k));
      std::vector<float> xs(static_cast<size_t>(n)), a(static_cast<size_t>(n * m)), b(a.size());
      trix::quantize_activations(x.data(), n, k, xq.data(), xs.data());
      trix::matmul_i8(xq.data(), xs.data(), n, v, a.data());
      trix::matmul_a8(x.data(), n, v, b.data());
      EXPECT_EQ(a, b) << "n=" << n << " k=" << k;
    }
  std::vector<float> bad(8, 1.0f);
  bad[5] = std::numeric_limits<float>::infinity();
  const std::vector<int8_t> t(8, 1);
  std::vector<uint8_t> w(static_cast<size_t>(trix::packed_row_bytes(8)));
  trix::pack_int8(t.data(), 1, 8, w.data());
  float y = 0;
  EXPECT_THROW(trix::matmul_a8(bad.data(), 1, trix::TernaryView{w.data(), 1, 8, nullptr, 0}, &y),
               std::invalid_argument);
}

}  // namespace

namespace {

TEST(KernelsQuant, RescaleMatchesScalarAtEveryLevel) {
  const Kernels& ref = trix::kernels::scalar();
  for (const Kernels* kern : all_levels())
    for (int64_t n : lengths()) {
      std::vector<int32_t> acc(static_cast<size_t>(n));
      std::mt19937 g(static_cast<uint32_t>(n));
      for (size_t j = 0; j < acc.size(); ++j)  // rounding cases (> 2^24) and the int32 extremes
        acc[j] = j % 5 == 0 ? std::numeric_limits<int32_t>::min() + static_cast<int32_t>(j)
                            : (j % 5 == 1 ? std::numeric_limits<int32_t>::max() - static_cast<int32_t>(j)
                                          : static_cast<int32_t>(g()));
      const std::vector<float> sc = trix_test::random_floats(n, 3);
      std::vector<float> a(static_cast<size_t>(n) + 1, 7.0f), b(a);
      ref.rescale_i32(acc.data(), n, 0.0123f, sc.data(), a.data());
      kern->rescale_i32(acc.data(), n, 0.0123f, sc.data(), b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << kern->name << " n=" << n;
    }
}

}  // namespace
