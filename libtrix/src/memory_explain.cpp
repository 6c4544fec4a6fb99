// Grouped batch lookup (inputs of one tile contiguous) and explanations of a single lookup.
#include <algorithm>
#include <numeric>

#include "memory_internal.h"
#include "trix/error.h"

namespace trix {

namespace {
Grouping group(SearchResult&& r) {
  Grouping g;
  std::vector<std::pair<int64_t, int64_t>> pairs;  // (tile id, pair index)
  for (int64_t p = 0; p < r.n * r.k; ++p)
    if (r.ids[p] >= 0) pairs.emplace_back(r.ids[p], p);
  std::sort(pairs.begin(), pairs.end());
  g.perm.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i == 0 || pairs[i].first != pairs[i - 1].first) {
      g.tiles.push_back(pairs[i].first);
      g.offsets.push_back(static_cast<int64_t>(i));
    }
    g.perm.push_back(pairs[i].second);
  }
  g.offsets.push_back(static_cast<int64_t>(pairs.size()));
  g.result = std::move(r);
  return g;
}
}  // namespace

Grouping SignatureMemory::lookup(const float* q, int64_t n, const SearchOptions& opt, bool quantize) const {
  TRIX_MEMORY_READ(*this);
  return group(search(q, n, opt, quantize));
}

Grouping SignatureMemory::lookup_i8(const int8_t* q, int64_t n, const SearchOptions& opt) const {
  TRIX_MEMORY_READ(*this);
  return group(search_i8(q, n, opt));
}

Explanation SignatureMemory::explain(const float* q, const SearchOptions& opt) const {
  TRIX_MEMORY_READ(*this);
  TRIX_CHECK_ARG(q != nullptr, "SignatureMemory.explain", "query", "must not be null");
  TRIX_CHECK_ARG(size_ >= 1, "SignatureMemory.explain", "self", "must hold at least one tile");
  SearchOptions o = opt;
  o.k = 2;
  const SearchResult r = search(q, 1, o);
  o.k = 1, o.exact = true;
  const SearchResult ex = search(q, 1, o);
  Explanation e;
  e.id = r.ids[0], e.score = r.scores[0];
  e.runner_up = r.ids[1], e.runner_up_score = r.scores[1];
  e.margin = e.runner_up >= 0 ? e.score - e.runner_up_score : 0.0f;
  e.scored = r.scored[0];
  e.exact_id = ex.ids[0], e.exact_score = ex.scores[0];
  if (!levels_.empty()) {  // the winner's leaf and its ancestors, top first, with the query's scores
    int64_t node = cluster_of(e.id);
    std::vector<int64_t> path{node};
    for (int64_t l = static_cast<int64_t>(levels_.size()) - 2; l >= 0; --l) {
      const auto& cb = levels_[l].child_begin;
      node = (std::upper_bound(cb.begin(), cb.end(), node) - cb.begin()) - 1;
      path.push_back(node);
    }
    std::reverse(path.begin(), path.end());
    std::vector<int32_t> tmp;
    for (size_t l = 0; l < path.size(); ++l) {
      float s = 0;
      mem::score(q, 1, dim_, levels_[l].route.data() + path[l] * rb_, 1, &s, 1, tmp);
      e.path_scores.push_back(s * levels_[l].route_scale[path[l]]);  // the score search ranks nodes by
    }
    e.path = std::move(path);
  }
  return e;
}

}  // namespace trix
