// trix_bench --memory: the signature memory alone (FAISS runs in `python -m trix bench --memory`,
// on the same data recipe). Keys d = 256 in families (a centre, each element redrawn with
// probability 0.5, round(sqrt(N)) families); queries near a key (Gaussian noise at SNR 1) or
// uniform. Prints build time, bytes per tile, QPS and recall@1 of the tree against exact search.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench.h"
#include "trix/memory.h"

namespace trix_bench {
namespace {

constexpr int64_t kD = 256;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<int8_t> family_keys(int64_t n, std::mt19937_64& g) {
  const int64_t fam = std::max<int64_t>(1, std::llround(std::sqrt(double(n))));
  std::uniform_int_distribution<int> t(-1, 1);
  std::uniform_int_distribution<int64_t> pick(0, fam - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int8_t> centres(static_cast<size_t>(fam * kD)), keys(static_cast<size_t>(n * kD));
  for (auto& c : centres) c = static_cast<int8_t>(t(g));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t f = pick(g);
    for (int64_t j = 0; j < kD; ++j) keys[i * kD + j] = u(g) < 0.5 ? static_cast<int8_t>(t(g)) : centres[f * kD + j];
  }
  return keys;
}

std::vector<float> queries(const std::vector<int8_t>& keys, int64_t n, int64_t nq, bool near, std::mt19937_64& g) {
  std::normal_distribution<float> z(0, 1);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::vector<float> q(static_cast<size_t>(nq * kD));
  for (int64_t i = 0; i < nq; ++i) {
    if (!near) {
      for (int64_t j = 0; j < kD; ++j) q[i * kD + j] = z(g);
      continue;
    }
    const int8_t* k = keys.data() + pick(g) * kD;
    double power = 0;
    for (int64_t j = 0; j < kD; ++j) power += k[j] * k[j];
    const float sd = static_cast<float>(std::sqrt(std::max(power / kD, 1e-6)));  // SNR 1
    for (int64_t j = 0; j < kD; ++j) q[i * kD + j] = k[j] + sd * z(g);
  }
  return q;
}

}  // namespace

int run_memory(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) quick = quick || std::strcmp(argv[i], "--quick") == 0;
  const std::vector<int64_t> sizes = quick ? std::vector<int64_t>{1000, 16000}
                                           : std::vector<int64_t>{1000, 16000, 65536, 262144, 1048576};
  const int64_t nq = quick ? 512 : 4096;
  std::printf("signature memory, d = %lld, %lld queries (exact baselines on 512 above 262144 tiles)\n",
              static_cast<long long>(kD), static_cast<long long>(nq));
  std::printf("%8s %7s %-22s %6s %9s %8s %8s %8s %6s\n", "N", "queries", "method", "probes", "QPS", "recall1",
              "scored", "build_s", "B/tile");
  for (int64_t n : sizes) {
    std::mt19937_64 g(static_cast<uint64_t>(n));
    const auto keys = family_keys(n, g);
    trix::SignatureMemory mem = trix::SignatureMemory::from_int8(keys.data(), n, kD);
    double t = now();
    mem.build();
    const double build = now() - t;
    const double bpt = static_cast<double>(mem.nbytes()) / static_cast<double>(n);
    for (bool near : {true, false}) {
      const auto q = queries(keys, n, nq, near, g);
      const int64_t ne = n > 262144 ? 512 : nq;
      trix::SearchOptions ex;
      ex.exact = true;
      t = now();
      const auto exact = mem.search(q.data(), ne, ex);
      const double te = now() - t;
      std::printf("%8lld %7s %-22s %6s %9.0f %8.4f %8lld %8.3f %6.1f\n", static_cast<long long>(n), near ? "near" : "uniform",
                  "flat exact (float)", "all", ne / te, 1.0, static_cast<long long>(n), build, bpt);
      mem.prepare();  // the table-lookup layout (AVX-512 levels): same search, second copy of the keys
      t = now();
      const auto exp = mem.search(q.data(), ne, ex);
      const double tp = now() - t;
      int64_t same = 0;
      for (int64_t i = 0; i < ne; ++i) same += exp.ids[i] == exact.ids[i];
      std::printf("%8lld %7s %-22s %6s %9.0f %8.4f %8lld %8.3f %6.1f\n", static_cast<long long>(n), near ? "near" : "uniform",
                  "flat exact (prepared)", "all", ne / tp, double(same) / ne, static_cast<long long>(n), build,
                  static_cast<double>(mem.nbytes() + mem.prepared_nbytes()) / static_cast<double>(n));
      mem.prepare(false);
      t = now();
      const auto exq = mem.search(q.data(), ne, ex, true);
      const double tq = now() - t;
      int64_t agree = 0;
      for (int64_t i = 0; i < ne; ++i) agree += exq.ids[i] == exact.ids[i];
      std::printf("%8lld %7s %-22s %6s %9.0f %8.4f %8lld %8.3f %6.1f\n", static_cast<long long>(n), near ? "near" : "uniform",
                  "flat int8-quantized", "all", ne / tq, double(agree) / ne, static_cast<long long>(n), build, bpt);
      for (int64_t p : {1, 2, 3, 4, 8, 16, 32}) {
        if (p > mem.num_clusters()) continue;
        trix::SearchOptions o;
        o.probes = p;
        t = now();
        const auto r = mem.search(q.data(), nq, o);
        const double tt = now() - t;
        int64_t hit = 0, scored = 0;
        for (int64_t i = 0; i < ne; ++i) hit += r.scores[i] >= exact.scores[i] - 1e-3f * std::max(1.0f, std::fabs(exact.scores[i]));
        for (int64_t i = 0; i < nq; ++i) scored += r.scored[i];
        std::printf("%8lld %7s %-22s %6lld %9.0f %8.4f %8lld %8.3f %6.1f\n", static_cast<long long>(n),
                    near ? "near" : "uniform", mem.levels() == 3 ? "tree (3 levels)" : "tree (2 levels)",
                    static_cast<long long>(p), nq / tt, double(hit) / ne, static_cast<long long>(scored / nq), build, bpt);
      }
    }
  }
  return 0;
}

}  // namespace trix_bench
