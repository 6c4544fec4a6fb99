// trix_bench --ffn: the tiled FFN as a model runs it, routing included, against the dense FFN of the
// same total width. d = 1024, hidden 4096 split into T tiles; routed = route (scores against the
// tile signatures read from W_up, top-1) + tiled_ffn on the chosen tiles; dense = one tile of
// hidden 4096 (the same weights' FLOPs as all T tiles, without per-tile overhead). One thread, best
// SIMD level, warm caches, float activations, ReLU.
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench.h"
#include "trix/cpu.h"
#include "trix/ffn.h"
#include "trix/route.h"
#include "trix/signature.h"
#include "trix/threads.h"

namespace trix_bench {

int run_ffn(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  trix::set_num_threads(1);
  trix::set_simd_level(trix::best_simd_level());
  const int64_t d = 1024, H = 4096;
  std::printf("tiled FFN, d=%lld, hidden %lld in T tiles, top-1 routing, 1 thread, %s\n", static_cast<long long>(d),
              static_cast<long long>(H), trix::simd_level_name(trix::best_simd_level()));
  std::printf("%4s %4s %12s %12s %12s %12s %10s %8s\n", "N", "T", "route_us", "routed_us", "dense_us", "dense_min",
              "dense/rtd", "target");
  const auto dense_up = random_packed(H, d, 5), dense_down = random_packed(d, H, 6);
  const trix::TiledFFN dense{dense_up.view(), dense_down.view(), 1};
  std::vector<std::string> objs;
  for (const auto& nstr : opt.ns) {
    const int64_t n = std::stoll(nstr);
    std::mt19937 g(7);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n * d)), y(static_cast<size_t>(n * d)), val(static_cast<size_t>(n));
    for (auto& v : x) v = nd(g);
    std::vector<int32_t> zero(static_cast<size_t>(n), 0), idx(static_cast<size_t>(n));
    const Timing td = time_calls(
        [&] { trix::tiled_ffn(x.data(), n, dense, trix::Activation::relu, zero.data(), nullptr, 1, y.data()); },
        opt.min_ms);
    for (int64_t T : {4, 16, 64}) {
      const int64_t h = H / T;
      const auto up = random_packed(T * h, d, 3), down = random_packed(T * d, h, 4);
      const trix::TiledFFN f{up.view(), down.view(), T};
      const auto sig = trix::pack_signatures(up.view(), T);
      const Timing tr = time_calls([&] { trix::route(x.data(), n, sig.view(), 1, idx.data(), val.data()); }, opt.min_ms);
      const Timing tf = time_calls(
          [&] {
            trix::route(x.data(), n, sig.view(), 1, idx.data(), val.data());
            trix::tiled_ffn(x.data(), n, f, trix::Activation::relu, idx.data(), nullptr, 1, y.data());
          },
          opt.min_ms);
      std::printf("%4lld %4lld %12.1f %12.1f %12.1f %12.1f %9.1fx %7.1fx\n", static_cast<long long>(n),
                  static_cast<long long>(T), tr.wall, tf.wall, td.wall, td.best, td.wall / tf.wall, 0.8 * T);
      std::fflush(stdout);
      std::ostringstream o;
      o << "{\"op\": \"ffn\", \"n\": " << n << ", \"tiles\": " << T << ", \"d\": " << d << ", \"hidden\": " << H
        << ", \"route_us\": " << tr.wall << ", \"routed_us\": " << tf.wall << ", \"dense_us\": " << td.wall
        << ", \"dense_over_routed\": " << td.wall / tf.wall << "}";
      objs.push_back(o.str());
    }
  }
  if (!opt.json.empty()) write_json(opt.json, objs);
  return 0;
}

}  // namespace trix_bench
