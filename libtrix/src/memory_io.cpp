// Persistence of a SignatureMemory: a 64-byte checked header, then the payload (docs/memory.md).
// Every count read from a file is checked against the bytes left before it is used, and every code
// and id is validated, so a corrupt or truncated file is a FormatError, never a crash.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>

#include "memory_internal.h"
#include "trix/error.h"
#include "trix/format.h"

namespace trix {

namespace {
constexpr char kMagic[8] = {'T', 'R', 'I', 'X', 'M', 'E', 'M', 'O'};
constexpr uint16_t kVersion = 1;
constexpr uint64_t kHeader = 64;

struct Writer {
  std::vector<uint8_t> b;
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void f64(double d) { uint64_t u; std::memcpy(&u, &d, 8); u64(u); }
  void bytes(const uint8_t* p, size_t n) { b.insert(b.end(), p, p + n); }
};

struct Reader {
  const uint8_t* p;
  uint64_t left;
  void need(uint64_t n) {
    if (n > left) throw FormatError("SignatureMemory.load: truncated payload (corrupt or cut file)");
  }
  uint64_t u64() {
    need(8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    p += 8, left -= 8;
    return v;
  }
  double f64() { const uint64_t u = u64(); double d; std::memcpy(&d, &u, 8); return d; }
  // A count n of items of `each` (> 0) bytes, plus `fixed` bytes, that must fit in what is left;
  // checked by division so that no count near 2^64 can wrap.
  uint64_t count(const char* field, uint64_t each, uint64_t fixed = 0) {
    const uint64_t n = u64();
    if (fixed > left || n > (left - fixed) / each)
      throw FormatError(detail::concat("SignatureMemory.load: field '", field, "' is ", n, ", more than the ", left,
                                       " bytes left can hold (corrupt file)"));
    return n;
  }
  void bytes(uint8_t* out, uint64_t n) {
    need(n);
    if (n == 0) return;  // out may be null (an empty vector): memcpy(nullptr, .., 0) is undefined
    std::memcpy(out, p, n);
    p += n, left -= n;
  }
};

// The most ids a file of `payload` bytes may have issued: the id map costs 8 bytes per id on load,
// so this bounds what a small file can make the loader allocate (512 bytes per payload byte).
uint64_t max_ids_for(uint64_t payload) { return (uint64_t(1) << 16) + 64 * payload; }

void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
uint32_t get32(const uint8_t* p) { uint32_t v = 0; for (int i = 3; i >= 0; --i) v = (v << 8) | p[i]; return v; }
void put64(uint8_t* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
uint64_t get64(const uint8_t* p) { uint64_t v = 0; for (int i = 7; i >= 0; --i) v = (v << 8) | p[i]; return v; }
[[noreturn]] void bad(const std::string& what) { throw FormatError("SignatureMemory.load: " + what); }
}  // namespace

std::vector<uint8_t> SignatureMemory::serialize() const {
  TRIX_MEMORY_READ(*this);
  if (sign_routes_)  // the file format has no field for it: a reload would route by the fitted keys
    throw std::invalid_argument("SignatureMemory.save: a memory built with build_from_assignment(..., "
                                "sign_routes=true) cannot be saved; save its keys and assignment instead");
  Writer w;
  w.b.resize(kHeader, 0);
  w.u64(static_cast<uint64_t>(opts_.levels));
  w.u64(static_cast<uint64_t>(opts_.leaf_size));
  w.u64(opts_.kmeans.seed);
  w.u64(static_cast<uint64_t>(opts_.kmeans.iters));
  w.f64(opts_.kmeans.slack);
  w.u64(static_cast<uint64_t>(opts_.kmeans.max_train_per_cluster));
  w.f64(opts_.rebuild_factor);
  w.u64(opts_.auto_rebuild ? 1 : 0);
  w.u64(dirty_ ? 1 : 0);
  w.u64(static_cast<uint64_t>(built_size_));
  for (const Level& l : levels_) {
    w.u64(static_cast<uint64_t>(l.count));
    for (int64_t v : l.child_begin) w.u64(static_cast<uint64_t>(v));
    w.bytes(l.sig.data(), l.sig.size());
  }
  for (const Cluster& c : clusters_) {
    w.u64(c.ids.size());
    for (int64_t id : c.ids) w.u64(static_cast<uint64_t>(id));
    w.bytes(c.rows.data(), c.rows.size());
  }
  TRIX_CHECK_ARG(static_cast<uint64_t>(next_id_) <= max_ids_for(w.b.size() - kHeader), "SignatureMemory.save", "self",
                 "has issued ", next_id_, " ids for ", size_, " tiles, more than a file of this size may name (",
                 max_ids_for(w.b.size() - kHeader), "; docs/memory.md): rebuild it from its signatures with new ids");
  uint8_t* h = w.b.data();
  std::memcpy(h, kMagic, 8);
  h[8] = kVersion & 0xFF, h[9] = kVersion >> 8;
  h[10] = kHeader & 0xFF, h[11] = 0;
  put32(h + 12, static_cast<uint32_t>(levels_.size()));
  put64(h + 16, static_cast<uint64_t>(dim_));
  put64(h + 24, static_cast<uint64_t>(size_));
  put64(h + 32, static_cast<uint64_t>(next_id_));
  put64(h + 40, clusters_.size());
  put64(h + 48, w.b.size() - kHeader);
  put32(h + 56, crc32(h + kHeader, w.b.size() - kHeader));
  put32(h + 60, crc32(h, 60));
  return std::move(w.b);
}

SignatureMemory SignatureMemory::deserialize(const uint8_t* bytes, uint64_t n) {
  if (n < kHeader) bad("truncated header: " + std::to_string(n) + " bytes, expected at least 64");
  if (std::memcmp(bytes, kMagic, 8) != 0) bad("bad magic: not a TriX signature memory (expected \"TRIXMEMO\")");
  if (get32(bytes + 60) != crc32(bytes, 60)) bad("header checksum mismatch (corrupt header)");
  const uint16_t version = static_cast<uint16_t>(bytes[8] | (bytes[9] << 8));
  if (version != kVersion) bad("unsupported version " + std::to_string(version) + ", this build reads 1");
  if (bytes[10] != kHeader || bytes[11] != 0) bad("unexpected header size");
  const uint32_t nlevels = get32(bytes + 12);
  const uint64_t dim = get64(bytes + 16), size = get64(bytes + 24), next_id = get64(bytes + 32),
                 nclusters = get64(bytes + 40), payload = get64(bytes + 48);
  if (payload != n - kHeader)
    bad("size " + std::to_string(n) + " bytes, header says " + std::to_string(payload + kHeader) +
        (n - kHeader < payload ? " (truncated)" : " (trailing bytes)"));
  if (get32(bytes + 56) != crc32(bytes + kHeader, payload)) bad("payload checksum mismatch (corrupt data)");
  // Every header field against its maximum and against the bytes present, before any allocation.
  if (dim == 0 || dim > static_cast<uint64_t>(kMaxMemoryDim))
    bad("field 'dim' is " + std::to_string(dim) + ", expected 1 .. " + std::to_string(kMaxMemoryDim));
  if (nlevels > 2) bad("field 'levels' is " + std::to_string(nlevels) + ", at most 2 upper levels are stored");
  if (next_id > static_cast<uint64_t>(kMaxMemoryIds) || next_id > max_ids_for(payload))
    bad("field 'next_id' is " + std::to_string(next_id) + ", more than a file of " + std::to_string(payload) +
        " payload bytes may name (" + std::to_string(std::min<uint64_t>(kMaxMemoryIds, max_ids_for(payload))) + ")");
  if (size > next_id) bad("field 'size' is " + std::to_string(size) + ", more than next_id " + std::to_string(next_id));
  if (nclusters == 0 || nclusters > payload / 8 || nclusters > static_cast<uint64_t>(INT32_MAX))
    bad("field 'clusters' is " + std::to_string(nclusters) + ", expected 1 .. " +
        std::to_string(std::min<uint64_t>(payload / 8, INT32_MAX)) + " for this file size");

  SignatureMemory m(static_cast<int64_t>(dim));
  const int64_t rb = m.rb_;
  Reader r{bytes + kHeader, payload};
  const uint64_t levels = r.u64(), leaf_size = r.u64(), seed = r.u64(), iters = r.u64();
  const double slack = r.f64();
  const uint64_t max_train = r.u64();
  const double rebuild_factor = r.f64();
  const uint64_t auto_rebuild = r.u64(), dirty = r.u64(), built_size = r.u64();
  // Ranges first (a cast of 2^63 to int is itself undefined), then the shared option checks.
  if (levels > 3 || leaf_size > static_cast<uint64_t>(kMaxMemoryIds) || iters > static_cast<uint64_t>(kMaxKMeansIters) ||
      max_train > static_cast<uint64_t>(kMaxTrainPerCluster) || auto_rebuild > 1 || dirty > 1 || built_size > next_id)
    bad("invalid index options (levels " + std::to_string(levels) + ", leaf_size " + std::to_string(leaf_size) +
        ", iters " + std::to_string(iters) + ", max_train_per_cluster " + std::to_string(max_train) + ", flags " +
        std::to_string(auto_rebuild) + "/" + std::to_string(dirty) + ", built_size " + std::to_string(built_size) + ")");
  m.opts_.levels = static_cast<int>(levels);
  m.opts_.leaf_size = static_cast<int64_t>(leaf_size);
  m.opts_.kmeans.seed = seed;
  m.opts_.kmeans.iters = static_cast<int>(iters);
  m.opts_.kmeans.slack = slack;
  m.opts_.kmeans.max_train_per_cluster = static_cast<int64_t>(max_train);
  m.opts_.rebuild_factor = rebuild_factor;
  m.opts_.auto_rebuild = auto_rebuild != 0;
  m.dirty_ = dirty != 0;
  m.built_size_ = static_cast<int64_t>(built_size);
  try {
    check_index_options(m.opts_, "SignatureMemory.load");
  } catch (const std::invalid_argument& e) {
    bad(std::string("invalid index options: ") + e.what());
  }
  std::vector<int8_t> scratch(static_cast<size_t>(dim));
  for (uint32_t l = 0; l < nlevels; ++l) {
    Level lv;
    // count + 1 range starts of 8 bytes and count packed signatures
    lv.count = static_cast<int64_t>(r.count("level count", 8 + static_cast<uint64_t>(rb), 8));
    lv.child_begin.resize(static_cast<size_t>(lv.count + 1));
    for (auto& v : lv.child_begin) v = static_cast<int64_t>(r.u64());
    lv.sig.resize(static_cast<size_t>(lv.count * rb));
    r.bytes(lv.sig.data(), lv.sig.size());
    validate_packed(lv.sig.data(), lv.count, m.dim_, "SignatureMemory.load");
    m.levels_.push_back(std::move(lv));
  }
  // The tree must be well formed: ranges ascending from 0, each level covering the next.
  for (uint32_t l = 0; l < nlevels; ++l) {
    const Level& lv = m.levels_[l];
    const int64_t below = l + 1 < nlevels ? m.levels_[l + 1].count : static_cast<int64_t>(nclusters);
    if (lv.child_begin[0] != 0 || lv.child_begin.back() != below) bad("tree ranges do not cover the next level");
    for (int64_t i = 0; i < lv.count; ++i)
      if (lv.child_begin[i] > lv.child_begin[i + 1]) bad("tree ranges are not ascending");
    if (l + 1 == nlevels && lv.count != static_cast<int64_t>(nclusters)) bad("leaf level does not match the clusters");
  }
  if (nlevels == 0 && nclusters != 1) bad("a flat memory has exactly one cluster");
  m.clusters_.assign(static_cast<size_t>(nclusters), Cluster{});
  m.next_id_ = static_cast<int64_t>(next_id);
  m.loc_.assign(static_cast<size_t>(next_id), Loc{});
  uint64_t total = 0;
  for (uint64_t c = 0; c < nclusters; ++c) {
    Cluster& cl = m.clusters_[c];
    const uint64_t cnt = r.count("cluster size", 8 + static_cast<uint64_t>(rb));
    if (cnt > static_cast<uint64_t>(INT32_MAX)) bad("field 'cluster size' is " + std::to_string(cnt) + ", the maximum is 2^31 - 1");
    cl.sum.assign(static_cast<size_t>(dim), 0);
    cl.ids.resize(cnt);
    for (uint64_t i = 0; i < cnt; ++i) {
      const uint64_t id = r.u64();
      if (id >= next_id || m.loc_[id].cluster >= 0) bad("tile id out of range or repeated");
      cl.ids[i] = static_cast<int64_t>(id);
      m.loc_[id] = Loc{static_cast<int32_t>(c), static_cast<int32_t>(i)};
    }
    cl.rows.resize(cnt * static_cast<uint64_t>(rb));
    r.bytes(cl.rows.data(), cl.rows.size());
    for (uint64_t i = 0; i < cnt; ++i) {
      unpack_int8(cl.rows.data() + i * rb, 1, m.dim_, scratch.data());
      for (uint64_t j = 0; j < dim; ++j) cl.sum[j] += scratch[j];
    }
    if (nlevels > 0) {  // a leaf signature is the sign of its members' sum
      std::vector<uint8_t> expect(static_cast<size_t>(rb));
      mem::pack_sign(cl.sum.data(), m.dim_, expect.data());
      if (std::memcmp(expect.data(), m.levels_.back().sig.data() + c * rb, rb) != 0)
        bad("a leaf signature does not match its members");
    }
    total += cnt;
  }
  if (total != size) bad("tile count does not match the header");
  if (r.left != 0) bad("trailing bytes in the payload");
  m.size_ = static_cast<int64_t>(size);
  m.refresh_routes();  // routing keys are derived from the sums, never saved
  return m;
}

void SignatureMemory::save(const std::string& path) const {
  const std::vector<uint8_t> b = serialize();
  write_file_atomic(path, b.data(), b.size());
}

SignatureMemory SignatureMemory::load(const std::string& path) {
  const std::vector<uint8_t> b = read_file(path);
  try {
    return deserialize(b.data(), b.size());
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " in '" + path + "'");
  }
}

}  // namespace trix
