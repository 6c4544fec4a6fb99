// Helpers shared by the memory_*.cpp files (not installed).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "trix/memory.h"

namespace trix {

// Takes m's mutex (shared or exclusive) unless this thread already holds it: public members call
// each other (add -> build -> get, explain -> search) and must not lock twice. Worker threads of a
// lookup run under the caller's lock and call no public member.
class MemoryGuard {
 public:
  MemoryGuard(const SignatureMemory& m, bool exclusive);
  ~MemoryGuard();
  MemoryGuard(const MemoryGuard&) = delete;
  MemoryGuard& operator=(const MemoryGuard&) = delete;

 private:
  const SignatureMemory* owner_ = nullptr;  // null: this thread held it already
  bool exclusive_ = false;
};
#define TRIX_MEMORY_READ(m) ::trix::MemoryGuard trix_memory_guard_((m), false)
#define TRIX_MEMORY_WRITE(m) ::trix::MemoryGuard trix_memory_guard_((m), true)

}  // namespace trix

namespace trix::mem {

// splitmix64: a tiny RNG whose output is fixed by the seed on every platform and compiler
// (std::uniform_int_distribution is not).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // bias is irrelevant for seeding
};

// Scores of n query rows against packed rows [0, m): out[i * ldo + r]; float for both query types
// (int8 products are exact int32, converted exactly while |score| < 2^24).
inline void score(const float* q, int64_t n, int64_t d, const uint8_t* w, int64_t m, float* out, int64_t ldo,
                  std::vector<int32_t>&) {
  if (n > 0 && m > 0) kernels::active().gemm_f32(q, n, d, w, 0, m, out, ldo);
}
inline void score(const int8_t* q, int64_t n, int64_t d, const uint8_t* w, int64_t m, float* out, int64_t ldo,
                  std::vector<int32_t>& tmp) {
  if (n <= 0 || m <= 0) return;
  tmp.resize(static_cast<size_t>(n * m));
  kernels::active().gemm_i8(q, n, d, w, 0, m, tmp.data(), m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < m; ++r) out[i * ldo + r] = static_cast<float>(tmp[i * m + r]);
}

// A scored candidate; ranking: higher score first, then lower id. NaN ranks last.
struct Cand {
  float s;
  int64_t id;
};
inline bool better(const Cand& a, const Cand& b) {
  const bool na = a.s != a.s, nb = b.s != b.s;
  if (na != nb) return nb;
  if (!na && a.s != b.s) return a.s > b.s;
  return a.id < b.id;
}

// Keeps the best k candidates, sorted, in a small array (k is small: linear insertion is fastest).
struct TopK {
  int64_t k;
  std::vector<Cand> v;
  explicit TopK(int64_t k_ = 1) : k(k_) { v.reserve(static_cast<size_t>(k)); }
  void push(Cand c) {
    if (static_cast<int64_t>(v.size()) == k) {
      if (!better(c, v.back())) return;
      v.pop_back();
    }
    auto it = std::upper_bound(v.begin(), v.end(), c, better);
    v.insert(it, c);
  }
};

// Pushes scores s[0 .. count) of rows named id_of(0 .. count) into t. Blocks of 16 rows are
// rejected at once when t is full and none reaches its worst score (a NaN score never beats a
// number; a NaN worst score takes the full comparison). Same result as pushing every row.
template <typename IdOf>
void push_scores(TopK& t, const float* s, int64_t count, IdOf id_of) {
  for (int64_t b0 = 0; b0 < count; b0 += 16) {
    const int64_t b1 = std::min(count, b0 + 16);
    if (static_cast<int64_t>(t.v.size()) == t.k && t.v.back().s == t.v.back().s) {
      const float worst = t.v.back().s;
      int hit = 0;
      for (int64_t r = b0; r < b1; ++r) hit |= s[r] >= worst;
      if (!hit) continue;
    }
    for (int64_t r = b0; r < b1; ++r) {
      if (static_cast<int64_t>(t.v.size()) == t.k && s[r] < t.v.back().s) continue;
      t.push({s[r], id_of(r)});
    }
  }
}

// Packs an int8 row of sign(sum) into out (packed_row_bytes(d) bytes).
void pack_sign(const int32_t* sum, int64_t d, uint8_t* out);

// The routing key of a node whose `count` members sum to `sum`: the ternary t and scale a >= 0
// minimizing |mean - a t|^2 (t keeps the elements of largest |sum|, as many as maximize
// (sum of kept |sum|)^2 / kept; ties at the threshold all kept or all dropped). Packs t into out and
// returns a. sign(sum) keeps the elements where the members disagree (mean ~ 0) at full weight:
// measured in docs/memory.md, that noise is most of the routing misses.
float route_key(const int64_t* sum, int64_t count, int64_t d, uint8_t* out);

}  // namespace trix::mem
