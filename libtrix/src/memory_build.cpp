// Building the tree: balanced k-means over the tiles (2 levels), or top-down over groups of tiles
// then leaves inside each group (3 levels), with ternary node signatures (sign of member sums).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "memory_internal.h"
#include "trix/error.h"

namespace trix {

namespace {
// Splits rows [n, d] into k balanced clusters; returns members of each cluster in row order.
std::vector<std::vector<int64_t>> split(const int8_t* x, int64_t n, int64_t d, int64_t k, KMeansOptions o) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(k));
  if (k == 1) {
    out[0].resize(static_cast<size_t>(n));
    std::iota(out[0].begin(), out[0].end(), 0);
    return out;
  }
  const std::vector<int32_t> a = balanced_kmeans(x, n, d, k, o);
  for (int64_t i = 0; i < n; ++i) out[a[i]].push_back(i);
  return out;
}
}  // namespace

void SignatureMemory::build(const IndexOptions& opt) {
  TRIX_MEMORY_WRITE(*this);
  const char* f = "SignatureMemory.build";
  TRIX_CHECK_ARG(opt.levels == 0 || opt.levels == 2 || opt.levels == 3, f, "levels", "must be 0 (auto), 2 or 3, got ",
                 opt.levels);
  TRIX_CHECK_ARG(opt.leaf_size >= 0, f, "leaf_size", "must be >= 0 (0 = sqrt(n)), got ", opt.leaf_size);
  TRIX_CHECK_ARG(opt.rebuild_factor > 1.0, f, "rebuild_factor", "must be > 1, got ", opt.rebuild_factor);
  TRIX_CHECK_ARG(opt.kmeans.iters >= 1, f, "iters", "must be >= 1, got ", opt.kmeans.iters);
  TRIX_CHECK_ARG(opt.kmeans.slack >= 0, f, "slack", "must be >= 0, got ", opt.kmeans.slack);
  check_index_options(opt, f);  // and the maxima a saved memory must respect
  opts_ = opt;
  dirty_ = false;
  sign_routes_ = false;
  const int64_t n = size_;
  // Every tile by ascending id: the tree depends on the stored set, not on the order of updates.
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int64_t id = 0; id < next_id_; ++id)
    if (loc_[static_cast<size_t>(id)].cluster >= 0) ids.push_back(id);
  std::vector<int8_t> x(static_cast<size_t>(n * dim_));
  get(ids.data(), n, x.data());

  const int levels = opt.levels ? opt.levels : (n <= kThreeLevelTiles ? 2 : 3);
  const int64_t leaf = opt.leaf_size ? opt.leaf_size : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(double(n)))));
  const int64_t nleaves = std::max<int64_t>(1, std::min(n, (n + leaf - 1) / leaf));
  const int64_t groups = levels == 3 ? std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(double(nleaves))))) : 1;

  std::vector<std::vector<int64_t>> leaves;  // rows of x per leaf
  std::vector<int64_t> group_begin{0};
  if (n > 0) {
    const auto top = split(x.data(), n, dim_, groups, opt.kmeans);
    for (int64_t g = 0; g < groups; ++g) {
      const auto& rows = top[g];
      const int64_t ng = static_cast<int64_t>(rows.size());
      const int64_t kg = groups == 1 ? nleaves : std::max<int64_t>(1, std::min(ng, (ng + leaf - 1) / leaf));
      std::vector<int8_t> xg(static_cast<size_t>(ng * dim_));
      for (int64_t i = 0; i < ng; ++i) std::copy(x.begin() + rows[i] * dim_, x.begin() + (rows[i] + 1) * dim_, xg.begin() + i * dim_);
      KMeansOptions o = opt.kmeans;
      o.seed = opt.kmeans.seed + 0x9E3779B9ull * static_cast<uint64_t>(g + 1);
      for (auto& members : split(xg.data(), ng, dim_, kg, o)) {
        for (auto& r : members) r = rows[r];
        leaves.push_back(std::move(members));
      }
      group_begin.push_back(static_cast<int64_t>(leaves.size()));
    }
  } else {
    leaves.resize(1);
    group_begin.push_back(1);
  }

  install(ids, x, leaves, group_begin);
}

void SignatureMemory::install(const std::vector<int64_t>& ids, const std::vector<int8_t>& x,
                              const std::vector<std::vector<int64_t>>& leaves, const std::vector<int64_t>& group_begin) {
  const int64_t groups = static_cast<int64_t>(group_begin.size()) - 1;
  const int64_t nl = static_cast<int64_t>(leaves.size());
  clusters_.assign(static_cast<size_t>(nl), Cluster{});
  Level leaf_level;
  leaf_level.count = nl;
  leaf_level.sig.resize(static_cast<size_t>(nl * rb_));
  leaf_level.child_begin.resize(static_cast<size_t>(nl + 1));
  std::iota(leaf_level.child_begin.begin(), leaf_level.child_begin.end(), 0);
  for (int64_t c = 0; c < nl; ++c) {
    Cluster& cl = clusters_[c];
    cl.sum.assign(static_cast<size_t>(dim_), 0);
    cl.rows.resize(leaves[c].size() * static_cast<size_t>(rb_));
    for (size_t p = 0; p < leaves[c].size(); ++p) {
      const int64_t r = leaves[c][p];
      cl.ids.push_back(ids[r]);
      pack_int8(x.data() + r * dim_, 1, dim_, cl.rows.data() + p * rb_);
      for (int64_t j = 0; j < dim_; ++j) cl.sum[j] += x[r * dim_ + j];
      loc_[static_cast<size_t>(ids[r])] = Loc{static_cast<int32_t>(c), static_cast<int32_t>(p)};
    }
    mem::pack_sign(cl.sum.data(), dim_, leaf_level.sig.data() + c * rb_);
  }
  levels_.clear();
  if (groups > 1) {
    Level top;
    top.count = groups;
    top.sig.resize(static_cast<size_t>(groups * rb_));
    top.child_begin = group_begin;
    std::vector<int32_t> sum(static_cast<size_t>(dim_));
    for (int64_t g = 0; g < groups; ++g) {
      std::fill(sum.begin(), sum.end(), 0);
      for (int64_t c = group_begin[g]; c < group_begin[g + 1]; ++c)
        for (int64_t j = 0; j < dim_; ++j) sum[j] += clusters_[c].sum[j];
      mem::pack_sign(sum.data(), dim_, top.sig.data() + g * rb_);
    }
    levels_.push_back(std::move(top));
  }
  levels_.push_back(std::move(leaf_level));
  refresh_routes();
  built_size_ = size_;
  if (prepared_)
    for (Cluster& cl : clusters_) prepare_cluster(cl);
}

void SignatureMemory::build_from_assignment(const int32_t* leaf_of, int64_t n, int64_t k, bool sign_routes) {
  TRIX_MEMORY_WRITE(*this);
  const char* f = "SignatureMemory.build_from_assignment";
  TRIX_CHECK_ARG(n == size_, f, "assignment", "must have one entry per stored tile (", size_, "), got ", n);
  TRIX_CHECK_ARG(k >= 1, f, "clusters", "must be >= 1, got ", k);
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int64_t id = 0; id < next_id_; ++id)
    if (loc_[static_cast<size_t>(id)].cluster >= 0) ids.push_back(id);
  std::vector<std::vector<int64_t>> leaves(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    TRIX_CHECK_ARG(leaf_of[i] >= 0 && leaf_of[i] < k, f, "assignment", "must hold clusters in [0, ", k, "), got ",
                   leaf_of[i], " at ", i);
    leaves[leaf_of[i]].push_back(i);
  }
  for (int64_t c = 0; c < k; ++c)
    TRIX_CHECK_ARG(!leaves[c].empty(), f, "assignment", "leaves cluster ", c, " empty");
  std::vector<int8_t> x(static_cast<size_t>(n * dim_));
  get(ids.data(), n, x.data());
  opts_ = IndexOptions{};
  opts_.levels = 2;
  opts_.auto_rebuild = false;  // the caller owns the clustering: never replace it behind its back
  dirty_ = false;
  sign_routes_ = sign_routes;
  install(ids, x, leaves, {0, k});
}

// Routing keys follow the clusters' sums: a node's sum is the total of the leaves under it.
void SignatureMemory::refresh_node_route(size_t l, int64_t c) {
  Level& lv = levels_[l];
  if (lv.route.size() != lv.sig.size()) lv.route.assign(lv.sig.size(), kZeroByte);
  lv.route_scale.resize(static_cast<size_t>(lv.count));
  int64_t lo = c, hi = c + 1;
  for (size_t i = l; i + 1 < levels_.size(); ++i) lo = levels_[i].child_begin[lo], hi = levels_[i].child_begin[hi];
  std::vector<int64_t> sum(static_cast<size_t>(dim_), 0);
  int64_t count = 0;
  for (int64_t leaf = lo; leaf < hi; ++leaf) {
    const Cluster& cl = clusters_[static_cast<size_t>(leaf)];
    for (int64_t j = 0; j < dim_; ++j) sum[j] += cl.sum[j];
    count += static_cast<int64_t>(cl.ids.size());
  }
  if (sign_routes_) {  // the caller's rule: sign of the members' sum, unscaled
    std::vector<int32_t> sgn(static_cast<size_t>(dim_));
    for (int64_t j = 0; j < dim_; ++j) sgn[j] = (sum[j] > 0) - (sum[j] < 0);
    mem::pack_sign(sgn.data(), dim_, lv.route.data() + c * rb_);
    lv.route_scale[c] = 1.0f;
    return;
  }
  lv.route_scale[c] = mem::route_key(sum.data(), count, dim_, lv.route.data() + c * rb_);
}

void SignatureMemory::refresh_route(int64_t c) {
  for (size_t l = levels_.size(); l-- > 0;) {
    refresh_node_route(l, c);
    if (l > 0) {
      const auto& cb = levels_[l - 1].child_begin;
      c = (std::upper_bound(cb.begin(), cb.end(), c) - cb.begin()) - 1;
    }
  }
}

void SignatureMemory::refresh_routes() {
  for (size_t l = 0; l < levels_.size(); ++l)
    for (int64_t c = 0; c < levels_[l].count; ++c) refresh_node_route(l, c);
}

}  // namespace trix
