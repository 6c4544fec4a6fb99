// trix_bench (products): matmul_i8 (op int8), matmul on the public format (float) and on a
// trix::PreparedMatrix (fprep) per shape, batch, thread count and SIMD level, warm and cold.
// Warm: one matrix called again and again (its weights stay in cache). Cold (model-sized): a stack
// of copies of the matrix whose total bytes exceed twice the last-level cache, one copy per call in
// turn, so every call reads its weights from memory as a model's layers do.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.h"
#include "trix/cpu.h"
#include "trix/matmul.h"
#include "trix/pack.h"
#include "trix/prepared.h"
#include "trix/threads.h"

namespace trix_bench {
namespace {

struct Row {
  std::string op, level;
  int64_t m, k, n;
  int threads;
  Timing warm;
  double cold_us, gops, gbs, vs_scalar;
  int64_t cold_layers;
};

std::string json_row(const Row& r) {
  std::ostringstream o;
  o << "{\"op\": \"" << r.op << "\", \"level\": \"" << r.level << "\", \"m\": " << r.m << ", \"k\": " << r.k
    << ", \"n\": " << r.n << ", \"threads\": " << r.threads << ", \"median_us\": " << r.warm.wall
    << ", \"min_us\": " << r.warm.best << ", \"cpu_us\": " << (r.threads == 1 ? r.warm.cpu : 0)
    << ", \"cold_us\": " << r.cold_us << ", \"cold_layers\": " << r.cold_layers << ", \"gops\": " << r.gops
    << ", \"gb_per_s\": " << r.gbs << ", \"vs_scalar\": " << r.vs_scalar << "}";
  return o.str();
}

// A cold stack: `layers` copies of w (distinct memory, same values) and their prepared forms.
struct Stack {
  std::vector<trix::PackedTernary> packed;
  std::vector<std::unique_ptr<trix::PreparedMatrix>> prepared;
};

Stack make_stack(const trix::PackedTernary& w, int64_t layers, bool prepared) {
  Stack s;
  s.packed.assign(static_cast<size_t>(layers), w);
  if (prepared)
    for (const auto& p : s.packed) s.prepared.push_back(std::make_unique<trix::PreparedMatrix>(p.view()));
  return s;
}

}  // namespace

int run_kernels(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  std::vector<trix::SimdLevel> lv;
  if (opt.levels.empty() || (opt.levels.size() == 1 && opt.levels[0] == "all")) lv = trix::available_simd_levels();
  else
    for (const auto& s : opt.levels) lv.push_back(trix::parse_simd_level(s));
  if (std::find(lv.begin(), lv.end(), trix::SimdLevel::scalar) == lv.end()) lv.insert(lv.begin(), trix::SimdLevel::scalar);
  const double cold_bytes = opt.cold_mib < 0 ? 2.0 * static_cast<double>(llc_bytes()) : opt.cold_mib * 1048576.0;

  std::printf("last-level cache %.0f MiB; cold stack %.0f MiB (twice the LLC unless --cold-mib)\n",
              static_cast<double>(llc_bytes()) / 1048576.0, cold_bytes / 1048576.0);
  std::vector<Row> rows;
  std::printf("%-6s %-12s %6s %6s %4s %3s %10s %10s %10s %10s %6s %8s %8s %8s\n", "op", "level", "M", "K", "N", "thr",
              "median_us", "min_us", "cpu_us", "cold_us", "layers", "GOPS", "GB/s", "x_scalar");
  for (const auto& sh : opt.shapes) {
    const auto mk = split(sh, 'x');
    if (mk.size() != 2) throw std::invalid_argument("shape must be MxK, got '" + sh + "'");
    const int64_t m = std::stoll(mk[0]), k = std::stoll(mk[1]);
    const auto w = random_packed(m, k, 1);
    const trix::PreparedMatrix wp(w.view());
    const double wbytes = static_cast<double>(w.data.size());
    const bool want_prep = std::find(opt.ops.begin(), opt.ops.end(), "fprep") != opt.ops.end();
    const int64_t layers = cold_bytes > 0 ? std::max<int64_t>(2, static_cast<int64_t>(cold_bytes / wbytes) + 1) : 0;
    const Stack stack = make_stack(w, layers, want_prep);
    for (const auto& nstr : opt.ns) {
      const int64_t n = std::stoll(nstr);
      std::mt19937 g(2);
      std::normal_distribution<float> nd;
      std::vector<float> x(static_cast<size_t>(n * k)), y(static_cast<size_t>(n * m)), xs(static_cast<size_t>(n), 0.02f);
      for (auto& v : x) v = nd(g);
      std::vector<int8_t> xq(static_cast<size_t>(n * k));
      for (auto& v : xq) v = static_cast<int8_t>(g() % 256 - 128);
      for (const auto& tstr : opt.threads) {
        const int t = std::stoi(tstr);
        trix::set_num_threads(t);
        for (const auto& op : opt.ops) {
          double scalar_us = 0;
          const bool i8 = op == "int8", prep = op == "fprep";
          for (trix::SimdLevel l : lv) {
            const bool scalar = l == trix::SimdLevel::scalar;
            if ((scalar && n > 8) || (prep && scalar)) continue;
            trix::set_simd_level(l);
            auto call = [&](const trix::PackedTernary& pw, const trix::PreparedMatrix& pp) {
              if (i8) trix::matmul_i8(xq.data(), xs.data(), n, pw.view(), y.data());
              else if (prep) trix::matmul(x.data(), n, pp, y.data());
              else trix::matmul(x.data(), n, pw.view(), y.data());
            };
            const Timing warm = time_calls([&] { call(w, wp); }, scalar ? 50 : opt.min_ms);
            double cold = 0;
            if (layers > 0 && !scalar) {
              int64_t next = 0;
              cold = time_calls(
                         [&] {
                           call(stack.packed[next], prep ? *stack.prepared[next] : wp);
                           next = (next + 1) % layers;
                         },
                         opt.min_ms)
                         .wall;
            }
            if (scalar) scalar_us = warm.wall;
            Row r{op, trix::simd_level_name(l), m, k, n, t, warm, cold, 2.0 * m * k * n / warm.wall / 1e3,
                  wbytes / warm.wall / 1e3, scalar_us > 0 ? scalar_us / warm.wall : 0, scalar ? 0 : layers};
            char cpu[32] = "-", cold_s[32] = "-", xs_s[32] = "-";
            if (t == 1) std::snprintf(cpu, sizeof cpu, "%.1f", warm.cpu);
            if (cold > 0) std::snprintf(cold_s, sizeof cold_s, "%.1f", cold);
            if (scalar_us > 0) std::snprintf(xs_s, sizeof xs_s, "%.0fx", r.vs_scalar);
            std::printf("%-6s %-12s %6lld %6lld %4lld %3d %10.1f %10.1f %10s %10s %6lld %8.1f %8.2f %8s\n", op.c_str(),
                        r.level.c_str(), static_cast<long long>(m), static_cast<long long>(k),
                        static_cast<long long>(n), t, warm.wall, warm.best, cpu, cold_s,
                        static_cast<long long>(r.cold_layers), r.gops, r.gbs, xs_s);
            std::fflush(stdout);
            rows.push_back(r);
          }
        }
      }
    }
  }
  trix::set_simd_level(trix::best_simd_level());
  if (!opt.json.empty()) {
    std::vector<std::string> objs;
    for (const Row& r : rows) objs.push_back(json_row(r));
    write_json(opt.json, objs);
  }
  return 0;
}

}  // namespace trix_bench
