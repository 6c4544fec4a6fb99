// Shared helpers for the googletest suite: seeded random data and the sizes every kernel must survive.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace trix_test {

// Sizes around SIMD widths and the 128-weight block: tails must be handled everywhere.
inline const std::vector<int64_t>& awkward_sizes() {
  static const std::vector<int64_t> s{1, 3, 4, 5, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 257};
  return s;
}

inline std::vector<int8_t> random_ternary(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(d(g));
  return v;
}

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

inline std::vector<int8_t> random_int8(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(d(g));
  return v;
}

}  // namespace trix_test
