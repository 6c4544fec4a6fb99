// Balanced k-means over int8 rows with ternary centroids (sign of the members' sum).
// Assignment is greedy under a capacity: rows that prefer their best cluster by the widest margin
// choose first, so a full cluster turns away the rows that lose least by going elsewhere.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "memory_internal.h"
#include "trix/error.h"
#include "trix/threads.h"

namespace trix {
namespace mem {

void pack_sign(const int32_t* sum, int64_t d, uint8_t* out) {
  const int64_t rb = packed_row_bytes(d);
  std::fill(out, out + rb, kZeroByte);
  for (int64_t c = 0; c < d; ++c) {
    const int w = (sum[c] > 0) - (sum[c] < 0);
    uint8_t& b = out[(c / kBlockWeights) * kBlockBytes + (c % kBlockWeights) % kBlockBytes];
    const int sh = 2 * static_cast<int>((c % kBlockWeights) / kBlockBytes);
    b = static_cast<uint8_t>((b & ~(3 << sh)) | ((w + 1) << sh));
  }
}

float route_key(const int64_t* sum, int64_t count, int64_t d, uint8_t* out) {
  std::vector<int64_t> mag(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) mag[j] = sum[j] < 0 ? -sum[j] : sum[j];
  std::vector<int64_t> sorted = mag;
  std::sort(sorted.begin(), sorted.end(), std::greater<int64_t>());
  // Keeping the top `kept` elements costs |mean|^2 - S^2 / kept (S their |sum| total): maximize S^2 / kept,
  // only at a change of value so that equal elements share one decision (exact: integer prefix sums).
  int64_t s = 0, best_kept = 0, best_s = 0, thr = 0;
  double best = 0;
  for (int64_t kept = 1; kept <= d; ++kept) {
    s += sorted[kept - 1];
    if (kept < d && sorted[kept] == sorted[kept - 1]) continue;
    const double v = static_cast<double>(s) * static_cast<double>(s) / static_cast<double>(kept);
    if (v > best) best = v, best_kept = kept, best_s = s, thr = sorted[kept - 1];
  }
  std::vector<int32_t> t(static_cast<size_t>(d), 0);
  if (best_kept > 0 && thr > 0)
    for (int64_t j = 0; j < d; ++j) t[j] = mag[j] >= thr ? (sum[j] > 0 ? 1 : -1) : 0;
  pack_sign(t.data(), d, out);
  if (best_kept == 0 || thr == 0 || count <= 0) return 0.0f;
  return static_cast<float>(static_cast<double>(best_s) / (static_cast<double>(best_kept) * static_cast<double>(count)));
}

namespace {

constexpr int64_t kCandidates = 8;  // preferred clusters remembered per row
constexpr int64_t kChunk = 512;     // rows scored per kernel call

struct Assigner {
  const int8_t* x;
  int64_t m, d, k, cap;
  std::vector<uint8_t> packed;  // centroids [k, rb]: ternary part of the routing key
  std::vector<int32_t> assign;  // [m]
  std::vector<float> own;       // score of each row with its cluster
  std::vector<int32_t> tmp;
  std::vector<float> scale;     // [k] routing-key scales (empty: all 1, the seeds)
  std::vector<double> fit;      // [m] cosine of each row with its best cluster's key (capacity aside)

  // Scores of rows against the centroids as search ranks leaves: scale[c] * (x . t_c).
  void score_rows(const int8_t* rows, int64_t n, float* s, std::vector<int32_t>& t32) const {
    score(rows, n, d, packed.data(), k, s, k, t32);
    if (!scale.empty())
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < k; ++c) s[i * k + c] *= scale[c];
  }

  void run() {
    const int64_t nc = std::min(k, kCandidates);
    std::vector<mem::Cand> cand(static_cast<size_t>(m * nc));
    parallel_for(m, kChunk, [&](int64_t b, int64_t e) {  // rows are independent: any split, same result
      std::vector<float> s(static_cast<size_t>(kChunk * k));
      std::vector<int32_t> t32;
      for (int64_t i0 = b; i0 < e; i0 += kChunk) {
        const int64_t rows = std::min(kChunk, e - i0);
        score_rows(x + i0 * d, rows, s.data(), t32);
        for (int64_t i = 0; i < rows; ++i) {
          TopK top(nc);
          for (int64_t c = 0; c < k; ++c) top.push({s[i * k + c], c});
          std::copy(top.v.begin(), top.v.end(), cand.begin() + (i0 + i) * nc);
        }
      }
    });
    {
      const int64_t rb = packed_row_bytes(d);
      std::vector<int8_t> cent(static_cast<size_t>(d));
      std::vector<int64_t> cnz(static_cast<size_t>(k), 0);
      for (int64_t c = 0; c < k; ++c) {
        unpack_int8(packed.data() + c * rb, 1, d, cent.data());
        for (int64_t j = 0; j < d; ++j) cnz[c] += cent[j] != 0;
      }
      fit.assign(static_cast<size_t>(m), -2.0);
      for (int64_t i = 0; i < m; ++i) {
        int64_t nz = 0;
        for (int64_t j = 0; j < d; ++j) nz += x[i * d + j] != 0;
        const int64_t c = cand[i * nc].id;
        const double sc = scale.empty() ? 1.0 : static_cast<double>(scale[c]);
        if (sc > 0 && nz && cnz[c]) fit[i] = cand[i * nc].s / sc / std::sqrt(static_cast<double>(nz * cnz[c]));
      }
    }
    std::vector<int64_t> order(static_cast<size_t>(m));
    std::iota(order.begin(), order.end(), 0);
    auto margin = [&](int64_t i) {
      return nc == 1 ? 0.0f : cand[i * nc].s - cand[i * nc + 1].s;
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return margin(a) > margin(b); });
    std::vector<int64_t> size(static_cast<size_t>(k), 0);
    assign.assign(static_cast<size_t>(m), -1);
    own.assign(static_cast<size_t>(m), 0.0f);
    std::vector<float> full(static_cast<size_t>(k));
    for (int64_t i : order) {
      int64_t chosen = -1;
      float sc = 0;
      for (int64_t j = 0; j < nc && chosen < 0; ++j) {
        const Cand& c = cand[i * nc + j];
        if (size[c.id] < cap) chosen = c.id, sc = c.s;
      }
      if (chosen < 0) {  // every favourite is full: the best cluster with room
        score_rows(x + i * d, 1, full.data(), tmp);
        TopK top(1);
        for (int64_t c = 0; c < k; ++c)
          if (size[c] < cap) top.push({full[c], c});
        chosen = top.v[0].id, sc = top.v[0].s;
      }
      assign[i] = static_cast<int32_t>(chosen);
      own[i] = sc;
      ++size[chosen];
    }
    // An empty cluster takes the worst-fitting row of the largest cluster (lowest index on ties).
    for (int64_t c = 0; c < k; ++c) {
      if (size[c] > 0) continue;
      const int64_t big = std::max_element(size.begin(), size.end()) - size.begin();
      int64_t worst = -1;
      for (int64_t i = 0; i < m; ++i)
        if (assign[i] == big && (worst < 0 || own[i] < own[worst])) worst = i;
      assign[worst] = static_cast<int32_t>(c);
      --size[big], ++size[c];
    }
  }

  // Centroids become the routing keys of their members (route_key), the key search ranks leaves by.
  void update() {
    const int64_t rb = packed_row_bytes(d);
    std::vector<int64_t> sum(static_cast<size_t>(k * d), 0), count(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < m; ++i) {
      int64_t* sp = sum.data() + assign[i] * d;
      const int8_t* xi = x + i * d;
      for (int64_t c = 0; c < d; ++c) sp[c] += xi[c];
      ++count[assign[i]];
    }
    scale.resize(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) scale[c] = route_key(sum.data() + c * d, count[c], d, packed.data() + c * rb);
  }

  // Repair: a starved cluster (under a quarter of the capacity: its centroid won no group, while
  // two groups share another) moves to the row that fits worst even its best cluster (lowest cosine
  // with that cluster's key: rows of a shared cluster; rows turned away by a full cluster of their
  // own group fit their best one well and are left alone), one row per group: rows alike (cosine >
  // 0.25) to a seed already chosen are skipped. Measured in docs/memory.md: without it ~1 % of 1M family keys sit outside
  // their family's leaf, unreachable by any number of probes. Returns the clusters moved.
  int64_t reseed() {
    std::vector<int64_t> size(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < m; ++i) ++size[assign[i]];
    std::vector<int64_t> starved;
    for (int64_t c = 0; c < k; ++c)
      if (size[c] * 4 < cap) starved.push_back(c);
    if (starved.empty()) return 0;
    const int64_t rb = packed_row_bytes(d);
    std::vector<int64_t> rnz(static_cast<size_t>(m), 0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < d; ++j) rnz[i] += x[i * d + j] != 0;
    std::vector<int64_t> order(static_cast<size_t>(m));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return fit[a] < fit[b]; });
    std::vector<int64_t> seeds;
    for (int64_t i : order) {
      if (seeds.size() == starved.size()) break;
      if (rnz[i] == 0) continue;
      bool alike = false;
      for (int64_t s : seeds) {
        int64_t dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += x[i * d + j] * x[s * d + j];
        alike = alike || static_cast<double>(dot) > 0.25 * std::sqrt(static_cast<double>(rnz[i] * rnz[s]));
      }
      if (!alike) seeds.push_back(i);
    }
    std::vector<int32_t> row(static_cast<size_t>(d));
    if (scale.empty()) scale.assign(static_cast<size_t>(k), 1.0f);
    for (size_t j = 0; j < seeds.size(); ++j) {
      for (int64_t e = 0; e < d; ++e) row[e] = x[seeds[j] * d + e];
      pack_sign(row.data(), d, packed.data() + starved[j] * rb);
      scale[starved[j]] = 1.0f;
    }
    return static_cast<int64_t>(seeds.size());
  }
};

// Seeding: farthest-first traversal in angle (lowest highest-cosine to the chosen; Euclidean
// distance would favour rows with many non-zeros) from a seeded random row over a seeded sample of kSeedRows rows per cluster picks 2k candidates, then
// the candidate closest to another is dropped until k remain. Farthest-first alone also picks
// outliers of one group; pruning the closest pairs removes such twins, so seeds land in distinct
// groups, which Lloyd iterations under a capacity could not repair later.
double cosine(int64_t dot, int64_t n1, int64_t n2) {
  return n1 && n2 ? static_cast<double>(dot) / std::sqrt(static_cast<double>(n1) * static_cast<double>(n2)) : 0.0;
}

void seed_plus_plus(const int8_t* x, int64_t m, int64_t d, int64_t k, Rng& rng, uint8_t* packed) {
  constexpr int64_t kSeedRows = 8;
  const int64_t rb = packed_row_bytes(d);
  const int64_t s = std::min(m, k * kSeedRows);  // a random subset (a stride could alias with the data)
  std::vector<int64_t> idx(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) idx[i] = i;
  for (int64_t i = 0; i < s; ++i) std::swap(idx[i], idx[i + static_cast<int64_t>(rng.below(m - i))]);
  std::sort(idx.begin(), idx.begin() + s);
  std::vector<int8_t> sx(static_cast<size_t>(s * d));
  std::vector<int64_t> norm(static_cast<size_t>(s), 0);
  for (int64_t i = 0; i < s; ++i) {
    std::copy(x + idx[i] * d, x + (idx[i] + 1) * d, sx.begin() + i * d);
    for (int64_t j = 0; j < d; ++j) norm[i] += sx[i * d + j] * sx[i * d + j];
  }
  const int64_t nc = std::min(s, 2 * k);  // candidates; fewer sample rows than k: repeats below
  std::vector<double> best(static_cast<size_t>(s), -2.0);  // highest cosine to a chosen candidate
  std::vector<int8_t> cs(static_cast<size_t>(nc * d));  // candidate signatures (sign of the row)
  std::vector<int64_t> cn(static_cast<size_t>(nc), 0);
  std::vector<uint8_t> cp(static_cast<size_t>(nc * rb));
  std::vector<int32_t> sum(static_cast<size_t>(d)), dot(static_cast<size_t>(std::max(s, nc)));
  int64_t row = static_cast<int64_t>(rng.below(s));
  for (int64_t c = 0; c < nc; ++c) {
    if (c > 0) row = std::min_element(best.begin(), best.end()) - best.begin();
    for (int64_t j = 0; j < d; ++j) {
      sum[j] = sx[row * d + j];
      cs[c * d + j] = static_cast<int8_t>((sum[j] > 0) - (sum[j] < 0));
      cn[c] += cs[c * d + j] != 0;
    }
    pack_sign(sum.data(), d, cp.data() + c * rb);
    kernels::active().gemm_i8(sx.data(), s, d, cp.data() + c * rb, 0, 1, dot.data(), 1);
    for (int64_t i = 0; i < s; ++i) best[i] = std::max(best[i], cosine(dot[i], norm[i], cn[c]));
  }
  // Prune: drop the candidate nearest to another (the later one of the pair) until k remain.
  std::vector<int32_t> cd(static_cast<size_t>(nc * nc));
  kernels::active().gemm_i8(cs.data(), nc, d, cp.data(), 0, nc, cd.data(), nc);
  auto dist = [&](int64_t a, int64_t b) { return -cosine(cd[a * nc + b], cn[a], cn[b]); };
  std::vector<char> alive(static_cast<size_t>(nc), 1);
  std::vector<double> nn(static_cast<size_t>(nc), 1e300);
  auto refresh = [&](int64_t a) {
    nn[a] = 1e300;
    for (int64_t b = 0; b < nc; ++b)
      if (b != a && alive[b]) nn[a] = std::min(nn[a], dist(a, b));
  };
  for (int64_t a = 0; a < nc; ++a) refresh(a);
  for (int64_t left = nc; left > k; --left) {
    int64_t drop = -1;
    for (int64_t a = 0; a < nc; ++a)
      if (alive[a] && (drop < 0 || nn[a] < nn[drop] || (nn[a] == nn[drop] && a > drop))) drop = a;
    if (drop < 0) break;
    alive[static_cast<size_t>(drop)] = 0;
    for (int64_t a = 0; a < nc; ++a)
      if (alive[a] && nn[a] == dist(a, drop)) refresh(a);
  }
  int64_t c = 0;
  for (int64_t a = 0; a < nc; ++a)
    if (alive[a]) std::copy(cp.begin() + a * rb, cp.begin() + (a + 1) * rb, packed + (c++) * rb);
  for (; c < k; ++c) {  // fewer distinct sample rows than clusters: random training rows
    const int64_t i = static_cast<int64_t>(rng.below(m));
    for (int64_t j = 0; j < d; ++j) sum[j] = x[i * d + j];
    pack_sign(sum.data(), d, packed + c * rb);
  }
}

// Over-cluster then merge: 2k clusters from the seeds above and a few balanced Lloyd passes, then
// the two clusters whose ternary centroids are most alike (cosine) merge, until k remain. A
// centroid averages many rows, so twins from one group are far more alike (cosine ~0.9) than any
// two groups (~0): the merge is reliable where single-row seeds were not.
void seed_merged(const int8_t* x, int64_t m, int64_t d, int64_t k, double slack, Rng& rng, uint8_t* packed) {
  const int64_t k2 = std::min(m, 2 * k);
  const int64_t rb = packed_row_bytes(d);
  if (k2 <= k) return seed_plus_plus(x, m, d, k, rng, packed);
  Assigner pre{x, m, d, k2, kmeans_capacity(m, k2, slack), {}, {}, {}, {}, {}, {}};
  pre.packed.resize(static_cast<size_t>(k2 * rb));
  seed_plus_plus(x, m, d, k2, rng, pre.packed.data());
  for (int it = 0; it < 3; ++it) pre.run(), pre.update();
  pre.run();
  std::vector<int64_t> sum(static_cast<size_t>(k2 * d), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < d; ++j) sum[pre.assign[i] * d + j] += x[i * d + j];
  std::vector<int8_t> sg(static_cast<size_t>(k2 * d));
  std::vector<int64_t> nz(static_cast<size_t>(k2), 0);
  auto resign = [&](int64_t a) {
    nz[a] = 0;
    for (int64_t j = 0; j < d; ++j) {
      sg[a * d + j] = static_cast<int8_t>((sum[a * d + j] > 0) - (sum[a * d + j] < 0));
      nz[a] += sg[a * d + j] != 0;
    }
  };
  for (int64_t a = 0; a < k2; ++a) resign(a);
  pack_int8(sg.data(), k2, d, pre.packed.data());  // centroids of the final assignment
  std::vector<int32_t> dots(static_cast<size_t>(k2 * k2));
  kernels::active().gemm_i8(sg.data(), k2, d, pre.packed.data(), 0, k2, dots.data(), k2);
  auto sim = [&](int64_t a, int64_t b) { return cosine(dots[a * k2 + b], nz[a], nz[b]); };
  std::vector<char> alive(static_cast<size_t>(k2), 1);
  std::vector<double> nn(static_cast<size_t>(k2));
  std::vector<int64_t> nb(static_cast<size_t>(k2));
  auto refresh = [&](int64_t a) {
    nn[a] = -2, nb[a] = -1;
    for (int64_t b = 0; b < k2; ++b)
      if (b != a && alive[b] && sim(a, b) > nn[a]) nn[a] = sim(a, b), nb[a] = b;
  };
  for (int64_t a = 0; a < k2; ++a) refresh(a);
  for (int64_t left = k2; left > k; --left) {
    int64_t a = -1;
    for (int64_t c = 0; c < k2; ++c)
      if (alive[c] && nb[c] >= 0 && (a < 0 || nn[c] > nn[a])) a = c;
    if (a < 0) break;
    const int64_t b = nb[a];
    alive[static_cast<size_t>(b)] = 0;
    for (int64_t j = 0; j < d; ++j) sum[a * d + j] += sum[b * d + j];
    resign(a);
    for (int64_t c = 0; c < k2; ++c) {  // the merged centroid's products with the others
      if (!alive[c]) continue;
      int32_t s = 0;
      for (int64_t j = 0; j < d; ++j) s += sg[a * d + j] * sg[c * d + j];
      dots[a * k2 + c] = dots[c * k2 + a] = s;
    }
    for (int64_t c = 0; c < k2; ++c)
      if (alive[c] && (c == a || nb[c] == a || nb[c] == b || sim(c, a) > nn[c])) refresh(c);
  }
  int64_t c = 0;
  std::vector<int32_t> s32(static_cast<size_t>(d));
  for (int64_t a = 0; a < k2 && c < k; ++a) {
    if (!alive[a]) continue;
    for (int64_t j = 0; j < d; ++j) s32[j] = static_cast<int32_t>(std::max<int64_t>(-1, std::min<int64_t>(1, sum[a * d + j])));
    pack_sign(s32.data(), d, packed + (c++) * rb);
  }
}

}  // namespace
}  // namespace mem

int64_t kmeans_capacity(int64_t n, int64_t k, double slack) {
  TRIX_CHECK_ARG(k >= 1, "kmeans_capacity", "k", "must be >= 1, got ", k);
  TRIX_CHECK_ARG(n >= 0, "kmeans_capacity", "n", "must be >= 0, got ", n);
  TRIX_CHECK_ARG(slack >= 0 && std::isfinite(slack), "kmeans_capacity", "slack", "must be finite and >= 0, got ", slack);
  const int64_t base = (n + k - 1) / k;
  return base + static_cast<int64_t>(std::floor(static_cast<double>(base) * slack + 1e-9));
}

std::vector<int32_t> balanced_kmeans(const int8_t* x, int64_t n, int64_t d, int64_t k, const KMeansOptions& opt,
                                     int8_t* centroids) {
  const char* f = "balanced_kmeans";
  TRIX_CHECK_ARG(d >= 1, f, "d", "must be >= 1, got ", d);
  TRIX_CHECK_ARG(n >= 1, f, "x", "must have at least one row, got ", n);
  TRIX_CHECK_ARG(x != nullptr, f, "x", "must not be null");
  TRIX_CHECK_ARG(k >= 1 && k <= n, f, "k", "must be in [1, n = ", n, "], got ", k);
  TRIX_CHECK_ARG(opt.iters >= 1, f, "iters", "must be >= 1, got ", opt.iters);
  TRIX_CHECK_ARG(opt.max_train_per_cluster >= 1, f, "max_train_per_cluster", "must be >= 1, got ",
                 opt.max_train_per_cluster);
  const int64_t cap_all = kmeans_capacity(n, k, opt.slack);
  mem::Rng rng{opt.seed ^ 0x7472697821ull};

  // A deterministic training sample (sorted, so the order of rows is the caller's).
  std::vector<int8_t> sample;
  const int8_t* tx = x;
  int64_t m = n;
  if (n / k > opt.max_train_per_cluster) {
    m = k * opt.max_train_per_cluster;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    for (int64_t i = 0; i < m; ++i) std::swap(idx[i], idx[i + static_cast<int64_t>(rng.below(n - i))]);
    std::sort(idx.begin(), idx.begin() + m);
    sample.resize(static_cast<size_t>(m * d));
    for (int64_t i = 0; i < m; ++i) std::copy(x + idx[i] * d, x + (idx[i] + 1) * d, sample.begin() + i * d);
    tx = sample.data();
  }

  const int64_t rb = packed_row_bytes(d);
  mem::Assigner a{tx, m, d, k, kmeans_capacity(m, k, opt.slack), {}, {}, {}, {}, {}, {}};
  a.packed.resize(static_cast<size_t>(k * rb));
  mem::seed_merged(tx, m, d, k, opt.slack, rng, a.packed.data());
  std::vector<int32_t> prev;
  int64_t moved = 0;
  for (int it = 0; it < opt.iters; ++it) {
    a.run();
    if (moved == 0 && a.assign == prev) break;
    prev = a.assign;
    a.update();
    moved = it + 1 < opt.iters ? a.reseed() : 0;
  }
  if (tx != x) {  // assign every row to the trained centroids, then recompute them from all members
    a.x = x, a.m = n, a.cap = cap_all;
    a.run();
    a.update();
  }
  if (centroids) {  // sign of the members' sum (the leaf signature; the routing key is route_key's)
    std::vector<int64_t> sum(static_cast<size_t>(k * d), 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) sum[a.assign[i] * d + j] += x[i * d + j];
    for (int64_t e = 0; e < k * d; ++e) centroids[e] = static_cast<int8_t>((sum[e] > 0) - (sum[e] < 0));
  }
  return a.assign;
}

void compose_signatures(const int8_t* sigs, int64_t m, int64_t d, int8_t* out) {
  TRIX_CHECK_ARG(m >= 1, "compose_signatures", "sigs", "must have at least one row, got ", m);
  TRIX_CHECK_ARG(d >= 1, "compose_signatures", "d", "must be >= 1, got ", d);
  for (int64_t c = 0; c < d; ++c) {
    int64_t s = 0;
    for (int64_t i = 0; i < m; ++i) s += sigs[i * d + c];
    out[c] = static_cast<int8_t>((s > 0) - (s < 0));
  }
}

}  // namespace trix
