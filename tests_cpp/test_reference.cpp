// The public kernels (whatever level is active) against independent references written here:
// dense loops over unpacked weights, in double.
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "trix/trix.h"

using namespace trix;
using trix_test::awkward_sizes;
using trix_test::random_floats;
using trix_test::random_ternary;

namespace {

struct Mat {
  int64_t rows, cols;
  std::vector<int8_t> q;
  std::vector<float> scales;
  PackedTernary packed;
};

Mat make(int64_t rows, int64_t cols, uint32_t seed, bool per_row) {
  Mat m{rows, cols, random_ternary(rows * cols, seed), {}, {}};
  m.scales = per_row ? random_floats(rows, seed + 1) : std::vector<float>{0.37f};
  for (auto& s : m.scales) s = std::fabs(s) + 0.1f;
  m.packed.rows = rows;
  m.packed.cols = cols;
  m.packed.data.resize(static_cast<size_t>(rows * packed_row_bytes(cols)));
  pack_int8(m.q.data(), rows, cols, m.packed.data.data());
  m.packed.scales = m.scales;
  return m;
}

float sc(const Mat& m, int64_t r) { return m.scales.size() == 1 ? m.scales[0] : m.scales[r]; }

}  // namespace

TEST(Reference, MatmulOnAwkwardSizes) {
  for (int64_t n : {1, 3, 5}) {
    for (int64_t k : awkward_sizes()) {
      for (int64_t m : {1, 5, 17, 64}) {
        const Mat w = make(m, k, static_cast<uint32_t>(n * 7919 + k * 31 + m), (k % 2) == 1);
        const auto x = random_floats(n * k, static_cast<uint32_t>(k + 3));
        std::vector<float> y(static_cast<size_t>(n * m));
        matmul(x.data(), n, w.packed.view(), y.data());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t r = 0; r < m; ++r) {
            double ref = 0, mag = 0;
            for (int64_t c = 0; c < k; ++c) {
              ref += double(x[i * k + c]) * w.q[r * k + c];
              mag += std::fabs(x[i * k + c]);
            }
            ref *= sc(w, r);
            EXPECT_NEAR(y[i * m + r], ref, 1e-5 * mag * sc(w, r) + 1e-6) << n << "x" << k << "x" << m;
          }
      }
    }
  }
}

TEST(Reference, TransposedProductOnAwkwardSizes) {
  for (int64_t n : {1, 4}) {
    for (int64_t k : awkward_sizes()) {
      for (int64_t m : {1, 7, 65}) {
        const Mat w = make(m, k, static_cast<uint32_t>(k * 13 + m), true);
        const auto g = random_floats(n * m, static_cast<uint32_t>(m + 11));
        std::vector<float> dx(static_cast<size_t>(n * k));
        matmul_t(g.data(), n, w.packed.view(), dx.data());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t c = 0; c < k; ++c) {
            double ref = 0, mag = 0;
            for (int64_t r = 0; r < m; ++r) {
              ref += double(g[i * m + r]) * sc(w, r) * w.q[r * k + c];
              mag += std::fabs(g[i * m + r] * sc(w, r));
            }
            EXPECT_NEAR(dx[i * k + c], ref, 1e-5 * mag + 1e-6);
          }
      }
    }
  }
}

TEST(Reference, Int8ProductIsExact) {
  for (int64_t k : awkward_sizes()) {
    const int64_t n = 3, m = 9;
    const Mat w = make(m, k, static_cast<uint32_t>(k), false);
    const auto xq = trix_test::random_int8(n * k, static_cast<uint32_t>(k + 5));
    std::vector<int32_t> acc(static_cast<size_t>(n * m));
    matmul_i8_acc(xq.data(), n, w.packed.view(), acc.data());
    std::vector<float> xs{0.5f, 0.25f, 2.0f}, y(static_cast<size_t>(n * m));
    matmul_i8(xq.data(), xs.data(), n, w.packed.view(), y.data());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < m; ++r) {
        int32_t ref = 0;
        for (int64_t c = 0; c < k; ++c) ref += int32_t(xq[i * k + c]) * w.q[r * k + c];
        EXPECT_EQ(acc[i * m + r], ref);
        EXPECT_EQ(y[i * m + r], float(ref) * xs[i] * w.scales[0]);
      }
  }
}

TEST(Reference, Int8AdversarialNoOverflow) {
  // All weights -1, activations at the int8 extremes, K up to 16384: sums reach 2^21.
  for (int64_t k : {4096, 16384}) {
    std::vector<int8_t> q(static_cast<size_t>(2 * k), -1);
    std::vector<uint8_t> p(static_cast<size_t>(2 * packed_row_bytes(k)));
    pack_int8(q.data(), 2, k, p.data());
    TernaryView v{p.data(), 2, k, nullptr, 0};
    std::vector<int8_t> x(static_cast<size_t>(2 * k));
    for (int64_t c = 0; c < k; ++c) { x[c] = 127; x[k + c] = -128; }
    std::vector<int32_t> acc(4);
    matmul_i8_acc(x.data(), 2, v, acc.data());
    EXPECT_EQ(acc[0], -127 * k);
    EXPECT_EQ(acc[2], 128 * k);
  }
}

TEST(Reference, AbsmeanQuantization) {
  const int64_t rows = 7, cols = 33;
  auto w = random_floats(rows * cols, 3);
  std::vector<int8_t> q(w.size());
  std::vector<float> s(1);
  quantize_ternary(w.data(), rows, cols, QuantParams{}, q.data(), s.data());
  double mean = 0;
  for (float v : w) mean += std::fabs(v);
  mean /= double(w.size());
  EXPECT_NEAR(s[0], mean, 1e-6);
  for (size_t i = 0; i < w.size(); ++i) {
    const double r = std::nearbyint(w[i] / s[0]);
    EXPECT_EQ(q[i], static_cast<int8_t>(std::max(-1.0, std::min(1.0, r))));
  }
  // Half-way values round to even (as torch.round): gamma = 1, so +-0.5 -> 0 and 2.5 -> 2 -> clipped to 1.
  std::vector<float> h{0.5f, 2.5f, -0.5f, 0.5f};
  std::vector<int8_t> hq(4);
  quantize_ternary(h.data(), 1, 4, QuantParams{}, hq.data(), s.data());
  EXPECT_EQ(s[0], 1.0f);
  EXPECT_EQ(hq, (std::vector<int8_t>{0, 1, 0, 0}));
}

TEST(Reference, ThresholdAndPerRowQuantization) {
  std::vector<float> w{0.6f, -0.6f, 0.4f, -0.5f, 2.0f, 0.0f};
  std::vector<int8_t> q(6);
  std::vector<float> s(2);
  QuantParams p{QuantRule::threshold, 0.5f, false};
  quantize_ternary(w.data(), 2, 3, p, q.data(), s.data());
  EXPECT_EQ(q, (std::vector<int8_t>{1, -1, 0, 0, 1, 0}));
  EXPECT_EQ(s[0], 1.0f);
  QuantParams pr;
  pr.per_row = true;
  quantize_ternary(w.data(), 2, 3, pr, q.data(), s.data());
  EXPECT_NEAR(s[0], (0.6 + 0.6 + 0.4) / 3, 1e-6);
  EXPECT_NEAR(s[1], (0.5 + 2.0) / 3, 1e-6);
  std::vector<float> bad{1.0f, NAN};
  EXPECT_THROW(quantize_ternary(bad.data(), 1, 2, QuantParams{}, q.data(), s.data()), std::invalid_argument);
}

TEST(Reference, ActivationQuantization) {
  std::vector<float> x{1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f};
  std::vector<int8_t> xq(6);
  std::vector<float> xs(2);
  quantize_activations(x.data(), 2, 3, xq.data(), xs.data());
  EXPECT_EQ(xq[1], -127);
  EXPECT_EQ(xq[0], static_cast<int8_t>(std::nearbyint(1.0f * (127.0f / 2.0f))));  // 63.5 -> 64 (half to even)
  EXPECT_EQ(xs[0], 2.0f / 127.0f);
  EXPECT_EQ(xq[3], 0);
  EXPECT_EQ(xs[1], kActivationEps / 127.0f);
}

namespace {
// y = sum_j gate * down_t(act(up_t x)), written directly from full dense matrices.
std::vector<double> ffn_reference(const std::vector<float>& x, int64_t n, int64_t d, const Mat& up, const Mat& down,
                                  int64_t T, Activation act, const std::vector<int32_t>& idx,
                                  const std::vector<float>& gates, int64_t k) {
  const int64_t h = up.rows / T;
  std::vector<double> y(static_cast<size_t>(n * d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t t = idx[i * k + j];
      if (t < 0) continue;
      std::vector<double> hid(static_cast<size_t>(h));
      for (int64_t r = 0; r < h; ++r) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += double(x[i * d + c]) * up.q[(t * h + r) * d + c];
        hid[r] = activate(act, float(s * sc(up, t * h + r)));
      }
      for (int64_t c = 0; c < d; ++c) {
        double s = 0;
        for (int64_t r = 0; r < h; ++r) s += hid[r] * down.q[(t * d + c) * h + r];
        y[i * d + c] += (gates.empty() ? 1.0 : gates[i * k + j]) * s * sc(down, t * d + c);
      }
    }
  return y;
}
}  // namespace

TEST(Reference, TiledFFNMatchesDirectComputation) {
  for (int64_t d : {5, 64, 129}) {
    for (int64_t T : {1, 3, 4}) {
      for (int64_t h : {3, 16}) {
        for (int64_t k : {1, 2}) {
          if (k > T) continue;
          const int64_t n = 9;
          const Mat up = make(T * h, d, static_cast<uint32_t>(d + T + h), false);
          const Mat down = make(T * d, h, static_cast<uint32_t>(d * T + h), true);
          const auto x = random_floats(n * d, 5);
          std::vector<int32_t> idx(static_cast<size_t>(n * k));
          std::vector<float> gates(idx.size());
          for (int64_t s = 0; s < n * k; ++s) {
            idx[s] = static_cast<int32_t>((s * 7 + 3) % (T + 1)) - 1;  // includes unused slots (-1)
            gates[s] = 0.25f + 0.1f * float(s % 5);
          }
          std::vector<float> y(static_cast<size_t>(n * d)), hid(static_cast<size_t>(n * k * h));
          TiledFFN f{up.packed.view(), down.packed.view(), T};
          for (Activation act : {Activation::relu, Activation::gelu, Activation::silu, Activation::identity}) {
            tiled_ffn(x.data(), n, f, act, idx.data(), gates.data(), k, y.data(), hid.data());
            const auto ref = ffn_reference(x, n, d, up, down, T, act, idx, gates, k);
            for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-4 * (1 + std::fabs(ref[i])));
          }
        }
      }
    }
  }
}

TEST(Reference, DenseFFNIsAllTilesWithGateOne) {
  const int64_t d = 33, T = 4, h = 5, n = 6;
  const Mat up = make(T * h, d, 1, false), down = make(T * d, h, 2, false);
  const auto x = random_floats(n * d, 9);
  std::vector<int32_t> all(static_cast<size_t>(n * T));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < T; ++t) all[i * T + t] = static_cast<int32_t>(t);
  std::vector<float> y(static_cast<size_t>(n * d));
  tiled_ffn(x.data(), n, TiledFFN{up.packed.view(), down.packed.view(), T}, Activation::relu, all.data(), nullptr, T,
            y.data());
  // Dense FFN: relu(W_up x) then W_down with W_down[c, t*h + r] = down tile t row c column r.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c) {
      double s = 0;
      for (int64_t j = 0; j < T * h; ++j) {
        double a = 0;
        for (int64_t e = 0; e < d; ++e) a += double(x[i * d + e]) * up.q[j * d + e];
        a = std::max(0.0, a * up.scales[0]);
        s += a * down.q[((j / h) * d + c) * h + (j % h)] * down.scales[0];
      }
      EXPECT_NEAR(y[i * d + c], s, 1e-4 * (1 + std::fabs(s)));
    }
}

TEST(Reference, TiledFFNRejectsBadArguments) {
  const Mat up = make(8, 16, 1, false), down = make(32, 4, 2, false);
  std::vector<float> x(16), y(16);
  std::vector<int32_t> idx{2};
  EXPECT_THROW(tiled_ffn(x.data(), 1, TiledFFN{up.packed.view(), down.packed.view(), 2}, Activation::relu, idx.data(),
                         nullptr, 1, y.data()),
               std::invalid_argument);  // tile 2 of 2
  idx[0] = 0;
  EXPECT_THROW(tiled_ffn(x.data(), 1, TiledFFN{up.packed.view(), down.packed.view(), 3}, Activation::relu, idx.data(),
                         nullptr, 1, y.data()),
               std::invalid_argument);  // 8 rows do not split into 3 tiles
}

TEST(Reference, SignaturesAreSignOfTileRowSums) {
  for (int64_t d : {1, 63, 130}) {
    const int64_t T = 5, h = 4;
    const Mat up = make(T * h, d, static_cast<uint32_t>(d), false);
    std::vector<int8_t> sig(static_cast<size_t>(T * d));
    tile_signatures(up.packed.view(), T, sig.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < d; ++c) {
        int s = 0;
        for (int64_t r = 0; r < h; ++r) s += up.q[(t * h + r) * d + c];
        EXPECT_EQ(sig[t * d + c], s > 0 ? 1 : (s < 0 ? -1 : 0));
      }
    const PackedTernary ps = pack_signatures(up.packed.view(), T);
    std::vector<int8_t> back(sig.size());
    unpack_int8(ps.data.data(), T, d, back.data());
    EXPECT_EQ(back, sig);
  }
}

TEST(Reference, TopKTiesGoToLowestIndex) {
  std::vector<float> s{1.0f, 3.0f, 3.0f, NAN, 3.0f, -1.0f};
  std::vector<int32_t> idx(4);
  std::vector<float> val(4);
  top_k(s.data(), 1, 6, 4, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 2, 4, 0}));
  top_k(s.data(), 1, 6, 1, idx.data(), val.data());
  EXPECT_EQ(idx[0], 1);
  EXPECT_THROW(top_k(s.data(), 1, 6, 7, idx.data(), val.data()), std::invalid_argument);
  std::vector<float> nan_first{NAN, 0.0f};
  top_k(nan_first.data(), 1, 2, 1, idx.data(), val.data());
  EXPECT_EQ(idx[0], 1);  // NaN ranks last
}

TEST(Reference, InputEqualToASignatureRoutesToThatTile) {
  const int64_t T = 8, d = 64;
  // Distinct signatures with equal norms: tile t has +1 on its own 8 columns, 0 elsewhere.
  std::vector<int8_t> sig(static_cast<size_t>(T * d), 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = t * 8; c < t * 8 + 8; ++c) sig[t * d + c] = 1;
  std::vector<uint8_t> p(static_cast<size_t>(T * packed_row_bytes(d)));
  pack_int8(sig.data(), T, d, p.data());
  std::vector<float> x(sig.begin(), sig.end());
  std::vector<int32_t> idx(static_cast<size_t>(T * 2));
  std::vector<float> val(idx.size());
  route(x.data(), T, TernaryView{p.data(), T, d, nullptr, 0}, 2, idx.data(), val.data());
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_EQ(idx[t * 2], t);
    EXPECT_EQ(val[t * 2], 8.0f);
    EXPECT_EQ(idx[t * 2 + 1], t == 0 ? 1 : 0);  // all others tie at 0: lowest index
  }
}
