// libFuzzer target for the .trixm loader (fuzz/ convention: fuzz_<name>.cpp, seeds in
// fuzz/corpus/<name>/). Any input must load or raise FormatError; a model that loads must run one
// forward step and a short generation without a crash. Each input is tried as given and with both
// checksums recomputed, so that mutations also reach the field checks behind the CRCs.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trix/error.h"
#include "trix/format.h"
#include "trix/model.h"

namespace {

void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }

void try_load(const uint8_t* data, size_t size) {
  try {
    const trix::Model m = trix::Model::from_bytes(data, size);
    trix::State st(m, 1, 0);
    std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
    const int32_t tok = 0;
    m.forward(&tok, 1, st, logits.data(), true);
    m.generate(std::vector<int32_t>{0}, 3, trix::SamplingOptions{1.0f, 2, 1});
  } catch (const trix::FormatError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try_load(data, size);
  if (size >= 64) {
    std::vector<uint8_t> b(data, data + size);
    put32(b.data() + 56, trix::crc32(b.data() + 64, b.size() - 64));
    put32(b.data() + 60, trix::crc32(b.data(), 60));
    try_load(b.data(), b.size());
  }
  return 0;
}
