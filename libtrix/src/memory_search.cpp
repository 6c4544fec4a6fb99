// Lookup: exact flat search and the tree search (query -> top nodes per level -> best tiles), with
// queries grouped by the block they score so that each kernel call sees a batch of queries.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "memory_internal.h"
#include "trix/error.h"
#include "trix/quantize.h"
#include "trix/threads.h"

namespace trix {

namespace {

constexpr int64_t kQueryChunk = 256;  // queries per kernel call
constexpr int64_t kRowChunk = 4096;   // signatures per kernel call

// Scores queries qs (rows of q, gathered) against m packed rows and pushes (score, id_of(r)); with
// scale, row r's score is multiplied by scale[r] (routing keys).
template <typename T, typename IdOf>
void scan(const T* q, int64_t d, const std::vector<int64_t>& qs, const uint8_t* rows, int64_t m, int64_t rb,
          IdOf id_of, std::vector<mem::TopK>& tops, std::vector<int64_t>& scored, const float* scale = nullptr) {
  std::vector<T> buf;
  std::vector<float> s;
  std::vector<int32_t> tmp;
  for (size_t i0 = 0; i0 < qs.size(); i0 += kQueryChunk) {
    const int64_t nq = std::min<int64_t>(kQueryChunk, static_cast<int64_t>(qs.size() - i0));
    const T* qb = q + qs[i0] * d;
    if (qs[i0 + nq - 1] - qs[i0] != nq - 1) {  // not a contiguous run of queries: gather them
      buf.resize(static_cast<size_t>(nq * d));
      for (int64_t i = 0; i < nq; ++i) std::copy(q + qs[i0 + i] * d, q + (qs[i0 + i] + 1) * d, buf.begin() + i * d);
      qb = buf.data();
    }
    for (int64_t r0 = 0; r0 < m; r0 += kRowChunk) {
      const int64_t mr = std::min(kRowChunk, m - r0);
      s.resize(static_cast<size_t>(nq * mr));
      mem::score(qb, nq, d, rows + r0 * rb, mr, s.data(), mr, tmp);
      if (scale)
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t r = 0; r < mr; ++r) s[i * mr + r] *= scale[r0 + r];
      for (int64_t i = 0; i < nq; ++i) {
        mem::push_scores(tops[qs[i0 + i]], s.data() + i * mr, mr, [&](int64_t r) { return id_of(r0 + r); });
        scored[qs[i0 + i]] += mr;
      }
    }
  }
}

// The leaves by table lookup over their prepared layouts (float queries, a level with gemv_lut).
// Queries go in chunks whose tables (lut_table_floats(d) floats each) stay within about 512 KiB (in L2); a
// chunk's tables are built once and reused for every leaf. Within a leaf, rows go in spans whose
// layout stays in L2 while each query of the chunk passes over them. Every (query, row) score is the
// same gemv_lut lane whatever the chunking, so answers do not depend on the split.
void scan_leaves_lut(const float* q, int64_t n, int64_t d, int64_t rb,
                     const std::vector<SignatureMemory::Cluster>& clusters,
                     const std::vector<std::vector<int64_t>>& leaf_queries, std::vector<mem::TopK>& tops,
                     std::vector<int64_t>& scored) {
  const kernels::Kernels& kern = kernels::active();
  const int64_t tf = kernels::lut_table_floats(d);
  const int64_t nchunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{1} << 17) / tf));
  constexpr int64_t kSpanMax = 64;  // groups per gemv_lut call (tmp below)
  const int64_t span = std::clamp<int64_t>((int64_t{1} << 18) / (rb * kernels::kLutRows), 1, kSpanMax);
  // Own storage, not kernels::scratch: lut_tables uses scratch slot 1 itself.
  std::vector<float> store(static_cast<size_t>(nchunk * tf + 16));
  float* tables = store.data() + ((16 - (reinterpret_cast<uintptr_t>(store.data()) / sizeof(float)) % 16) % 16);
  alignas(64) float tmp[kernels::kLutRows * kSpanMax];
  for (int64_t i0 = 0; i0 < n; i0 += nchunk) {
    const int64_t i1 = std::min(n, i0 + nchunk);
    std::vector<char> built(static_cast<size_t>(i1 - i0), 0);
    for (size_t c = 0; c < clusters.size(); ++c) {
      const SignatureMemory::Cluster& cl = clusters[c];
      const int64_t m = static_cast<int64_t>(cl.ids.size());
      const std::vector<int64_t>& qs = leaf_queries[c];
      if (m == 0 || qs.empty()) continue;
      const auto qb = std::lower_bound(qs.begin(), qs.end(), i0), qe = std::lower_bound(qs.begin(), qs.end(), i1);
      if (qb == qe) continue;
      for (auto it = qb; it != qe; ++it)
        if (!built[*it - i0]) {
          kern.lut_tables(q + *it * d, d, tables + (*it - i0) * tf);
          built[*it - i0] = 1;
        }
      const int64_t groups = kernels::lut_groups(m);
      for (int64_t g0 = 0; g0 < groups; g0 += span) {
        const int64_t g1 = std::min(groups, g0 + span), r0 = g0 * kernels::kLutRows;
        const int64_t r1 = std::min(m, g1 * kernels::kLutRows);
        for (auto it = qb; it != qe; ++it) {
          kern.gemv_lut(tables + (*it - i0) * tf, rb, cl.lut.data(), g0, g1, tmp);
          const int64_t* ids = cl.ids.data() + r0;
          mem::push_scores(tops[*it], tmp, r1 - r0, [ids](int64_t r) { return ids[r]; });
        }
      }
      for (auto it = qb; it != qe; ++it) scored[*it] += m;
    }
  }
}

// Inverts per-query block lists into per-block query lists (ascending query order).
std::vector<std::vector<int64_t>> by_block(const std::vector<mem::TopK>& sel, int64_t nblocks) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(nblocks));
  for (size_t i = 0; i < sel.size(); ++i)
    for (const mem::Cand& c : sel[i].v) out[static_cast<size_t>(c.id)].push_back(static_cast<int64_t>(i));
  return out;
}

// Splits the queries over the thread pool; each query's answer does not depend on the split.
template <typename T, typename Fn>
SearchResult split_queries(const T* q, int64_t n, int64_t d, int64_t k, Fn one) {
  constexpr int64_t kGrain = 128;
  if (n <= kGrain) return one(q, n);
  SearchResult res;
  res.n = n, res.k = k;
  res.ids.resize(static_cast<size_t>(n * k));
  res.scores.resize(static_cast<size_t>(n * k));
  res.scored.resize(static_cast<size_t>(n));
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    const SearchResult r = one(q + b * d, e - b);
    std::copy(r.ids.begin(), r.ids.end(), res.ids.begin() + b * k);
    std::copy(r.scores.begin(), r.scores.end(), res.scores.begin() + b * k);
    std::copy(r.scored.begin(), r.scored.end(), res.scored.begin() + b);
  });
  return res;
}

}  // namespace

template <typename T>
SearchResult SignatureMemory::search_impl(const T* q, int64_t n, const SearchOptions& opt,
                                          std::vector<std::vector<int64_t>>*) const {
  const char* f = "SignatureMemory.search";
  TRIX_CHECK_ARG(n >= 0, f, "queries", "must have a non-negative row count, got ", n);
  TRIX_CHECK_ARG(n == 0 || q != nullptr, f, "queries", "must not be null");
  TRIX_CHECK_ARG(opt.k >= 1, f, "k", "must be >= 1, got ", opt.k);
  TRIX_CHECK_ARG(opt.probes >= 1, f, "probes", "must be >= 1, got ", opt.probes);
  TRIX_CHECK_ARG(opt.upper_probes >= 0, f, "upper_probes", "must be >= 0 (0 = auto), got ", opt.upper_probes);
  SearchResult res;
  res.n = n, res.k = opt.k;
  res.ids.assign(static_cast<size_t>(n * opt.k), -1);
  res.scores.assign(static_cast<size_t>(n * opt.k), -std::numeric_limits<float>::infinity());
  res.scored.assign(static_cast<size_t>(n), 0);
  std::vector<mem::TopK> best(static_cast<size_t>(n), mem::TopK(opt.k));
  std::vector<std::vector<int64_t>> leaf_queries;
  if (opt.exact || levels_.empty()) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) all[i] = i;
    leaf_queries.assign(clusters_.size(), all);
  } else {
    // Upper levels: keep the best `keep` nodes per query, scoring children of the kept parents.
    const int64_t up = opt.upper_probes ? opt.upper_probes : std::max<int64_t>(2, opt.probes / 2);
    std::vector<mem::TopK> sel;
    for (size_t l = 0; l < levels_.size(); ++l) {
      const Level& lv = levels_[l];
      const int64_t keep = l + 1 == levels_.size() ? opt.probes : up;
      std::vector<mem::TopK> next(static_cast<size_t>(n), mem::TopK(keep));
      if (l == 0) {
        std::vector<int64_t> all(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) all[i] = i;
        scan(q, dim_, all, lv.route.data(), lv.count, rb_, [](int64_t r) { return r; }, next, res.scored,
             lv.route_scale.data());
      } else {
        const Level& parent = levels_[l - 1];
        const auto groups = by_block(sel, parent.count);
        for (int64_t p = 0; p < parent.count; ++p) {
          const int64_t lo = parent.child_begin[p], hi = parent.child_begin[p + 1];
          if (groups[p].empty() || hi == lo) continue;
          scan(q, dim_, groups[p], lv.route.data() + lo * rb_, hi - lo, rb_, [lo](int64_t r) { return lo + r; }, next,
               res.scored, lv.route_scale.data() + lo);
        }
      }
      sel = std::move(next);
    }
    leaf_queries = by_block(sel, static_cast<int64_t>(clusters_.size()));  // workers: no public member
  }
  bool lut = false;
  if constexpr (std::is_same_v<T, float>) {
    const kernels::Kernels& kern = kernels::active();
    lut = prepared_ && dim_ > 0 && kern.gemv_lut != nullptr && kern.lut_tables != nullptr;
    if (lut) scan_leaves_lut(q, n, dim_, rb_, clusters_, leaf_queries, best, res.scored);
  }
  for (size_t c = 0; c < clusters_.size() && !lut; ++c) {
    const Cluster& cl = clusters_[c];
    if (leaf_queries[c].empty() || cl.ids.empty()) continue;
    const int64_t* ids = cl.ids.data();
    scan(q, dim_, leaf_queries[c], cl.rows.data(), static_cast<int64_t>(cl.ids.size()), rb_,
         [ids](int64_t r) { return ids[r]; }, best, res.scored);
  }
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < best[i].v.size(); ++j) {
      res.ids[i * opt.k + j] = best[i].v[j].id;
      res.scores[i * opt.k + j] = best[i].v[j].s;
    }
  return res;
}

SearchResult SignatureMemory::search(const float* q, int64_t n, const SearchOptions& opt, bool quantize) const {
  TRIX_MEMORY_READ(*this);
  if (!quantize)
    return split_queries(q, n, dim_, opt.k, [&](const float* qq, int64_t nn) { return search_impl(qq, nn, opt, nullptr); });
  TRIX_CHECK_ARG(n >= 0, "SignatureMemory.search", "queries", "must have a non-negative row count, got ", n);
  std::vector<int8_t> xq(static_cast<size_t>(n * dim_));
  std::vector<float> xs(static_cast<size_t>(n));
  if (n > 0) quantize_activations(q, n, dim_, xq.data(), xs.data());
  SearchResult r = search_i8(xq.data(), n, opt);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < opt.k; ++j) r.scores[i * opt.k + j] *= xs[i];  // positive: order kept
  return r;
}

SearchResult SignatureMemory::search_i8(const int8_t* q, int64_t n, const SearchOptions& opt) const {
  TRIX_MEMORY_READ(*this);
  return split_queries(q, n, dim_, opt.k, [&](const int8_t* qq, int64_t nn) { return search_impl(qq, nn, opt, nullptr); });
}

template SearchResult SignatureMemory::search_impl<float>(const float*, int64_t, const SearchOptions&,
                                                          std::vector<std::vector<int64_t>>*) const;
template SearchResult SignatureMemory::search_impl<int8_t>(const int8_t*, int64_t, const SearchOptions&,
                                                           std::vector<std::vector<int64_t>>*) const;

}  // namespace trix
