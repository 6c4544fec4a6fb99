// Balanced k-means: determinism, size bounds, planted clusters recovered, argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "test_util.h"
#include "trix/memory.h"

namespace {

// k planted centres; each row is its centre with each element redrawn with probability `flip`.
std::vector<int8_t> planted(int64_t n, int64_t d, int64_t k, double flip, uint32_t seed, std::vector<int>* label) {
  std::mt19937 g(seed);
  std::vector<int8_t> centres = trix_test::random_ternary(k * d, seed + 1);
  std::vector<int8_t> x(static_cast<size_t>(n * d));
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> t(-1, 1);
  label->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % k);
    (*label)[i] = c;
    for (int64_t j = 0; j < d; ++j) x[i * d + j] = u(g) < flip ? static_cast<int8_t>(t(g)) : centres[c * d + j];
  }
  return x;
}

TEST(MemoryKMeans, CapacityFormula) {
  EXPECT_EQ(trix::kmeans_capacity(100, 10, 0.1), 11);
  EXPECT_EQ(trix::kmeans_capacity(101, 10, 0.0), 11);
  EXPECT_EQ(trix::kmeans_capacity(1000, 7, 0.25), 143 + 35);
}

TEST(MemoryKMeans, DeterministicAndBounded) {
  const int64_t n = 1000, d = 96, k = 13;
  const auto x = trix_test::random_ternary(n * d, 7);
  trix::KMeansOptions opt;
  opt.seed = 42;
  std::vector<int8_t> c1(k * d), c2(k * d);
  const auto a = trix::balanced_kmeans(x.data(), n, d, k, opt, c1.data());
  const auto b = trix::balanced_kmeans(x.data(), n, d, k, opt, c2.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(c1, c2);
  std::vector<int64_t> size(k, 0);
  for (int32_t v : a) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, k);
    ++size[v];
  }
  const int64_t cap = trix::kmeans_capacity(n, k, opt.slack);
  for (int64_t s : size) {
    EXPECT_GE(s, 1);
    EXPECT_LE(s, cap);
  }
  // Centroids are the sign of their members' sum.
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < d; ++j) {
      int s = 0;
      for (int64_t i = 0; i < n; ++i)
        if (a[i] == c) s += x[i * d + j];
      ASSERT_EQ(c1[c * d + j], (s > 0) - (s < 0));
    }
  opt.seed = 43;
  EXPECT_NE(trix::balanced_kmeans(x.data(), n, d, k, opt), a);
}

TEST(MemoryKMeans, RecoversPlantedClusters) {
  const int64_t n = 2000, d = 256, k = 20;
  std::vector<int> label;
  const auto x = planted(n, d, k, 0.3, 3, &label);
  trix::KMeansOptions opt;
  opt.slack = 0.2;
  for (int64_t mt : {int64_t(256), int64_t(20)}) {  // full data, then a trained sample
    opt.max_train_per_cluster = mt;
    const auto a = trix::balanced_kmeans(x.data(), n, d, k, opt);
    // Purity: each found cluster is dominated by one planted label.
    std::map<int, std::map<int, int>> count;
    for (int64_t i = 0; i < n; ++i) ++count[a[i]][label[i]];
    int64_t pure = 0;
    for (auto& [c, m] : count) {
      int best = 0;
      for (auto& [l, v] : m) best = std::max(best, v);
      pure += best;
    }
    EXPECT_GE(static_cast<double>(pure) / n, 0.99) << "max_train_per_cluster " << mt;
  }
}

TEST(MemoryKMeans, TightCapacityStillBounded) {
  // Every row identical: all prefer one cluster; capacity must still hold with slack 0.
  const int64_t n = 50, d = 8, k = 7;
  std::vector<int8_t> x(n * d, 1);
  trix::KMeansOptions opt;
  opt.slack = 0;
  const auto a = trix::balanced_kmeans(x.data(), n, d, k, opt);
  std::vector<int64_t> size(k, 0);
  for (int32_t v : a) ++size[v];
  for (int64_t s : size) {
    EXPECT_GE(s, 1);
    EXPECT_LE(s, 8);
  }
}

TEST(MemoryKMeans, BadArgumentsNameTheArgument) {
  std::vector<int8_t> x(40, 1);
  auto msg = [&](int64_t n, int64_t d, int64_t k, trix::KMeansOptions o) -> std::string {
    try {
      trix::balanced_kmeans(x.data(), n, d, k, o);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(msg(10, 4, 0, {}).find("'k'"), std::string::npos);
  EXPECT_NE(msg(10, 4, 11, {}).find("'k'"), std::string::npos);
  EXPECT_NE(msg(10, 0, 2, {}).find("'d'"), std::string::npos);
  EXPECT_NE(msg(0, 4, 1, {}).find("'x'"), std::string::npos);
  trix::KMeansOptions o;
  o.iters = 0;
  EXPECT_NE(msg(10, 4, 2, o).find("'iters'"), std::string::npos);
  o = {};
  o.slack = -1;
  EXPECT_NE(msg(10, 4, 2, o).find("'slack'"), std::string::npos);
}

}  // namespace
