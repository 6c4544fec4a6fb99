// Training operations against float64 references written independently here (dense effective
// weights, per-slot loops), bit-exact across SIMD levels and thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"
#include "trix/cpu.h"
#include "trix/threads.h"
#include "trix/train_ops.h"
#include "kernels/train_kernels.h"

namespace {

using trix_test::random_floats;
using trix_test::random_ternary;

struct Restore {
  trix::SimdLevel level = trix::simd_level();
  int threads = trix::get_num_threads();
  ~Restore() {
    trix::set_simd_level(level);
    trix::set_num_threads(threads);
  }
};

double act_ref(trix::Activation a, double v) {
  switch (a) {
    case trix::Activation::identity: return v;
    case trix::Activation::relu: return v > 0 ? v : 0;
    case trix::Activation::gelu: return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    case trix::Activation::silu: return v / (1 + std::exp(-v));
  }
  return v;
}

double act_grad_ref(trix::Activation a, double v) {
  const double e = 1e-6;  // central difference of the float64 reference: independent of the closed form
  if (a == trix::Activation::relu) return v > 0 ? 1 : 0;
  return (act_ref(a, v + e) - act_ref(a, v - e)) / (2 * e);
}

TEST(TrainGemm, MatchesFloat64OnAwkwardShapesAndStrides) {
  Restore r;
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    // Around every level's register block (6 x 16, 12 x 32) and the driver's blocks (72 rows, 512 columns).
    for (int64_t m : {1, 5, 6, 7, 12, 13, 73}) {
      for (int64_t n : {1, 15, 16, 17, 31, 33, 520}) {
        for (int64_t k : {1, 3, 257, 300}) {
          const auto a = random_floats(m * k, 1), b = random_floats(k * n, 2), c0 = random_floats(m * n, 3);
          for (bool trans_a : {false, true}) {
            for (bool acc : {false, true}) {
              std::vector<float> c = c0;
              const int64_t rsa = trans_a ? 1 : k, csa = trans_a ? m : 1;
              trix::train_gemm(m, n, k, a.data(), rsa, csa, b.data(), n, 1, c.data(), n, acc);
              for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) {
                  double ref = acc ? c0[i * n + j] : 0.0;
                  for (int64_t p = 0; p < k; ++p) ref += double(a[i * rsa + p * csa]) * b[p * n + j];
                  ASSERT_NEAR(c[i * n + j], ref, 1e-4 * std::sqrt(double(k)) + 1e-5)
                      << trix::simd_level_name(l) << " m=" << m << " n=" << n << " k=" << k;
                }
            }
          }
        }
      }
    }
  }
}

TEST(TrainGemm, ParallelIsBitIdenticalToSerialAtEveryThreadCount) {
  Restore r;
  // Above the threading threshold, with edges in both dimensions, several depth and column blocks.
  struct Shape {
    int64_t m, n, k;
  };
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    for (const Shape sh : {Shape{301, 203, 300}, Shape{13, 1100, 600}, Shape{700, 17, 257}}) {
      const auto a = random_floats(sh.m * sh.k, 7), b = random_floats(sh.k * sh.n, 8), c0 = random_floats(sh.m * sh.n, 9);
      for (bool trans_a : {false, true}) {
        const int64_t rsa = trans_a ? 1 : sh.k, csa = trans_a ? sh.m : 1;
        for (bool acc : {false, true}) {
          std::vector<float> ref = c0;
          trix::train_gemm(sh.m, sh.n, sh.k, a.data(), rsa, csa, b.data(), sh.n, 1, ref.data(), sh.n, acc);
          for (int t : {1, 2, 3, 8}) {
            trix::set_num_threads(t);
            std::vector<float> c = c0;
            trix::train_gemm_parallel(sh.m, sh.n, sh.k, a.data(), rsa, csa, b.data(), sh.n, 1, c.data(), sh.n, acc);
            ASSERT_EQ(c, ref) << trix::simd_level_name(l) << " threads " << t << " m=" << sh.m << " n=" << sh.n;
          }
        }
      }
    }
  }
}

struct FfnCase {
  int64_t n, d, h, tiles, k;
  std::vector<float> x, gy, gates, up_s, down_s;
  std::vector<int8_t> upq, downq;
  std::vector<int32_t> idx;
  trix::TiledCodes codes() const {
    return {{upq.data(), up_s.data(), tiles * h, d, 1}, {downq.data(), down_s.data(), tiles * d, h, 1}, tiles};
  }
};

FfnCase make_case(int64_t n, int64_t d, int64_t h, int64_t tiles, int64_t k, uint32_t seed) {
  FfnCase c{n, d, h, tiles, k, random_floats(n * d, seed), random_floats(n * d, seed + 1),
            random_floats(n * k, seed + 2), {0.37f}, {0.21f},
            random_ternary(tiles * h * d, seed + 3), random_ternary(tiles * d * h, seed + 4), {}};
  std::mt19937 g(seed + 5);
  for (int64_t i = 0; i < n * k; ++i) c.idx.push_back(static_cast<int32_t>(g() % (tiles + 1)) - 1);
  return c;
}

struct FfnOut {
  std::vector<float> y, pre, dx, dup, ddown, dg;
};

FfnOut run_ffn(const FfnCase& c, trix::Activation a, bool gated) {
  FfnOut o;
  o.y.resize(c.n * c.d);
  o.pre.resize(c.n * c.k * c.h);
  o.dx.resize(c.n * c.d);
  o.dup.assign(c.tiles * c.h * c.d, 7.0f);  // poison: unrouted tiles must be overwritten with zeros
  o.ddown.assign(c.tiles * c.d * c.h, 7.0f);
  o.dg.resize(c.n * c.k);
  const float* g = gated ? c.gates.data() : nullptr;
  trix::ffn_train_forward(c.x.data(), c.n, c.codes(), a, c.idx.data(), g, c.k, o.y.data(), o.pre.data());
  trix::ffn_train_backward(c.gy.data(), c.x.data(), c.n, c.codes(), a, c.idx.data(), g, c.k, o.pre.data(),
                           o.dx.data(), o.dup.data(), o.ddown.data(), gated ? o.dg.data() : nullptr);
  return o;
}

TEST(TrainFFN, ForwardAndBackwardMatchFloat64Reference) {
  for (trix::Activation a : {trix::Activation::relu, trix::Activation::gelu, trix::Activation::silu}) {
    for (int64_t k : {1, 2}) {
      const FfnCase c = make_case(37, 20, 9, 3, k, 11 + static_cast<uint32_t>(k));
      for (bool gated : {false, true}) {
        const FfnOut o = run_ffn(c, a, gated);
        std::vector<double> y(c.n * c.d, 0), dx(c.n * c.d, 0), dup(c.tiles * c.h * c.d, 0),
            ddown(c.tiles * c.d * c.h, 0), dg(c.n * c.k, 0);
        for (int64_t s = 0; s < c.n * c.k; ++s) {
          const int64_t i = s / c.k, t = c.idx[s];
          if (t < 0) continue;
          const double gv = gated ? c.gates[s] : 1.0;
          std::vector<double> pre(c.h), da(c.h);
          for (int64_t r = 0; r < c.h; ++r) {
            double v = 0;
            for (int64_t q = 0; q < c.d; ++q) v += c.x[i * c.d + q] * 0.37 * c.upq[(t * c.h + r) * c.d + q];
            pre[r] = v;
            EXPECT_NEAR(o.pre[s * c.h + r], v, 1e-4);
          }
          for (int64_t q = 0; q < c.d; ++q) {
            double z = 0;
            for (int64_t r = 0; r < c.h; ++r) z += act_ref(a, pre[r]) * 0.21 * c.downq[(t * c.d + q) * c.h + r];
            y[i * c.d + q] += gv * z;
          }
          for (int64_t r = 0; r < c.h; ++r) {
            double v = 0;
            for (int64_t q = 0; q < c.d; ++q) v += c.gy[i * c.d + q] * 0.21 * c.downq[(t * c.d + q) * c.h + r];
            dg[s] += v * act_ref(a, pre[r]);
            da[r] = gv * v * act_grad_ref(a, pre[r]);
          }
          for (int64_t q = 0; q < c.d; ++q)
            for (int64_t r = 0; r < c.h; ++r) {
              dx[i * c.d + q] += da[r] * 0.37 * c.upq[(t * c.h + r) * c.d + q];
              dup[(t * c.h + r) * c.d + q] += da[r] * c.x[i * c.d + q];
              ddown[(t * c.d + q) * c.h + r] += gv * c.gy[i * c.d + q] * act_ref(a, pre[r]);
            }
        }
        const double tol = 2e-4;
        for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(o.y[i], y[i], tol) << "y " << i;
        for (size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(o.dx[i], dx[i], tol) << "dx " << i;
        for (size_t i = 0; i < dup.size(); ++i) ASSERT_NEAR(o.dup[i], dup[i], tol) << "dup " << i;
        for (size_t i = 0; i < ddown.size(); ++i) ASSERT_NEAR(o.ddown[i], ddown[i], tol) << "ddown " << i;
        if (gated)
          for (size_t i = 0; i < dg.size(); ++i) ASSERT_NEAR(o.dg[i], dg[i], tol) << "dgates " << i;
      }
    }
  }
}

TEST(TrainFFN, UnroutedTileGradientIsExactlyZero) {
  FfnCase c = make_case(50, 16, 8, 4, 1, 3);
  for (auto& t : c.idx) t = t == 2 ? 1 : (t < 0 ? 0 : t);  // nothing reaches tile 2
  const FfnOut o = run_ffn(c, trix::Activation::relu, false);
  for (int64_t i = 2 * c.h * c.d; i < 3 * c.h * c.d; ++i) ASSERT_EQ(o.dup[i], 0.0f);
  for (int64_t i = 2 * c.d * c.h; i < 3 * c.d * c.h; ++i) ASSERT_EQ(o.ddown[i], 0.0f);
}

TEST(TrainFFN, BitExactAcrossThreadCountsAndLevels) {
  Restore r;
  // Small tiles (shared out whole between threads) and large ones (each product split over threads).
  for (const FfnCase& c : {make_case(700, 40, 70, 3, 2, 5), make_case(1500, 64, 64, 2, 1, 6)}) {
    trix::set_simd_level(trix::SimdLevel::scalar);
    trix::set_num_threads(1);
    const FfnOut ref = run_ffn(c, trix::Activation::gelu, true);
    for (trix::SimdLevel l : trix::available_simd_levels()) {
      trix::set_simd_level(l);
      for (int t : {1, 2, 3, 8}) {
        trix::set_num_threads(t);
        const FfnOut o = run_ffn(c, trix::Activation::gelu, true);
        ASSERT_EQ(o.y, ref.y) << trix::simd_level_name(l) << " threads " << t << " n " << c.n;
        ASSERT_EQ(o.pre, ref.pre);
        ASSERT_EQ(o.dx, ref.dx);
        ASSERT_EQ(o.dup, ref.dup);
        ASSERT_EQ(o.ddown, ref.ddown);
        ASSERT_EQ(o.dg, ref.dg);
      }
    }
  }
}

TEST(TrainLinear, MatchesFloat64AndThreadCounts) {
  Restore r;
  const int64_t n = 130, m = 35, k = 47;
  const auto x = random_floats(n * k, 1), g = random_floats(n * m, 2), s = random_floats(m, 3);
  const auto q = random_ternary(m * k, 4);
  const trix::TernaryCodes w{q.data(), s.data(), m, k, m};  // per-row scales
  std::vector<float> y1, dx1, dw1;
  for (int t : {1, 2, 5}) {
    trix::set_num_threads(t);
    std::vector<float> y(n * m), dx(n * k), dw(m * k);
    trix::linear_forward(x.data(), n, w, y.data());
    trix::linear_backward(g.data(), x.data(), n, w, dx.data(), dw.data());
    if (t == 1) {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
          double v = 0;
          for (int64_t p = 0; p < k; ++p) v += double(x[i * k + p]) * s[j] * q[j * k + p];
          ASSERT_NEAR(y[i * m + j], v, 1e-4);
        }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t p = 0; p < k; ++p) {
          double v = 0;
          for (int64_t j = 0; j < m; ++j) v += double(g[i * m + j]) * s[j] * q[j * k + p];
          ASSERT_NEAR(dx[i * k + p], v, 1e-4);
        }
      for (int64_t j = 0; j < m; ++j)
        for (int64_t p = 0; p < k; ++p) {
          double v = 0;
          for (int64_t i = 0; i < n; ++i) v += double(g[i * m + j]) * x[i * k + p];
          ASSERT_NEAR(dw[j * k + p], v, 1e-3);
        }
      y1 = y, dx1 = dx, dw1 = dw;
    } else {
      ASSERT_EQ(y, y1);
      ASSERT_EQ(dx, dx1);
      ASSERT_EQ(dw, dw1);
    }
  }
}

TEST(TrainOps, RejectsBadArguments) {
  const std::vector<int8_t> q{2, 0, 1, -1};
  const std::vector<float> s{1.0f}, x(4, 1.0f);
  std::vector<float> y(4);
  EXPECT_THROW(trix::linear_forward(x.data(), 2, {q.data(), s.data(), 2, 2, 1}, y.data()), std::invalid_argument);
  EXPECT_THROW(trix::linear_forward(x.data(), 2, {q.data(), s.data(), 2, 2, 3}, y.data()), std::invalid_argument);
  FfnCase c = make_case(4, 8, 4, 2, 1, 1);
  c.idx[0] = 2;
  std::vector<float> yy(c.n * c.d);
  EXPECT_THROW(trix::ffn_train_forward(c.x.data(), c.n, c.codes(), trix::Activation::relu, c.idx.data(), nullptr, 1,
                                       yy.data(), nullptr),
               std::invalid_argument);
}

}  // namespace

namespace {

TEST(TrainActivation, PolynomialFormsMatchFloat64AndAgreeAcrossLevels) {
  std::vector<float> v;
  for (int i = -4000; i <= 4000; ++i) v.push_back(static_cast<float>(i) * 0.005f);  // [-20, 20]
  for (float e : {-90.0f, -50.0f, 50.0f, 90.0f, 1e-30f, -1e-30f, 0.0f, -0.0f}) v.push_back(e);
  const int64_t n = static_cast<int64_t>(v.size()) - 3;  // an odd count: the SIMD tail runs too
  for (trix::Activation act : {trix::Activation::identity, trix::Activation::relu, trix::Activation::gelu,
                               trix::Activation::silu}) {
    std::vector<float> a0(n), g0(n);
    trix::kernels::train_scalar().activation(static_cast<int>(act), v.data(), n, a0.data(), g0.data());
    for (int64_t i = 0; i < n; ++i) {
      const double x = v[i], ref = act_ref(act, x);
      ASSERT_NEAR(a0[i], ref, 4e-7 * (1.0 + std::fabs(ref))) << "act " << static_cast<int>(act) << " at " << x;
      if (std::fabs(x) < 60.0 && !(act == trix::Activation::relu && x == 0.0))
        ASSERT_NEAR(g0[i], act_grad_ref(act, x), 2e-5) << "grad " << static_cast<int>(act) << " at " << x;
    }
    for (trix::SimdLevel l : trix::available_simd_levels()) {
      Restore r;
      trix::set_simd_level(l);
      std::vector<float> a(n), g(n);
      trix::kernels::train_active().activation(static_cast<int>(act), v.data(), n, a.data(), g.data());
      ASSERT_EQ(a, a0) << trix::simd_level_name(l);
      ASSERT_EQ(g, g0) << trix::simd_level_name(l);
    }
  }
}

}  // namespace
