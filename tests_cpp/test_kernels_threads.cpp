// The thread pool: static split, identical results for any thread count and level, exceptions
// from workers reach the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "test_util.h"
#include "trix/cpu.h"
#include "trix/ffn.h"
#include "trix/matmul.h"
#include "trix/route.h"
#include "trix/threads.h"

namespace {

struct ThreadsGuard {
  int saved = trix::get_num_threads();
  trix::SimdLevel level = trix::simd_level();
  ~ThreadsGuard() {
    trix::set_num_threads(saved);
    trix::set_simd_level(level);
  }
};

trix::PackedTernary make(int64_t rows, int64_t cols, uint32_t seed) {
  trix::PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.data.resize(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  const auto w = trix_test::random_ternary(rows * cols, seed);
  trix::pack_int8(w.data(), rows, cols, p.data.data());
  p.scales = trix_test::random_floats(rows, seed + 1);
  return p;
}

TEST(Threads, ParallelForCoversEveryIndexOnce) {
  ThreadsGuard g;
  for (int t : {1, 2, 3, 8}) {
    trix::set_num_threads(t);
    for (int64_t count : {1, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
      trix::parallel_for(count, 16, [&](int64_t b, int64_t e) {
        EXPECT_EQ(b % 16, 0);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "threads " << t << " count " << count;
    }
  }
  EXPECT_THROW(trix::set_num_threads(0), std::invalid_argument);
}

TEST(Threads, WorkerExceptionReachesCaller) {
  ThreadsGuard g;
  trix::set_num_threads(4);
  EXPECT_THROW(trix::parallel_for(400, 1, [](int64_t b, int64_t) {
                 if (b > 0) throw std::runtime_error("worker");
               }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int64_t> sum{0};
  trix::parallel_for(400, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 400);
}

TEST(Threads, ResultsIdenticalForAnyThreadCountAtEveryLevel) {
  ThreadsGuard g;
  const int64_t n = 5, m = 300, k = 515;
  const auto w = make(m, k, 11);
  const auto x = trix_test::random_floats(n * k, 12);
  const auto xq = trix_test::random_int8(n * k, 13);
  const auto gr = trix_test::random_floats(n * m, 14);
  std::vector<float> xs(static_cast<size_t>(n), 0.01f);
  // Tiled FFN: 4 tiles, d = 96, h = 200, top-2 slots.
  const int64_t T = 4, d = 96, h = 200;
  const auto up = make(T * h, d, 21), down = make(T * d, h, 22);
  trix::TiledFFN f{up.view(), down.view(), T};
  const int64_t rows = 9;
  const auto fx = trix_test::random_floats(rows * d, 23);
  std::vector<int32_t> idx(static_cast<size_t>(rows * 2));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>((i * 3) % T);
  const auto sig = make(40, k, 31);

  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<float> y1, t1, f1, r1, yi1;
    std::vector<int32_t> a1;
    for (int t : {1, 2, 3}) {
      trix::set_num_threads(t);
      std::vector<float> y(static_cast<size_t>(n * m)), dx(static_cast<size_t>(n * k)), fy(static_cast<size_t>(rows * d)),
          sc(static_cast<size_t>(n * 40)), yi(static_cast<size_t>(n * m));
      std::vector<int32_t> acc(static_cast<size_t>(n * m));
      trix::matmul(x.data(), n, w.view(), y.data());
      trix::matmul_t(gr.data(), n, w.view(), dx.data());
      trix::matmul_i8_acc(xq.data(), n, w.view(), acc.data());
      trix::matmul_i8(xq.data(), xs.data(), n, w.view(), yi.data());
      trix::tiled_ffn(fx.data(), rows, f, trix::Activation::gelu, idx.data(), nullptr, 2, fy.data());
      trix::route_scores(x.data(), n, sig.view(), sc.data());
      if (t == 1) {
        y1 = y, t1 = dx, f1 = fy, r1 = sc, a1 = acc, yi1 = yi;
        continue;
      }
      const char* ln = trix::simd_level_name(l);
      EXPECT_EQ(y, y1) << ln << " threads " << t;
      EXPECT_EQ(dx, t1) << ln << " threads " << t;
      EXPECT_EQ(acc, a1) << ln << " threads " << t;
      EXPECT_EQ(yi, yi1) << ln << " threads " << t;
      EXPECT_EQ(fy, f1) << ln << " threads " << t;
      EXPECT_EQ(sc, r1) << ln << " threads " << t;
    }
  }
}

TEST(Threads, Int8PathBitExactAcrossLevels) {
  ThreadsGuard g;
  const int64_t n = 3, m = 77, k = 1000;
  const auto w = make(m, k, 41);
  const auto xq = trix_test::random_int8(n * k, 42);
  std::vector<float> xs{0.5f, 0.25f, 0.003f};
  std::vector<float> ref;
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    trix::set_num_threads(2);
    std::vector<float> y(static_cast<size_t>(n * m));
    trix::matmul_i8(xq.data(), xs.data(), n, w.view(), y.data());
    if (ref.empty()) ref = y;
    else EXPECT_EQ(y, ref) << trix::simd_level_name(l);
  }
}

}  // namespace
