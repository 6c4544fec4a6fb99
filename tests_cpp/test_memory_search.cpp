// SignatureMemory: flat search against a brute-force reference, ties, top-k, tree recall measured
// against exact search, grouping, living-memory updates, persistence and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "test_util.h"
#include "trix/cpu.h"
#include "trix/error.h"
#include "trix/memory.h"
#include "trix/threads.h"

namespace {

using trix::SearchOptions;
using trix::SearchResult;
using trix::SignatureMemory;

// Brute force: the k best (score desc, id asc) of q against sig rows named by ids.
std::vector<std::pair<float, int64_t>> brute(const float* q, const std::vector<int8_t>& sig, const std::vector<int64_t>& ids,
                                             int64_t d, int64_t k) {
  std::vector<std::pair<float, int64_t>> all;
  for (size_t r = 0; r < ids.size(); ++r) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(q[j]) * sig[r * d + j];
    all.emplace_back(static_cast<float>(s), ids[r]);
  }
  std::sort(all.begin(), all.end(), [](auto a, auto b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  all.resize(std::min<size_t>(all.size(), static_cast<size_t>(k)));
  return all;
}

std::vector<int8_t> planted(int64_t n, int64_t d, int64_t groups, double flip, uint32_t seed) {
  std::mt19937 g(seed);
  const auto centres = trix_test::random_ternary(groups * d, seed + 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> t(-1, 1), pick(0, static_cast<int>(groups - 1));
  std::vector<int8_t> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const int c = pick(g);
    for (int64_t j = 0; j < d; ++j) x[i * d + j] = u(g) < flip ? static_cast<int8_t>(t(g)) : centres[c * d + j];
  }
  return x;
}

TEST(MemorySearch, FlatMatchesBruteForceInt8AndFloat) {
  const int64_t n = 300, d = 200, nq = 17, k = 5;
  const auto sig = trix_test::random_ternary(n * d, 1);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  EXPECT_EQ(m.size(), n);
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  const auto qi = trix_test::random_int8(nq * d, 2);
  SearchOptions o;
  o.k = k;
  const auto ri = m.search_i8(qi.data(), nq, o);
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<float> qf(qi.begin() + i * d, qi.begin() + (i + 1) * d);
    const auto ref = brute(qf.data(), sig, ids, d, k);
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(ri.ids[i * k + j], ref[j].second);
      EXPECT_EQ(ri.scores[i * k + j], ref[j].first);
    }
    EXPECT_EQ(ri.scored[i], n);
  }
  // Float queries of small integers: exact in float too, so the same answer.
  const auto qf = trix_test::random_floats(nq * d, 3);
  const auto rf = m.search(qf.data(), nq, o);
  for (int64_t i = 0; i < nq; ++i) {
    const auto ref = brute(qf.data() + i * d, sig, ids, d, k);
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_NEAR(rf.scores[i * k + j], ref[j].first, 1e-3);
      if (j + 1 < k && std::abs(ref[j].first - ref[j + 1].first) > 1e-3 && (j == 0 || std::abs(ref[j - 1].first - ref[j].first) > 1e-3))
        EXPECT_EQ(rf.ids[i * k + j], ref[j].second);
    }
  }
}

TEST(MemorySearch, TiesGoToLowestIdAndKBeyondSize) {
  const int64_t d = 128;
  std::vector<int8_t> sig(4 * d, 0);
  for (int64_t j = 0; j < d; ++j) sig[1 * d + j] = sig[3 * d + j] = 1;  // ids 1 and 3 equal
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), 4, d);
  std::vector<int8_t> q(d, 1);
  SearchOptions o;
  o.k = 6;
  const auto r = m.search_i8(q.data(), 1, o);
  EXPECT_EQ(r.ids[0], 1);
  EXPECT_EQ(r.ids[1], 3);
  EXPECT_EQ(r.ids[2], 0);  // zeros tie too: lowest id first
  EXPECT_EQ(r.ids[3], 2);
  EXPECT_EQ(r.ids[4], -1);
  EXPECT_TRUE(std::isinf(r.scores[5]) && r.scores[5] < 0);
}

TEST(MemorySearch, TreeRecallMeasuredAgainstExact) {
  const int64_t n = 4000, d = 256, nq = 200;
  const auto sig = planted(n, d, 64, 0.4, 5);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  m.build();
  EXPECT_EQ(m.levels(), 2);
  EXPECT_EQ(m.num_clusters(), 63);  // ceil(4000 / ceil(sqrt(4000)))
  // Near-key queries: a stored key plus Gaussian noise.
  std::mt19937 g(9);
  std::normal_distribution<float> nz(0, 0.5f);
  std::vector<float> q(nq * d);
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < d; ++j) q[i * d + j] = sig[(i * 17 % n) * d + j] + nz(g);
  SearchOptions ex;
  ex.exact = true;
  const auto exact = m.search(q.data(), nq, ex);
  double prev = -1;
  for (int64_t p : {int64_t(1), int64_t(4), m.num_clusters()}) {
    SearchOptions o;
    o.probes = p;
    const auto r = m.search(q.data(), nq, o);
    int64_t hit = 0, scored = 0;
    for (int64_t i = 0; i < nq; ++i) hit += r.ids[i] == exact.ids[i], scored += r.scored[i];
    const double recall = double(hit) / nq;
    EXPECT_GE(recall, prev);  // more probes never lose what fewer found
    prev = recall;
    if (p == 1) EXPECT_LT(scored / nq, n / 4);
    if (p == m.num_clusters()) EXPECT_EQ(recall, 1.0);  // every cluster probed: exact
  }
  EXPECT_GE(prev, 0.9);
}

TEST(MemorySearch, ThreeLevelsRecall) {
  const int64_t n = 3000, d = 128, nq = 100;
  const auto sig = planted(n, d, 50, 0.3, 6);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  trix::IndexOptions io;
  io.levels = 3;
  io.leaf_size = 30;
  m.build(io);
  EXPECT_EQ(m.levels(), 3);
  auto sizes = m.cluster_sizes();
  EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), int64_t(0)), n);
  std::vector<float> q(sig.begin(), sig.begin() + nq * d);  // queries equal to stored keys
  SearchOptions o;
  o.probes = 8;
  o.upper_probes = 4;
  const auto r = m.search(q.data(), nq, o);
  SearchOptions ex;
  ex.exact = true;
  const auto e = m.search(q.data(), nq, ex);
  int64_t hit = 0;
  for (int64_t i = 0; i < nq; ++i) hit += r.scores[i] == e.scores[i];
  EXPECT_GE(hit, 95);
  const auto expl = m.explain(q.data(), o);
  EXPECT_EQ(expl.path.size(), 2u);
  EXPECT_EQ(expl.path.back(), m.cluster_of(expl.id));
  EXPECT_EQ(expl.exact_score, e.scores[0]);
  EXPECT_FLOAT_EQ(expl.margin, expl.score - expl.runner_up_score);
}

TEST(MemorySearch, GroupingPermutation) {
  const int64_t n = 50, d = 64, nq = 40, k = 2;
  const auto sig = trix_test::random_ternary(n * d, 11);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  const auto q = trix_test::random_floats(nq * d, 12);
  SearchOptions o;
  o.k = k;
  const auto g = m.lookup(q.data(), nq, o);
  ASSERT_EQ(g.offsets.size(), g.tiles.size() + 1);
  ASSERT_EQ(g.perm.size(), static_cast<size_t>(nq * k));
  std::vector<int64_t> sorted = g.perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t p = 0; p < nq * k; ++p) ASSERT_EQ(sorted[p], p);  // a permutation
  for (size_t t = 0; t < g.tiles.size(); ++t) {
    if (t) EXPECT_LT(g.tiles[t - 1], g.tiles[t]);
    for (int64_t p = g.offsets[t]; p < g.offsets[t + 1]; ++p) {
      EXPECT_EQ(g.result.ids[g.perm[p]], g.tiles[t]);
      if (p > g.offsets[t]) EXPECT_LT(g.perm[p - 1], g.perm[p]);
    }
  }
}

TEST(MemorySearch, AddRemoveReplaceKeepSearchExact) {
  const int64_t n = 600, d = 128;
  auto sig = planted(n, d, 12, 0.3, 21);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  trix::IndexOptions io;
  io.auto_rebuild = false;
  m.build(io);
  const auto extra = trix_test::random_ternary(20 * d, 22);
  const auto ids = m.add(extra.data(), 20);
  EXPECT_EQ(ids.front(), n);
  EXPECT_EQ(m.size(), n + 20);
  std::vector<int64_t> gone{3, 100, static_cast<int64_t>(n + 5)};
  m.remove(gone.data(), 3);
  EXPECT_FALSE(m.contains(3));
  EXPECT_EQ(m.size(), n + 17);
  const auto rep = trix_test::random_ternary(d, 23);
  int64_t id7 = 7;
  m.replace(&id7, 1, rep.data());
  std::vector<int8_t> back(d);
  m.get(&id7, 1, back.data());
  EXPECT_EQ(back, rep);
  // Every stored key finds itself exactly; with all clusters probed the tree equals exact search.
  std::vector<int64_t> all;
  for (int64_t id = 0; id < m.next_id(); ++id)
    if (m.contains(id)) all.push_back(id);
  std::vector<int8_t> keys(all.size() * d);
  m.get(all.data(), static_cast<int64_t>(all.size()), keys.data());
  SearchOptions o;
  o.probes = m.num_clusters();
  const auto r = m.search_i8(keys.data(), static_cast<int64_t>(all.size()), o);
  SearchOptions ex;
  ex.exact = true;
  const auto e = m.search_i8(keys.data(), static_cast<int64_t>(all.size()), ex);
  EXPECT_EQ(r.ids, e.ids);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(e.scores[i], std::count_if(keys.begin() + i * d, keys.begin() + (i + 1) * d, [](int8_t v) { return v != 0; }));
  // Leaf signatures stay the sign of their members after updates.
  std::vector<int64_t> sizes = m.cluster_sizes();
  EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), int64_t(0)), m.size());
}

TEST(MemorySearch, DriftTriggersRebuild) {
  const int64_t n = 400, d = 64;
  const auto sig = planted(n, d, 8, 0.3, 31);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  trix::IndexOptions io;
  io.auto_rebuild = false;
  m.build(io);
  const int64_t c0 = m.num_clusters();
  std::vector<int8_t> same(d * 200);
  for (int64_t i = 0; i < 200; ++i) std::copy(sig.begin(), sig.begin() + d, same.begin() + i * d);
  m.add(same.data(), 200);  // one cluster swells
  EXPECT_TRUE(m.needs_rebuild());
  io.auto_rebuild = true;
  m.build(io);
  EXPECT_FALSE(m.needs_rebuild());
  const auto sizes = m.cluster_sizes();
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()), trix::kmeans_capacity(600, m.num_clusters(), io.kmeans.slack));
  EXPECT_GE(m.num_clusters(), c0);
}

TEST(MemorySearch, PersistenceRoundTripAndCorruption) {
  const int64_t n = 500, d = 96;
  const auto sig = planted(n, d, 10, 0.3, 41);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  m.build();
  int64_t rm = 4;
  m.remove(&rm, 1);
  const auto bytes = m.serialize();
  SignatureMemory l = SignatureMemory::deserialize(bytes.data(), bytes.size());
  EXPECT_EQ(l.size(), m.size());
  EXPECT_EQ(l.cluster_sizes(), m.cluster_sizes());
  EXPECT_FALSE(l.contains(4));
  const auto q = trix_test::random_floats(20 * d, 42);
  SearchOptions o;
  o.k = 3;
  o.probes = 2;
  EXPECT_EQ(l.search(q.data(), 20, o).ids, m.search(q.data(), 20, o).ids);
  EXPECT_EQ(l.serialize(), bytes);
  // Every truncation, and a flipped bit anywhere, is a FormatError.
  for (size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 3)
    EXPECT_THROW(SignatureMemory::deserialize(bytes.data(), cut), trix::FormatError) << cut;
  for (size_t pos = 0; pos < bytes.size(); pos += 37) {
    auto bad = bytes;
    bad[pos] ^= 0x10;
    EXPECT_THROW(SignatureMemory::deserialize(bad.data(), bad.size()), trix::FormatError) << pos;
  }
  const std::string path = ::testing::TempDir() + "trix_memory_test.bin";
  m.save(path);
  EXPECT_EQ(SignatureMemory::load(path).size(), m.size());
  std::remove(path.c_str());
}

TEST(MemorySearch, BadArgumentsNameTheArgument) {
  auto what = [](auto f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(what([] { SignatureMemory m(0); }).find("'dim'"), std::string::npos);
  SignatureMemory m(8);
  std::vector<int8_t> bad(8, 2);
  EXPECT_NE(what([&] { m.add(bad.data(), 1); }).find("'signatures'"), std::string::npos);
  int64_t id = 5;
  EXPECT_NE(what([&] { m.remove(&id, 1); }).find("'ids'"), std::string::npos);
  std::vector<float> q(8, 1.0f);
  SearchOptions o;
  o.k = 0;
  EXPECT_NE(what([&] { m.search(q.data(), 1, o); }).find("'k'"), std::string::npos);
  o = {};
  o.probes = 0;
  EXPECT_NE(what([&] { m.search(q.data(), 1, o); }).find("'probes'"), std::string::npos);
  trix::IndexOptions io;
  io.levels = 5;
  EXPECT_NE(what([&] { m.build(io); }).find("'levels'"), std::string::npos);
}

}  // namespace

TEST(MemorySearch, BuildFromAssignmentSearchesTheGivenClusters) {
  // The caller's clusters are used as they are: with one probe, a query only sees its best leaf's
  // tiles, and leaves are ranked by their routing key a * (q . t): the scaled ternary vector nearest
  // the members' mean in least squares (reference: every threshold tried, in double).
  const int64_t n = 24, d = 40, k = 4;
  const auto keys = trix_test::random_ternary(n * d, 5);
  SignatureMemory m = SignatureMemory::from_int8(keys.data(), n, d);
  std::vector<int32_t> leaf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) leaf[i] = static_cast<int32_t>((i * 7) % k);
  m.build_from_assignment(leaf.data(), n, k);
  ASSERT_EQ(m.num_clusters(), k);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(m.cluster_of(i), leaf[i]);
  std::vector<double> key(static_cast<size_t>(k * d), 0.0);  // a * t per leaf
  for (int64_t c = 0; c < k; ++c) {
    std::vector<double> mean(static_cast<size_t>(d), 0.0);
    int count = 0;
    for (int64_t i = 0; i < n; ++i)
      if (leaf[i] == c) {
        ++count;
        for (int64_t j = 0; j < d; ++j) mean[j] += keys[i * d + j];
      }
    for (auto& v : mean) v /= count;
    double best_err = 1e300;
    for (int64_t t0 = 0; t0 < d; ++t0) {  // threshold |mean[t0]|: keep every element at least that large
      const double thr = std::abs(mean[t0]);
      if (thr == 0) continue;
      double s = 0;
      int kept = 0;
      for (int64_t j = 0; j < d; ++j)
        if (std::abs(mean[j]) >= thr) s += std::abs(mean[j]), ++kept;
      const double a = s / kept;
      double err = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double t = std::abs(mean[j]) >= thr ? (mean[j] > 0 ? 1 : -1) : 0;
        err += (mean[j] - a * t) * (mean[j] - a * t);
      }
      if (err < best_err - 1e-12) {
        best_err = err;
        for (int64_t j = 0; j < d; ++j)
          key[c * d + j] = std::abs(mean[j]) >= thr ? (mean[j] > 0 ? a : -a) : 0.0;
      }
    }
  }
  const auto q = trix_test::random_floats(10 * d, 6);
  SearchOptions one;
  one.probes = 1;
  const auto r = m.search(q.data(), 10, one);
  for (int64_t qi = 0; qi < 10; ++qi) {
    int64_t best_leaf = -1, best_tile = -1;
    double best_leaf_score = -1e300, best_tile_score = -1e300;
    for (int64_t c = 0; c < k; ++c) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += q[qi * d + j] * key[c * d + j];
      if (s > best_leaf_score) best_leaf_score = s, best_leaf = c;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (leaf[i] != best_leaf) continue;
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += q[qi * d + j] * keys[i * d + j];
      if (s > best_tile_score) best_tile_score = s, best_tile = i;
    }
    EXPECT_EQ(r.ids[qi], best_tile) << "query " << qi;
  }
  leaf[3] = k;  // out of range
  EXPECT_THROW(m.build_from_assignment(leaf.data(), n, k), std::invalid_argument);
}

// ---- Prepared layout (table-lookup float scoring) ----------------------------------------------

namespace {

struct LevelGuard {
  trix::SimdLevel before = trix::simd_level();
  int threads = trix::get_num_threads();
  ~LevelGuard() {
    trix::set_simd_level(before);
    trix::set_num_threads(threads);
  }
};

// Checks r (k results per query) against brute force: integer-valued queries give exact float sums,
// so ids and scores must match exactly (ties: lowest id); other queries within the float tolerance.
void expect_brute(const SearchResult& r, const std::vector<float>& q, int64_t nq, const std::vector<int8_t>& sig,
                  int64_t n, int64_t d, int64_t k, bool integral, const std::string& what) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < nq; ++i) {
    const auto b = brute(q.data() + i * d, sig, ids, d, k);
    double mag = 0;
    for (int64_t j = 0; j < d; ++j) mag += std::fabs(q[i * d + j]);
    const float tol = 1e-5f * static_cast<float>(mag) + 1e-6f;
    for (int64_t j = 0; j < k; ++j) {
      if (j >= static_cast<int64_t>(b.size())) {
        EXPECT_EQ(r.ids[i * k + j], -1) << what;
        continue;
      }
      if (integral) {
        EXPECT_EQ(r.ids[i * k + j], b[j].second) << what << " query " << i << " rank " << j;
        EXPECT_EQ(r.scores[i * k + j], b[j].first) << what << " query " << i << " rank " << j;
      } else {
        EXPECT_NEAR(r.scores[i * k + j], b[j].first, tol) << what << " query " << i << " rank " << j;
        const int64_t id = r.ids[i * k + j];
        ASSERT_GE(id, 0) << what;
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += double(q[i * d + c]) * sig[id * d + c];
        EXPECT_NEAR(r.scores[i * k + j], s, tol) << what << " query " << i << " rank " << j;
      }
    }
  }
}

}  // namespace

TEST(MemoryPrepared, ExactMatchesBruteForceAtEveryLevel) {
  LevelGuard guard;
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    for (int64_t n : {1, 15, 16, 17, 33, 1000})
      for (int64_t d : {1, 5, 64, 129, 256}) {
        const int64_t nq = 6, k = 3;
        // Few distinct keys: many exact ties between ids.
        auto sig = planted(n, d, 3, 0.2, static_cast<uint32_t>(n * 7 + d));
        for (int64_t j = 0; j < d && n > 9; ++j) sig[9 * d + j] = sig[2 * d + j];  // a duplicate key
        SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
        if (n >= 33) m.build();
        m.prepare();
        EXPECT_TRUE(m.prepared());
        EXPECT_GE(m.prepared_nbytes(), n * trix::packed_row_bytes(d));
        const std::string what = std::string(trix::simd_level_name(l)) + " n=" + std::to_string(n) + " d=" + std::to_string(d);
        SearchOptions o;
        o.k = k;
        o.exact = true;
        // Integer-valued queries (exact sums, ties) and Gaussian ones.
        std::vector<float> qi(static_cast<size_t>(nq * d)), qf = trix_test::random_floats(nq * d, static_cast<uint32_t>(n + d));
        const auto qq = trix_test::random_int8(nq * d, static_cast<uint32_t>(n * 3 + d));
        for (size_t j = 0; j < qi.size(); ++j) qi[j] = static_cast<float>(qq[j] % 3);
        std::fill(qi.begin(), qi.begin() + d, 1.0f);
        expect_brute(m.search(qi.data(), nq, o), qi, nq, sig, n, d, k, true, what + " integral");
        expect_brute(m.search(qf.data(), nq, o), qf, nq, sig, n, d, k, false, what + " float");
        // The tree with every leaf probed searches the same prepared leaves.
        SearchOptions all = o;
        all.exact = false;
        all.probes = m.num_clusters();
        EXPECT_EQ(m.search(qi.data(), nq, all).ids, m.search(qi.data(), nq, o).ids) << what;
        // int8 queries never use the layout: exact and unchanged.
        SearchOptions oi = o;
        const auto ri = m.search_i8(qq.data(), nq, oi);
        m.prepare(false);
        EXPECT_EQ(m.prepared_nbytes(), 0);
        EXPECT_EQ(m.search_i8(qq.data(), nq, oi).scores, ri.scores) << what;
      }
  }
}

TEST(MemoryPrepared, IndependentOfThreadsAndChunking) {
  LevelGuard guard;
  const int64_t n = 1000, d = 256, nq = 300, k = 4;
  const auto sig = planted(n, d, 20, 0.4, 41);
  const auto q = trix_test::random_floats(nq * d, 42);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  m.build();
  m.prepare();
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    for (bool exact : {true, false}) {
      SearchOptions o;
      o.k = k;
      o.exact = exact;
      o.probes = 3;
      trix::set_num_threads(1);
      const auto one = m.search(q.data(), nq, o);
      trix::set_num_threads(2);
      const auto two = m.search(q.data(), nq, o);
      EXPECT_EQ(one.ids, two.ids) << trix::simd_level_name(l);
      EXPECT_EQ(one.scores, two.scores) << trix::simd_level_name(l);
      // A query alone gets the same answer as in the batch.
      for (int64_t i : {0, 77, 299}) {
        const auto single = m.search(q.data() + i * d, 1, o);
        for (int64_t j = 0; j < k; ++j) {
          EXPECT_EQ(single.ids[j], one.ids[i * k + j]);
          EXPECT_EQ(single.scores[j], one.scores[i * k + j]);
        }
      }
      if (exact) expect_brute(one, q, nq, sig, n, d, k, false, trix::simd_level_name(l));
    }
  }
}

TEST(MemoryPrepared, UpdatesKeepTheLayoutCurrentAndItIsNeverSaved) {
  const int64_t n = 400, d = 129;
  const auto sig = planted(n, d, 8, 0.3, 51);
  SignatureMemory m = SignatureMemory::from_int8(sig.data(), n, d);
  trix::IndexOptions io;
  io.auto_rebuild = false;
  m.build(io);
  m.prepare();
  const auto extra = trix_test::random_ternary(37 * d, 52);
  m.add(extra.data(), 37);
  std::vector<int64_t> gone{0, 5, 16, 17, 399, n + 3};
  m.remove(gone.data(), static_cast<int64_t>(gone.size()));
  const auto rep = trix_test::random_ternary(2 * d, 53);
  std::vector<int64_t> rid{8, n + 30};
  m.replace(rid.data(), 2, rep.data());
  // A copy prepared from scratch and the unprepared memory agree with the maintained layout.
  SignatureMemory fresh = m;
  fresh.prepare(false);
  fresh.prepare();
  SignatureMemory plain = m;
  plain.prepare(false);
  EXPECT_EQ(fresh.prepared_nbytes(), m.prepared_nbytes());
  const auto q = trix_test::random_floats(20 * d, 54);
  SearchOptions o;
  o.k = 5;
  o.exact = true;
  const auto a = m.search(q.data(), 20, o), b = fresh.search(q.data(), 20, o), c = plain.search(q.data(), 20, o);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.scores, b.scores);
  for (size_t i = 0; i < a.scores.size(); ++i) EXPECT_NEAR(a.scores[i], c.scores[i], 1e-3f);
  // Still current after a rebuild; a saved and loaded memory starts unprepared.
  m.build(io);
  EXPECT_TRUE(m.prepared());
  const auto e = m.search(q.data(), 20, o);
  EXPECT_EQ(e.ids, a.ids);
  const auto bytes = m.serialize();
  SignatureMemory back = SignatureMemory::deserialize(bytes.data(), bytes.size());
  EXPECT_FALSE(back.prepared());
  EXPECT_EQ(back.prepared_nbytes(), 0);
  EXPECT_EQ(back.serialize(), bytes);
}
