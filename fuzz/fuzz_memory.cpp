// The SignatureMemory loader on arbitrary bytes (resealed half the time, see fuzz_packed.cpp). A
// memory that loads must answer lookups, take an add and a remove (which may rebuild it with the
// options the file gave) and save back to bytes that load to the same memory.
#include <cstring>
#include <vector>

#include "fuzz_util.h"
#include "trix/format.h"
#include "trix/memory.h"

namespace {
void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
const char kMagic[8] = {'T', 'R', 'I', 'X', 'M', 'E', 'M', 'O'};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (b.size() >= 64 && (b[0] & 1) == 0) {
    std::memcpy(b.data(), kMagic, 8);
    put32(b.data() + 56, trix::crc32(b.data() + 64, b.size() - 64));
    put32(b.data() + 60, trix::crc32(b.data(), 60));
  }
  trix::SignatureMemory m(1);
  if (!accepted([&] { m = trix::SignatureMemory::deserialize(b.data(), b.size()); })) return 0;
  const std::vector<uint8_t> again = m.serialize();
  FUZZ_CHECK(again == b, "a loaded memory serializes to the same bytes");
  const int64_t d = m.dim();
  if (d > 4096 || m.size() > 20000) return 0;  // keep one run fast
  std::vector<float> q(static_cast<size_t>(2 * d), 0.25f);
  std::vector<int8_t> qi(static_cast<size_t>(2 * d), 1);
  trix::SearchOptions o;
  o.k = 3, o.probes = 2;
  const trix::SearchResult r = m.search(q.data(), 2, o);
  (void)m.search_i8(qi.data(), 2, o);
  o.exact = true;
  const trix::SearchResult ex = m.search(q.data(), 2, o);
  for (int64_t id : r.ids) FUZZ_CHECK(id == -1 || m.contains(id), "search returns stored ids");
  if (m.size() > 0) {
    FUZZ_CHECK(ex.ids[0] >= 0, "exact search finds a tile");
    (void)m.explain(q.data(), o);
  }
  if (m.size() > 2000) return 0;  // add/remove may rebuild: bounded work per input
  const std::vector<int64_t> ids = m.add(qi.data(), 1);
  m.remove(ids.data(), 1);
  const std::vector<uint8_t> saved = m.serialize();
  const trix::SignatureMemory back = trix::SignatureMemory::deserialize(saved.data(), saved.size());
  FUZZ_CHECK(back.serialize() == saved, "a saved memory loads back to the same bytes");
  return 0;
}
