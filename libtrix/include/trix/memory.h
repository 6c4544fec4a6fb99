// A hierarchical content-addressable signature memory (docs/memory.md).
//
// Keys are ternary signatures of dimension d stored in the public packed format (2 bits an element,
// no scales); a lookup scores queries against keys (score = q . sig) with the dispatched kernels.
// Exact flat search, a balanced k-means tree (query -> top-p clusters -> best tiles inside), batch
// lookups grouped for compute, add/remove/replace without a rebuild, explanations and persistence.
// Ties always go to the lowest id (tiles) or the lowest index (clusters).
#pragma once
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <vector>

#include "trix/pack.h"

namespace trix {

// ---- Balanced k-means over int8 rows (ternary signatures, or any int8 vectors) ----------------

struct KMeansOptions {
  uint64_t seed = 0;            // the only source of randomness; same seed, same result everywhere
  int iters = 10;               // Lloyd iterations at most (stops early when nothing moves)
  double slack = 0.1;           // cluster capacity = kmeans_capacity(n, k, slack)
  int64_t max_train_per_cluster = 256;  // train on a sample of k * this rows, then assign all rows
};

// Largest cluster size balanced_kmeans allows: ceil(ceil(n / k) * (1 + slack)).
int64_t kmeans_capacity(int64_t n, int64_t k, double slack);

// x: [n, d] int8. Returns the cluster of every row in [0, k). Every cluster holds between 1 and
// kmeans_capacity(n, k, slack) rows. Rows are assigned by the routing key of each cluster (the
// scaled ternary vector nearest its members' mean, as search ranks leaves); a cluster left with
// under a quarter of the capacity is reseeded at the row that fits its best cluster worst.
// centroids, if not null, receives the sign of each cluster's member sum as int8 [k, d].
// Integer scores, correctly rounded double arithmetic and a seeded RNG: deterministic.
std::vector<int32_t> balanced_kmeans(const int8_t* x, int64_t n, int64_t d, int64_t k,
                                     const KMeansOptions& opt = {}, int8_t* centroids = nullptr);

// Sum-then-sign of m int8 rows [m, d] into out [d] (a zero sum gives 0): compositional keys.
void compose_signatures(const int8_t* sigs, int64_t m, int64_t d, int8_t* out);

// ---- The memory --------------------------------------------------------------------------------

struct IndexOptions {
  int levels = 0;              // levels of the tree including the tile level: 2, 3; 0 = 2 up to
                               // kThreeLevelTiles (32M) tiles, 3 above
  int64_t leaf_size = 0;       // target tiles per leaf cluster; 0 = ceil(sqrt(n))
  KMeansOptions kmeans{0, 10, 0.1, 64};  // seed, iterations, slack, sample of every k-means of the build
  double rebuild_factor = 2.0; // a leaf past rebuild_factor * its capacity, or a tile count that moved
                               // by that factor since the build, marks the index for a rebuild
  bool auto_rebuild = true;    // rebuild at the end of the add/remove/replace that marks it
};
// Measured (docs/memory.md "Ten million keys"): a group's key (its members' mean) is a weak key
// when groups are unions of unrelated families, so 3 levels lose most of the recall (10M family keys:
// recall@1 0.08 at 1 probe against 0.97 with 2 levels, built in 4.8 min). 3 levels only where the
// 2-level build (N * sqrt(N) scores) would take hours.
constexpr int64_t kThreeLevelTiles = int64_t(1) << 25;

struct SearchOptions {
  int64_t k = 1;             // results per query, best first
  int64_t probes = 1;        // leaf clusters searched per query (p); ignored by exact search
  int64_t upper_probes = 0;  // nodes kept per upper level of a 3-level tree; 0 = max(2, probes / 2)
  bool exact = false;        // flat exact search over every tile
};

// Per query: ids [n, k] (-1 where fewer than k tiles exist), scores [n, k], and how many signatures
// were scored for that query (cluster signatures included).
struct SearchResult {
  int64_t n = 0, k = 0;
  std::vector<int64_t> ids;
  std::vector<float> scores;
  std::vector<int64_t> scored;
};

// Inputs of the same tile together: pair p = i * k + j is (query i, its j-th result). perm lists the
// pairs ordered by tile id (ascending) then by p; the pairs of tiles[t] are
// perm[offsets[t] .. offsets[t+1]). For k = 1 the pairs are the query rows.
struct Grouping {
  SearchResult result;
  std::vector<int64_t> tiles;    // distinct tile ids, ascending
  std::vector<int64_t> offsets;  // tiles.size() + 1
  std::vector<int64_t> perm;     // n * k (pairs whose id is -1 are left out)
};

struct Explanation {
  int64_t id = -1;             // the winner
  float score = 0;
  int64_t runner_up = -1;      // the second best tile found (-1 if none)
  float runner_up_score = 0;
  float margin = 0;            // score - runner_up_score
  std::vector<int64_t> path;   // node chosen at each upper level, then the leaf cluster
  std::vector<float> path_scores;
  int64_t scored = 0;
  int64_t exact_id = -1;       // the exact search winner, to tell a hierarchy miss from a true answer
  float exact_score = 0;
};

// Limits of a memory (docs/memory.md "File format"); a file outside them is a FormatError.
constexpr int64_t kMaxMemoryDim = int64_t(1) << 23;  // = kMaxI8Depth: int8 scores stay exact
constexpr int64_t kMaxMemoryIds = int64_t(1) << 40;  // ids ever issued
constexpr int kMaxKMeansIters = 1000;
constexpr int64_t kMaxTrainPerCluster = int64_t(1) << 24;
constexpr double kMaxSlack = 1000.0;
constexpr double kMaxRebuildFactor = 1e6;
// Checks the ranges of every field of opt (the maxima above); throws std::invalid_argument naming it.
void check_index_options(const IndexOptions& opt, const char* func);

namespace detail {
// A shared mutex that a copy or move of its owner does not share: each memory has its own.
struct MemoryMutex {
  std::shared_mutex m;
  MemoryMutex() = default;
  MemoryMutex(const MemoryMutex&) {}
  MemoryMutex& operator=(const MemoryMutex&) { return *this; }
};
}  // namespace detail

// Thread safety: every public member takes the memory's shared mutex, shared for lookups, get,
// compose, explain and save, exclusive for add, remove, replace, build and prepare; so concurrent
// lookups run in parallel and a writer waits for them (and they for it). Copying or moving a memory,
// and the reference index_options() returns, are not synchronized.
class SignatureMemory {
 public:
  explicit SignatureMemory(int64_t dim);

  // sigs: [n, d] int8 in {-1, 0, 1}; ids are 0..n-1.
  static SignatureMemory from_int8(const int8_t* sigs, int64_t n, int64_t d);
  // A packed [n, d] matrix (scales ignored).
  static SignatureMemory from_packed(const TernaryView& sig);
  // Tile signatures read from a tiled up-projection (trix/signature.h).
  static SignatureMemory from_tiles(const TernaryView& up, int64_t tiles);

  int64_t dim() const { return dim_; }
  int64_t size() const;
  int64_t next_id() const;
  bool contains(int64_t id) const;
  int levels() const;
  int64_t num_clusters() const;
  std::vector<int64_t> cluster_sizes() const;
  int64_t cluster_of(int64_t id) const;
  // Bytes held: packed signatures, ids, the id map, the tree (not the prepared layout below).
  int64_t nbytes() const;

  // Prepared layout for float queries (opt-in, off by default; docs/memory.md "Prepared layout").
  // prepare() adds, next to every leaf's packed rows, a copy in the 16-row interleaved layout of
  // trix::PreparedMatrix, which the AVX-512 levels score by table lookup (about 2-4x faster than the
  // public format). It doubles the signature bytes (prepared_nbytes(), not counted in nbytes());
  // prepare(false) frees it. While prepared, add/remove/replace/build keep it up to date; it is never
  // persisted (a loaded memory starts unprepared). Only float queries without quantize use it, and
  // only where the active SIMD level has the lookup kernel; scores then equal the unprepared ones
  // within the float tolerance of docs/benchmarks.md (int8 queries stay exact and unchanged).
  void prepare(bool on = true);
  bool prepared() const;
  int64_t prepared_nbytes() const;
  bool needs_rebuild() const;
  const IndexOptions& index_options() const { return opts_; }

  // Living memory. add returns the new ids (never reused); a new tile joins its nearest leaf.
  std::vector<int64_t> add(const int8_t* sigs, int64_t n);
  void remove(const int64_t* ids, int64_t n);
  void replace(const int64_t* ids, int64_t n, const int8_t* sigs);
  // The stored signatures of ids as int8 [n, d].
  void get(const int64_t* ids, int64_t n, int8_t* out) const;

  // Builds (or rebuilds) the tree over the current tiles.
  void build(const IndexOptions& opt = {});
  // A 2-level tree with the caller's clusters: tile i (in ascending id order) goes to leaf leaf_of[i]
  // in [0, k); every leaf must be non-empty. Automatic rebuilds are turned off. sign_routes: leaves
  // are ranked by q . sign(sum of their members) (the rule HierarchicalTriXFFN trains with) instead
  // of the fitted routing keys; such a memory cannot be saved.
  void build_from_assignment(const int32_t* leaf_of, int64_t n, int64_t k, bool sign_routes = false);

  // q: [n, d]. Float queries are scored in float; quantize = true scores int8 absmax rows instead.
  SearchResult search(const float* q, int64_t n, const SearchOptions& opt, bool quantize = false) const;
  // int8 queries: exact int32 scores (returned as float, exact below 2^24).
  SearchResult search_i8(const int8_t* q, int64_t n, const SearchOptions& opt) const;
  Grouping lookup(const float* q, int64_t n, const SearchOptions& opt, bool quantize = false) const;
  Grouping lookup_i8(const int8_t* q, int64_t n, const SearchOptions& opt) const;
  Explanation explain(const float* q, const SearchOptions& opt) const;

  // Sum-then-sign of stored signatures: a key for "what answers both".
  std::vector<int8_t> compose(const int64_t* ids, int64_t n) const;

  void save(const std::string& path) const;
  static SignatureMemory load(const std::string& path);
  std::vector<uint8_t> serialize() const;
  static SignatureMemory deserialize(const uint8_t* bytes, uint64_t n);

  // Internal layout, public for the implementation files (memory_*.cpp).
  struct Cluster {
    std::vector<uint8_t> rows;  // packed [size, d], contiguous: one kernel call scores a cluster
    std::vector<int64_t> ids;
    std::vector<int32_t> sum;   // per element sum of member signatures: the signature is its sign
    std::vector<uint8_t> lut;   // prepared layout of rows (kernels::lut_offset), empty unless prepared
  };
  struct Level {                // signatures of one upper level, children of a parent contiguous
    int64_t count = 0;
    std::vector<uint8_t> sig;   // packed [count, d]: sign of the members' sum (saved)
    std::vector<int64_t> child_begin;  // count + 1 ranges into the next level (or the leaves)
    // Routing keys (derived from the members' sums, never saved): the scaled ternary vector
    // route_scale[c] * route[c] nearest the members' mean; search ranks nodes by that score.
    std::vector<uint8_t> route;        // packed [count, d]
    std::vector<float> route_scale;    // [count]
  };
  struct Loc {
    int32_t cluster = -1;
    int32_t pos = -1;
  };

 private:
  template <typename T>
  SearchResult search_impl(const T* q, int64_t n, const SearchOptions& opt,
                           std::vector<std::vector<int64_t>>* paths) const;
  void insert(int64_t id, const int8_t* sig);
  // Installs leaves (rows of x, which holds the tiles ids in order) and the top level given by group_begin.
  void install(const std::vector<int64_t>& ids, const std::vector<int8_t>& x,
               const std::vector<std::vector<int64_t>>& leaves, const std::vector<int64_t>& group_begin);
  int64_t nearest_leaf(const int8_t* sig) const;
  void erase(int64_t id);
  void refresh_leaf_signature(int64_t c);
  // Routing keys (Level::route) from the clusters' sums: of leaf c and its ancestors, or of all.
  void refresh_route(int64_t c);
  void refresh_routes();
  void refresh_node_route(size_t level, int64_t c);
  void check_drift();
  void prepare_cluster(Cluster& cl) const;

  mutable detail::MemoryMutex mu_;
  friend class MemoryGuard;
  bool prepared_ = false;

  int64_t dim_ = 0;
  int64_t rb_ = 0;  // packed row bytes
  int64_t size_ = 0;
  int64_t next_id_ = 0;
  int64_t built_size_ = 0;   // tiles at the last build
  bool dirty_ = false;
  bool sign_routes_ = false;  // build_from_assignment(..., sign_routes = true)
  IndexOptions opts_{};
  std::vector<Level> levels_;     // empty: one leaf holds every tile (flat)
  std::vector<Cluster> clusters_;
  std::vector<Loc> loc_;          // by id
  friend struct MemoryAccess;
};

}  // namespace trix
