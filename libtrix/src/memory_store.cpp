// SignatureMemory storage and the living-memory operations: add, remove, replace without a rebuild.
// Tiles live in their leaf cluster as contiguous packed rows; an id map gives (cluster, position).
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "memory_internal.h"
#include "trix/error.h"
#include "trix/signature.h"

namespace trix {

namespace {
thread_local std::vector<const SignatureMemory*> t_held;  // memories this thread has locked
}  // namespace

MemoryGuard::MemoryGuard(const SignatureMemory& m, bool exclusive) : exclusive_(exclusive) {
  if (std::find(t_held.begin(), t_held.end(), &m) != t_held.end()) return;
  if (exclusive) m.mu_.m.lock();
  else m.mu_.m.lock_shared();
  owner_ = &m;
  t_held.push_back(&m);
}

MemoryGuard::~MemoryGuard() {
  if (owner_ == nullptr) return;
  t_held.erase(std::find(t_held.begin(), t_held.end(), owner_));
  if (exclusive_) owner_->mu_.m.unlock();
  else owner_->mu_.m.unlock_shared();
}

void check_index_options(const IndexOptions& o, const char* f) {
  TRIX_CHECK_ARG(o.levels == 0 || o.levels == 2 || o.levels == 3, f, "levels", "must be 0 (auto), 2 or 3, got ", o.levels);
  TRIX_CHECK_ARG(o.leaf_size >= 0 && o.leaf_size <= kMaxMemoryIds, f, "leaf_size", "must be in [0, ", kMaxMemoryIds,
                 "] (0 = sqrt(n)), got ", o.leaf_size);
  TRIX_CHECK_ARG(o.rebuild_factor > 1.0 && o.rebuild_factor <= kMaxRebuildFactor, f, "rebuild_factor", "must be in (1, ",
                 kMaxRebuildFactor, "], got ", o.rebuild_factor);
  TRIX_CHECK_ARG(o.kmeans.iters >= 1 && o.kmeans.iters <= kMaxKMeansIters, f, "iters", "must be in [1, ", kMaxKMeansIters,
                 "], got ", o.kmeans.iters);
  TRIX_CHECK_ARG(o.kmeans.slack >= 0 && o.kmeans.slack <= kMaxSlack, f, "slack", "must be in [0, ", kMaxSlack, "], got ",
                 o.kmeans.slack);
  TRIX_CHECK_ARG(o.kmeans.max_train_per_cluster >= 1 && o.kmeans.max_train_per_cluster <= kMaxTrainPerCluster, f,
                 "max_train_per_cluster", "must be in [1, ", kMaxTrainPerCluster, "], got ", o.kmeans.max_train_per_cluster);
}

namespace {
void check_ternary(const int8_t* s, int64_t n, int64_t d, const char* f, const char* arg) {
  TRIX_CHECK_ARG(n == 0 || s != nullptr, f, arg, "must not be null");
  for (int64_t i = 0; i < n * d; ++i)
    TRIX_CHECK_ARG(s[i] >= -1 && s[i] <= 1, f, arg, "must hold -1, 0 or 1, got ", int(s[i]), " at [", i / d,
                   ", ", i % d, "]");
}
}  // namespace

SignatureMemory::SignatureMemory(int64_t dim) {
  TRIX_CHECK_ARG(dim >= 1 && dim <= kMaxMemoryDim, "SignatureMemory", "dim", "must be in [1, ", kMaxMemoryDim, "], got ", dim);
  dim_ = dim;
  rb_ = packed_row_bytes(dim);
  clusters_.resize(1);
  clusters_[0].sum.assign(static_cast<size_t>(dim), 0);
}

SignatureMemory SignatureMemory::from_int8(const int8_t* sigs, int64_t n, int64_t d) {
  SignatureMemory m(d);
  m.add(sigs, n);
  return m;
}

SignatureMemory SignatureMemory::from_packed(const TernaryView& sig) {
  check_view(sig, "SignatureMemory.from_packed", "sig");
  validate_packed(sig.data, sig.rows, sig.cols, "SignatureMemory.from_packed");
  std::vector<int8_t> s(static_cast<size_t>(sig.rows * sig.cols));
  unpack_int8(sig.data, sig.rows, sig.cols, s.data());
  return from_int8(s.data(), sig.rows, sig.cols);
}

SignatureMemory SignatureMemory::from_tiles(const TernaryView& up, int64_t tiles) {
  TRIX_CHECK_ARG(tiles >= 1, "SignatureMemory.from_tiles", "tiles", "must be >= 1, got ", tiles);
  check_view(up, "SignatureMemory.from_tiles", "up");
  validate_packed(up.data, up.rows, up.cols, "SignatureMemory.from_tiles");
  std::vector<int8_t> s(static_cast<size_t>(tiles * up.cols));
  tile_signatures(up, tiles, s.data());
  return from_int8(s.data(), tiles, up.cols);
}

int64_t SignatureMemory::size() const {
  TRIX_MEMORY_READ(*this);
  return size_;
}
int64_t SignatureMemory::next_id() const {
  TRIX_MEMORY_READ(*this);
  return next_id_;
}
int SignatureMemory::levels() const {
  TRIX_MEMORY_READ(*this);
  return static_cast<int>(levels_.size()) + 1;
}
int64_t SignatureMemory::num_clusters() const {
  TRIX_MEMORY_READ(*this);
  return static_cast<int64_t>(clusters_.size());
}
bool SignatureMemory::prepared() const {
  TRIX_MEMORY_READ(*this);
  return prepared_;
}
bool SignatureMemory::needs_rebuild() const {
  TRIX_MEMORY_READ(*this);
  return dirty_;
}

bool SignatureMemory::contains(int64_t id) const {
  TRIX_MEMORY_READ(*this);
  return id >= 0 && id < next_id_ && loc_[static_cast<size_t>(id)].cluster >= 0;
}

int64_t SignatureMemory::cluster_of(int64_t id) const {
  TRIX_MEMORY_READ(*this);
  TRIX_CHECK_ARG(contains(id), "SignatureMemory.cluster_of", "id", "must be a stored id, got ", id);
  return loc_[static_cast<size_t>(id)].cluster;
}

std::vector<int64_t> SignatureMemory::cluster_sizes() const {
  TRIX_MEMORY_READ(*this);
  std::vector<int64_t> s;
  for (const Cluster& c : clusters_) s.push_back(static_cast<int64_t>(c.ids.size()));
  return s;
}

int64_t SignatureMemory::nbytes() const {
  TRIX_MEMORY_READ(*this);
  int64_t b = static_cast<int64_t>(loc_.size() * sizeof(Loc));
  for (const Cluster& c : clusters_)
    b += static_cast<int64_t>(c.rows.size() + c.ids.size() * sizeof(int64_t) + c.sum.size() * sizeof(int32_t));
  for (const Level& l : levels_)
    b += static_cast<int64_t>(l.sig.size() + l.child_begin.size() * sizeof(int64_t) + l.route.size() +
                              l.route_scale.size() * sizeof(float));
  return b;
}

void SignatureMemory::prepare_cluster(Cluster& cl) const {
  const int64_t m = static_cast<int64_t>(cl.ids.size());
  cl.lut.assign(static_cast<size_t>(kernels::lut_groups(m) * rb_ * kernels::kLutRows + kernels::kLutSlack), kZeroByte);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t b = 0; b < rb_; ++b) cl.lut[kernels::lut_offset(rb_, r, b)] = cl.rows[r * rb_ + b];
}

void SignatureMemory::prepare(bool on) {
  TRIX_MEMORY_WRITE(*this);
  prepared_ = on;
  for (Cluster& cl : clusters_) {
    if (on) prepare_cluster(cl);
    else std::vector<uint8_t>().swap(cl.lut);
  }
}

int64_t SignatureMemory::prepared_nbytes() const {
  TRIX_MEMORY_READ(*this);
  int64_t b = 0;
  for (const Cluster& c : clusters_) b += static_cast<int64_t>(c.lut.size());
  return b;
}

// Greedy descent: the best node at each level, then the best leaf under it (exact for 2 levels).
int64_t SignatureMemory::nearest_leaf(const int8_t* sig) const {
  std::vector<int32_t> tmp;
  std::vector<float> s;
  int64_t lo = 0, hi = levels_[0].count, best = 0;
  for (size_t l = 0; l < levels_.size(); ++l) {
    s.resize(static_cast<size_t>(hi - lo));
    mem::score(sig, 1, dim_, levels_[l].route.data() + lo * rb_, hi - lo, s.data(), hi - lo, tmp);
    mem::TopK top(1);  // ranked as search ranks nodes: by routing key
    const bool inner = l + 1 < levels_.size();
    for (int64_t r = 0; r < hi - lo; ++r)  // a node with no children (a loaded file may hold one) is no path
      if (!inner || levels_[l].child_begin[lo + r] < levels_[l].child_begin[lo + r + 1])
        top.push({s[r] * levels_[l].route_scale[lo + r], lo + r});
    if (top.v.empty()) return 0;  // no non-empty range under this node: fall back to the first cluster
    best = top.v[0].id;
    if (l + 1 < levels_.size()) lo = levels_[l].child_begin[best], hi = levels_[l].child_begin[best + 1];
  }
  return best;
}

void SignatureMemory::refresh_leaf_signature(int64_t c) {
  if (levels_.empty()) return;
  mem::pack_sign(clusters_[c].sum.data(), dim_, levels_.back().sig.data() + c * rb_);
  refresh_route(c);
}

void SignatureMemory::insert(int64_t id, const int8_t* sig) {
  const int64_t c = levels_.empty() ? 0 : nearest_leaf(sig);
  Cluster& cl = clusters_[c];
  const int64_t pos = static_cast<int64_t>(cl.ids.size());
  cl.rows.resize(static_cast<size_t>((pos + 1) * rb_));
  pack_int8(sig, 1, dim_, cl.rows.data() + pos * rb_);
  cl.ids.push_back(id);
  if (prepared_) {
    cl.lut.resize(static_cast<size_t>(kernels::lut_groups(pos + 1) * rb_ * kernels::kLutRows + kernels::kLutSlack),
                  kZeroByte);
    for (int64_t b = 0; b < rb_; ++b) cl.lut[kernels::lut_offset(rb_, pos, b)] = cl.rows[pos * rb_ + b];
  }
  for (int64_t j = 0; j < dim_; ++j) cl.sum[j] += sig[j];
  refresh_leaf_signature(c);
  loc_[static_cast<size_t>(id)] = Loc{static_cast<int32_t>(c), static_cast<int32_t>(pos)};
  ++size_;
}

void SignatureMemory::erase(int64_t id) {
  const Loc at = loc_[static_cast<size_t>(id)];
  Cluster& cl = clusters_[at.cluster];
  std::vector<int8_t> sig(static_cast<size_t>(dim_));
  unpack_int8(cl.rows.data() + at.pos * rb_, 1, dim_, sig.data());
  for (int64_t j = 0; j < dim_; ++j) cl.sum[j] -= sig[j];
  const int64_t last = static_cast<int64_t>(cl.ids.size()) - 1;
  if (at.pos != last) {  // the last row fills the hole: rows stay contiguous
    std::copy(cl.rows.begin() + last * rb_, cl.rows.begin() + (last + 1) * rb_, cl.rows.begin() + at.pos * rb_);
    cl.ids[at.pos] = cl.ids[last];
    loc_[static_cast<size_t>(cl.ids[at.pos])].pos = at.pos;
  }
  if (prepared_) {  // same move in the prepared layout; the vacated row becomes zero weights
    for (int64_t b = 0; b < rb_; ++b) {
      cl.lut[kernels::lut_offset(rb_, at.pos, b)] = cl.lut[kernels::lut_offset(rb_, last, b)];
      cl.lut[kernels::lut_offset(rb_, last, b)] = kZeroByte;
    }
    cl.lut.resize(static_cast<size_t>(kernels::lut_groups(last) * rb_ * kernels::kLutRows + kernels::kLutSlack));
  }
  cl.ids.pop_back();
  cl.rows.resize(static_cast<size_t>(last * rb_));
  refresh_leaf_signature(at.cluster);
  loc_[static_cast<size_t>(id)] = Loc{};
  --size_;
}

std::vector<int64_t> SignatureMemory::add(const int8_t* sigs, int64_t n) {
  TRIX_MEMORY_WRITE(*this);
  TRIX_CHECK_ARG(n >= 0, "SignatureMemory.add", "signatures", "must have a non-negative row count, got ", n);
  check_ternary(sigs, n, dim_, "SignatureMemory.add", "signatures");
  TRIX_CHECK_ARG(n <= kMaxMemoryIds - next_id_, "SignatureMemory.add", "signatures", "would exceed ", kMaxMemoryIds,
                 " ids (", next_id_, " issued), got ", n, " more");
  std::vector<int64_t> ids(static_cast<size_t>(n));
  loc_.resize(static_cast<size_t>(next_id_ + n));
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = next_id_++;
    insert(ids[i], sigs + i * dim_);
  }
  check_drift();
  return ids;
}

namespace {
void check_ids(const SignatureMemory& m, const int64_t* ids, int64_t n, const char* f) {
  TRIX_CHECK_ARG(n >= 0, f, "ids", "must have a non-negative length, got ", n);
  std::unordered_set<int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    TRIX_CHECK_ARG(m.contains(ids[i]), f, "ids", "must hold stored ids, got ", ids[i], " at [", i, "]");
    TRIX_CHECK_ARG(seen.insert(ids[i]).second, f, "ids", "must not repeat an id, got ", ids[i], " twice");
  }
}
}  // namespace

void SignatureMemory::remove(const int64_t* ids, int64_t n) {
  TRIX_MEMORY_WRITE(*this);
  check_ids(*this, ids, n, "SignatureMemory.remove");
  for (int64_t i = 0; i < n; ++i) erase(ids[i]);
  check_drift();
}

void SignatureMemory::replace(const int64_t* ids, int64_t n, const int8_t* sigs) {
  TRIX_MEMORY_WRITE(*this);
  check_ids(*this, ids, n, "SignatureMemory.replace");
  check_ternary(sigs, n, dim_, "SignatureMemory.replace", "signatures");
  for (int64_t i = 0; i < n; ++i) {
    erase(ids[i]);
    insert(ids[i], sigs + i * dim_);
  }
  check_drift();
}

void SignatureMemory::get(const int64_t* ids, int64_t n, int8_t* out) const {
  TRIX_MEMORY_READ(*this);
  for (int64_t i = 0; i < n; ++i) {
    TRIX_CHECK_ARG(contains(ids[i]), "SignatureMemory.get", "ids", "must hold stored ids, got ", ids[i], " at [", i, "]");
    const Loc at = loc_[static_cast<size_t>(ids[i])];
    unpack_int8(clusters_[at.cluster].rows.data() + at.pos * rb_, 1, dim_, out + i * dim_);
  }
}

std::vector<int8_t> SignatureMemory::compose(const int64_t* ids, int64_t n) const {
  TRIX_MEMORY_READ(*this);
  TRIX_CHECK_ARG(n >= 1, "SignatureMemory.compose", "ids", "must name at least one tile, got ", n);
  std::vector<int8_t> s(static_cast<size_t>(n * dim_)), out(static_cast<size_t>(dim_));
  get(ids, n, s.data());
  compose_signatures(s.data(), n, dim_, out.data());
  return out;
}

// Drift policy: a leaf past rebuild_factor x its build capacity, or a tile count that grew or shrank
// by rebuild_factor since the build, marks the tree stale (a rebuild re-balances it).
void SignatureMemory::check_drift() {
  if (levels_.empty()) return;
  const double f = opts_.rebuild_factor;
  const double cap = static_cast<double>(
      kmeans_capacity(std::max<int64_t>(built_size_, 1), num_clusters(), opts_.kmeans.slack));
  bool drift = static_cast<double>(size_) > f * static_cast<double>(built_size_) ||
               f * static_cast<double>(size_) < static_cast<double>(built_size_);
  for (const Cluster& c : clusters_) drift = drift || static_cast<double>(c.ids.size()) > f * cap;
  dirty_ = dirty_ || drift;
  if (dirty_ && opts_.auto_rebuild && size_ > 0) build(opts_);
}

}  // namespace trix
