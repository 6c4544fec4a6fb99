// Writes the seed corpus of the fuzz targets: small valid files of every kind, into
// <dir>/packed/, <dir>/memory/ and <dir>/packed_bytes/ (usage: trix_fuzz_seeds <dir>).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "trix/format.h"
#include "trix/memory.h"
#include "trix/quantize.h"

namespace {
std::vector<int8_t> ternary(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(g() % 3) - 1);
  return v;
}
void write(const std::string& path, const std::vector<uint8_t>& b) { trix::write_file_atomic(path, b.data(), b.size()); }
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir with packed/, memory/, packed_bytes/>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  // Packed tensors: shapes around the 128-weight block, each scale count, an empty one.
  const struct { int64_t rows, cols, scales; } shapes[] = {{0, 0, 0}, {1, 1, 1}, {3, 130, 3}, {2, 128, 0}, {4, 7, 1}, {1, 257, 1}};
  int i = 0;
  for (const auto& s : shapes) {
    trix::PackedTernary t;
    t.rows = s.rows, t.cols = s.cols;
    t.data.resize(static_cast<size_t>(s.rows * trix::packed_row_bytes(s.cols)));
    const auto q = ternary(s.rows * s.cols, 11 + i);
    trix::pack_int8(q.data(), s.rows, s.cols, t.data.data());
    for (int64_t k = 0; k < s.scales; ++k) t.scales.push_back(0.25f + 0.5f * static_cast<float>(k));
    write(dir + "/packed/seed" + std::to_string(i++), trix::serialize(t.view()));
  }
  // Memories: empty, flat, a 2-level tree, a 3-level tree, one with removed ids (gaps).
  i = 0;
  for (int kind = 0; kind < 5; ++kind) {
    const int64_t n = kind == 0 ? 0 : 24, d = kind == 4 ? 130 : 16;
    const auto s = ternary(n * d, 40 + kind);
    trix::SignatureMemory m = trix::SignatureMemory::from_int8(s.data(), n, d);
    trix::IndexOptions o;
    o.leaf_size = 4;
    if (kind == 2) m.build(o);
    if (kind == 3) {
      o.levels = 3;
      m.build(o);
    }
    if (kind == 4) {
      const std::vector<int64_t> gone{1, 5, 6};
      m.build(o);
      m.remove(gone.data(), 3);
    }
    write(dir + "/memory/seed" + std::to_string(i++), m.serialize());
  }
  // Raw packed bytes: cols (2 bytes, little-endian, minus 1), then rows.
  i = 0;
  for (int64_t cols : {1, 100, 128, 129}) {
    const int64_t rows = 3, rb = trix::packed_row_bytes(cols);
    std::vector<uint8_t> b{static_cast<uint8_t>((cols - 1) & 0xFF), static_cast<uint8_t>((cols - 1) >> 8)};
    b.resize(static_cast<size_t>(2 + rows * rb));
    const auto q = ternary(rows * cols, 70 + i);
    trix::pack_int8(q.data(), rows, cols, b.data() + 2);
    write(dir + "/packed_bytes/seed" + std::to_string(i++), b);
  }
  return 0;
}
