// Packs a float matrix to 2-bit ternary, multiplies, reads tile signatures and routes inputs.
// Exits non-zero if any result disagrees with a direct computation, so CI can run it as a check.
#include <trix/trix.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const int64_t tiles = 4, h = 32, d = 96, n = 5;
  std::mt19937 gen(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w_up(static_cast<size_t>(tiles * h * d));
  for (float& v : w_up) v = normal(gen);

  const trix::PackedTernary up = trix::pack_float(w_up.data(), tiles * h, d);  // absmean, BitNet b1.58
  std::printf("trix %s: packed [%lld, %lld] into %zu bytes (scale %.4f)\n", TRIX_VERSION_STRING,
              static_cast<long long>(up.rows), static_cast<long long>(up.cols), up.data.size(), up.scales[0]);

  std::vector<float> x(static_cast<size_t>(n * d));
  for (float& v : x) v = normal(gen);
  std::vector<float> y(static_cast<size_t>(n * tiles * h));
  trix::matmul(x.data(), n, up.view(), y.data());

  std::vector<int8_t> q(w_up.size());
  trix::unpack_int8(up.data.data(), up.rows, up.cols, q.data());
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < up.rows; ++r) {
      double ref = 0;
      for (int64_t c = 0; c < d; ++c) ref += double(x[i * d + c]) * q[r * d + c];
      worst = std::fmax(worst, std::fabs(ref * up.scales[0] - y[i * up.rows + r]));
    }
  std::printf("matmul [%lld, %lld] x W^T: max |error| %.2e\n", static_cast<long long>(n), static_cast<long long>(d), worst);

  const trix::PackedTernary sig = trix::pack_signatures(up.view(), tiles);
  std::vector<int32_t> tile(static_cast<size_t>(n));
  std::vector<float> score(static_cast<size_t>(n));
  trix::route(x.data(), n, sig.view(), 1, tile.data(), score.data());
  for (int64_t i = 0; i < n; ++i)
    std::printf("input %lld -> tile %d (score %.3f)\n", static_cast<long long>(i), tile[i], score[i]);
  return worst < 1e-3 ? 0 : 1;
}
