// libFuzzer target for the .trixm loader (fuzz/ convention: fuzz_<name>.cpp, seeds in
// fuzz/corpus/<name>/). Any input must load or raise FormatError; a model that loads must run one
// forward step and a short generation without a crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trix/error.h"
#include "trix/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const trix::Model m = trix::Model::from_bytes(data, size);
    trix::State st(m, 1, 0);
    std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
    const int32_t tok = 0;
    m.forward(&tok, 1, st, logits.data(), true);
    m.generate(std::vector<int32_t>{0}, 3, trix::SamplingOptions{1.0f, 2, 1});
  } catch (const trix::FormatError&) {
  }
  return 0;
}
