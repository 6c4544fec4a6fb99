// trix_bench (kernels): median time of the packed ternary products per shape, batch, thread count
// and SIMD level (op int8 = matmul_i8, float = matmul on the public format, fprep = matmul on a
// trix::PreparedMatrix, x_scalar against the float scalar), and the tiled FFN with one tile active vs all.
//   trix_bench [--shapes 4096x4096,2560x6912,1024x1024] [--n 1,64] [--threads 1,2]
//              [--levels all|scalar,avx2,...] [--min-ms 300] [--no-ffn] [--json PATH]
// The scalar level is timed only for N <= 8 (it takes seconds per call beyond that).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.h"
#include "trix/cpu.h"
#include "trix/ffn.h"
#include "trix/matmul.h"
#include "trix/prepared.h"
#include "trix/pack.h"
#include "trix/threads.h"

namespace trix_bench {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, sep);)
    if (!t.empty()) out.push_back(t);
  return out;
}

// Median of timed calls after warm-up; repeats until min_ms has passed (at least 5, at most 2000).
// *best gets the fastest call (on a shared machine the least disturbed one).
double median_us(const std::function<void()>& f, double min_ms, double* best = nullptr) {
  f();
  f();
  std::vector<double> t;
  double total = 0;
  while ((total < min_ms * 1e3 || t.size() < 5) && t.size() < 2000) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
    t.push_back(us);
    total += us;
  }
  if (best) *best = *std::min_element(t.begin(), t.end());
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

trix::PackedTernary random_packed(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<int8_t> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = static_cast<int8_t>(d(g));
  trix::PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.data.resize(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  trix::pack_int8(w.data(), rows, cols, p.data.data());
  p.scales.assign(1, 0.01f);
  return p;
}

struct Row {
  std::string op, level;
  int64_t m, k, n;
  int threads;
  double us, gops, gbs, vs_scalar, min_us;
};

}  // namespace

int run_kernels(int argc, char** argv) {
  std::vector<std::string> shapes{"4096x4096", "2560x6912", "1024x1024"}, ns{"1", "64"}, ths{"1", "2"}, levels;
  std::string json;
  double min_ms = 300;
  bool ffn = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--shapes") shapes = split(next(), ',');
    else if (a == "--n") ns = split(next(), ',');
    else if (a == "--threads") ths = split(next(), ',');
    else if (a == "--levels") levels = split(next(), ',');
    else if (a == "--json") json = next();
    else if (a == "--min-ms") min_ms = std::stod(next());
    else if (a == "--no-ffn") ffn = false;
    else throw std::invalid_argument("unknown option '" + a + "' (see the comment in bench_kernels.cpp)");
  }
  std::vector<trix::SimdLevel> lv;
  if (levels.empty() || (levels.size() == 1 && levels[0] == "all")) lv = trix::available_simd_levels();
  else
    for (const auto& s : levels) lv.push_back(trix::parse_simd_level(s));
  if (std::find(lv.begin(), lv.end(), trix::SimdLevel::scalar) == lv.end()) lv.insert(lv.begin(), trix::SimdLevel::scalar);

  std::vector<Row> rows;
  std::printf("%-6s %-12s %6s %6s %4s %3s %11s %8s %8s %9s %10s\n", "op", "level", "M", "K", "N", "thr", "median_us",
              "GOPS", "GB/s", "x_scalar", "min_us");
  for (const auto& sh : shapes) {
    const auto mk = split(sh, 'x');
    if (mk.size() != 2) throw std::invalid_argument("shape must be MxK, got '" + sh + "'");
    const int64_t m = std::stoll(mk[0]), k = std::stoll(mk[1]);
    const auto w = random_packed(m, k, 1);
    const trix::PreparedMatrix wp(w.view());
    const double wbytes = static_cast<double>(w.data.size());
    for (const auto& nstr : ns) {
      const int64_t n = std::stoll(nstr);
      std::mt19937 g(2);
      std::normal_distribution<float> nd;
      std::vector<float> x(static_cast<size_t>(n * k)), y(static_cast<size_t>(n * m)), xs(static_cast<size_t>(n), 0.02f);
      for (auto& v : x) v = nd(g);
      std::vector<int8_t> xq(static_cast<size_t>(n * k));
      for (auto& v : xq) v = static_cast<int8_t>(g() % 256 - 128);
      for (const auto& tstr : ths) {
        const int t = std::stoi(tstr);
        trix::set_num_threads(t);
        for (const char* op : {"int8", "float", "fprep"}) {
          double scalar_us = 0;
          for (trix::SimdLevel l : lv) {
            if (l == trix::SimdLevel::scalar && n > 8) continue;
            trix::set_simd_level(l);
            const bool i8 = std::strcmp(op, "int8") == 0, prep = std::strcmp(op, "fprep") == 0;
            if (prep && l == trix::SimdLevel::scalar) continue;
            double best = 0;
            const double us = median_us(
                [&] {
                  if (i8) trix::matmul_i8(xq.data(), xs.data(), n, w.view(), y.data());
                  else if (prep) trix::matmul(x.data(), n, wp, y.data());
                  else trix::matmul(x.data(), n, w.view(), y.data());
                },
                l == trix::SimdLevel::scalar ? 50 : min_ms, &best);
            if (l == trix::SimdLevel::scalar) scalar_us = us;
            Row r{op, trix::simd_level_name(l), m, k, n, t, us, 2.0 * m * k * n / us / 1e3, wbytes / us / 1e3,
                  scalar_us > 0 ? scalar_us / us : 0, best};
            std::printf("%-6s %-12s %6lld %6lld %4lld %3d %11.1f %8.1f %8.2f %9s %10.1f\n", op, r.level.c_str(),
                        static_cast<long long>(m), static_cast<long long>(k), static_cast<long long>(n), t, us, r.gops,
                        r.gbs, scalar_us > 0 ? (std::to_string(static_cast<int>(r.vs_scalar + 0.5)) + "x").c_str() : "-", best);
            std::fflush(stdout);
            rows.push_back(r);
          }
        }
      }
    }
  }
  trix::set_simd_level(trix::best_simd_level());
  if (ffn) {
    // Tiled FFN, d = 1024, total hidden 4096 split into T tiles, N = 1, one thread, best level.
    trix::set_num_threads(1);
    std::printf("\ntiled FFN (d=1024, hidden 4096 in T tiles, N=1, 1 thread, %s)\n%4s %12s %12s %8s\n",
                trix::simd_level_name(trix::best_simd_level()), "T", "one_us", "all_us", "all/one");
    const int64_t d = 1024, H = 4096;
    for (int64_t T : {4, 16, 64}) {
      const int64_t h = H / T;
      const auto up = random_packed(T * h, d, 3), down = random_packed(T * d, h, 4);
      trix::TiledFFN f{up.view(), down.view(), T};
      std::vector<float> x(static_cast<size_t>(d), 0.5f), y(static_cast<size_t>(d));
      std::vector<int32_t> one{0}, all(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) all[t] = static_cast<int32_t>(t);
      const double u1 = median_us([&] { trix::tiled_ffn(x.data(), 1, f, trix::Activation::relu, one.data(), nullptr, 1, y.data()); }, min_ms);
      const double ua = median_us([&] { trix::tiled_ffn(x.data(), 1, f, trix::Activation::relu, all.data(), nullptr, T, y.data()); }, min_ms);
      std::printf("%4lld %12.1f %12.1f %8.1f\n", static_cast<long long>(T), u1, ua, ua / u1);
      rows.push_back(Row{"ffn_one", "T=" + std::to_string(T), h, d, 1, 1, u1, 0, 0, 0});
      rows.push_back(Row{"ffn_all", "T=" + std::to_string(T), h, d, 1, 1, ua, 0, 0, 0});
    }
  }
  if (!json.empty()) {
    std::ofstream o(json);
    o << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      o << "  {\"op\": \"" << r.op << "\", \"level\": \"" << r.level << "\", \"m\": " << r.m << ", \"k\": " << r.k
        << ", \"n\": " << r.n << ", \"threads\": " << r.threads << ", \"median_us\": " << r.us << ", \"min_us\": " << r.min_us << ", \"gops\": " << r.gops
        << ", \"gb_per_s\": " << r.gbs << ", \"vs_scalar\": " << r.vs_scalar << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    o << "]\n";
  }
  return 0;
}

}  // namespace trix_bench
