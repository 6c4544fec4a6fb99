// The packed-tensor loader (trix::deserialize) on arbitrary bytes. The checksums would stop a
// mutated input at once, so a fuzz input is resealed first (its CRCs recomputed, as an attacker
// would): the fuzzer then reaches every check after them. A tensor that loads must work with every
// API that takes it, and serialize back to the same bytes.
#include <cstring>
#include <vector>

#include "fuzz_util.h"
#include "trix/format.h"
#include "trix/matmul.h"
#include "trix/memory.h"
#include "trix/prepared.h"

namespace {
void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (b.size() >= 64 && (b[0] & 1) == 0) {  // half the inputs resealed, half as given
    std::memcpy(b.data(), trix::kFormatMagic, 8);
    put32(b.data() + 56, trix::crc32(b.data() + 64, b.size() - 64));
    put32(b.data() + 60, trix::crc32(b.data(), 60));
  }
  trix::PackedTernary t;
  if (!accepted([&] { t = trix::deserialize(b.data(), b.size()); })) return 0;
  const trix::TernaryView v = t.view();
  FUZZ_CHECK(trix::serialize(v) == b, "a loaded tensor serializes to the same bytes");
  if (t.cols > 4096 || t.rows > 4096) return 0;  // products below allocate rows * cols
  std::vector<float> x(static_cast<size_t>(2 * t.cols), 0.5f), y(static_cast<size_t>(2 * t.rows));
  trix::matmul(x.data(), 2, v, y.data());
  std::vector<float> dx(x.size());
  trix::matmul_t(y.data(), 2, v, dx.data());
  std::vector<int8_t> xq(x.size(), -128);
  std::vector<int32_t> acc(y.size());
  trix::matmul_i8_acc(xq.data(), 2, v, acc.data());
  const trix::PreparedMatrix p(v);
  trix::matmul(x.data(), 2, p, y.data());
  if (t.rows > 0 && t.cols > 0 && t.cols <= trix::kMaxMemoryDim)
    (void)trix::SignatureMemory::from_packed(v).size();
  return 0;
}
