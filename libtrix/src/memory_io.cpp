// Persistence of a SignatureMemory: a 64-byte checked header, then the payload (docs/memory.md).
// Every count read from a file is checked against the bytes left before it is used, and every code
// and id is validated, so a corrupt or truncated file is a FormatError, never a crash.
#include <cstring>
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
  // A count of items of `each` bytes that must fit in what is left.
  uint64_t count(uint64_t each, uint64_t extra = 0) {
    const uint64_t n = u64();
    if (n + extra > left / (each ? each : 1) + extra || (each && (n + extra) * each > left))
      throw FormatError("SignatureMemory.load: a count exceeds the file size (corrupt file)");
    return n;
  }
  void bytes(uint8_t* out, uint64_t n) { need(n); std::memcpy(out, p, n); p += n, left -= n; }
};

void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
uint32_t get32(const uint8_t* p) { uint32_t v = 0; for (int i = 3; i >= 0; --i) v = (v << 8) | p[i]; return v; }
void put64(uint8_t* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
uint64_t get64(const uint8_t* p) { uint64_t v = 0; for (int i = 7; i >= 0; --i) v = (v << 8) | p[i]; return v; }
[[noreturn]] void bad(const std::string& what) { throw FormatError("SignatureMemory.load: " + what); }
}  // namespace

std::vector<uint8_t> SignatureMemory::serialize() const {
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
  if (dim == 0 || dim > (uint64_t(1) << 24) || nlevels > 2 || next_id > (uint64_t(1) << 40) || size > next_id ||
      nclusters == 0 || nclusters > payload)
    bad("implausible dimensions in header");

  SignatureMemory m(static_cast<int64_t>(dim));
  const int64_t rb = m.rb_;
  Reader r{bytes + kHeader, payload};
  m.opts_.levels = static_cast<int>(r.u64());
  m.opts_.leaf_size = static_cast<int64_t>(r.u64());
  m.opts_.kmeans.seed = r.u64();
  m.opts_.kmeans.iters = static_cast<int>(r.u64());
  m.opts_.kmeans.slack = r.f64();
  m.opts_.kmeans.max_train_per_cluster = static_cast<int64_t>(r.u64());
  m.opts_.rebuild_factor = r.f64();
  m.opts_.auto_rebuild = r.u64() != 0;
  m.dirty_ = r.u64() != 0;
  m.built_size_ = static_cast<int64_t>(r.u64());
  if (!(m.opts_.rebuild_factor > 1.0) || !(m.opts_.kmeans.slack >= 0) || m.opts_.kmeans.iters < 1 ||
      m.opts_.leaf_size < 0 || m.opts_.kmeans.max_train_per_cluster < 1)
    bad("invalid index options");
  std::vector<int8_t> scratch(static_cast<size_t>(dim));
  for (uint32_t l = 0; l < nlevels; ++l) {
    Level lv;
    lv.count = static_cast<int64_t>(r.count(8, 1));
    lv.child_begin.resize(static_cast<size_t>(lv.count + 1));
    for (auto& v : lv.child_begin) v = static_cast<int64_t>(r.u64());
    lv.sig.resize(static_cast<size_t>(lv.count * rb));
    r.bytes(lv.sig.data(), lv.sig.size());
    for (int64_t i = 0; i < lv.count; ++i) unpack_int8(lv.sig.data() + i * rb, 1, m.dim_, scratch.data());
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
    const uint64_t cnt = r.count(8 + static_cast<uint64_t>(rb));
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
