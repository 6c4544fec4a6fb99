// Text in and out of a trix::Model: UTF-8 <-> token ids (one Unicode code point per token, as
// trix.data.CharVocab), sampling and the generation loop of TriXLM.generate.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "model_internal.h"
#include "trix/error.h"

namespace trix {

namespace {

// Decodes one UTF-8 code point at s[i], advancing i; throws on malformed input.
uint32_t next_code_point(const std::string& s, size_t& i) {
  const auto byte = [&](size_t j) { return static_cast<uint8_t>(s[j]); };
  const uint8_t b0 = byte(i);
  int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
  TRIX_CHECK_ARG(len > 0 && i + len <= s.size(), "Model.encode", "text", "is not valid UTF-8 at byte ", i);
  uint32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
  for (int j = 1; j < len; ++j) {
    TRIX_CHECK_ARG((byte(i + j) & 0xC0) == 0x80, "Model.encode", "text", "is not valid UTF-8 at byte ", i + j);
    cp = (cp << 6) | (byte(i + j) & 0x3F);
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::vector<int32_t> Model::encode(const std::string& utf8) const {
  std::unordered_map<uint32_t, int32_t> id;
  for (size_t i = 0; i < impl_->vocab.size(); ++i) id.emplace(impl_->vocab[i], static_cast<int32_t>(i));
  std::vector<int32_t> out;
  for (size_t i = 0; i < utf8.size();) {
    const size_t at = i;
    const uint32_t cp = next_code_point(utf8, i);
    const auto it = id.find(cp);
    TRIX_CHECK_ARG(it != id.end(), "Model.encode", "text", "has character U+", std::hex, cp, std::dec, " at byte ", at,
                   " that is not in the vocabulary");
    out.push_back(it->second);
  }
  return out;
}

std::string Model::decode(const int32_t* ids, int64_t n) const {
  std::string out;
  const int64_t V = impl_->cfg.vocab_size;
  for (int64_t i = 0; i < n; ++i) {
    TRIX_CHECK_ARG(ids[i] >= 0 && ids[i] < V, "Model.decode", "ids", "must be in [0, ", V, "), got ", ids[i]);
    append_utf8(out, impl_->vocab[static_cast<size_t>(ids[i])]);
  }
  return out;
}

int32_t Model::sample(const float* logits, const SamplingOptions& opt, uint64_t& rng) const {
  const int64_t V = impl_->cfg.vocab_size;
  if (!(opt.temperature > 0.0f))  // greedy; also NaN temperature
    return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  std::vector<double> p(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) p[i] = static_cast<double>(logits[i]) / opt.temperature;
  double cut = -INFINITY;
  if (opt.top_k > 0 && opt.top_k < V) {  // keep logits >= the k-th largest (ties kept, as torch.topk + mask)
    std::vector<double> s(p);
    std::nth_element(s.begin(), s.begin() + (opt.top_k - 1), s.end(), std::greater<double>());
    cut = s[static_cast<size_t>(opt.top_k - 1)];
  }
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& v : p) sum += (v = v >= cut ? std::exp(v - mx) : 0.0);
  const double u = static_cast<double>(next_random(rng) >> 11) * 0x1p-53 * sum;
  double acc = 0;
  int32_t last = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] == 0.0) continue;
    acc += p[i];
    last = static_cast<int32_t>(i);
    if (u < acc) return last;
  }
  return last;
}

std::vector<int32_t> Model::generate(const std::vector<int32_t>& prompt, int64_t n, const SamplingOptions& opt) const {
  TRIX_CHECK_ARG(!prompt.empty(), "Model.generate", "prompt", "must hold at least one token");
  TRIX_CHECK_ARG(n >= 0, "Model.generate", "n", "must be >= 0, got ", n);
  const int64_t bs = impl_->cfg.block_size, V = impl_->cfg.vocab_size;
  std::vector<int32_t> out(prompt);
  std::vector<float> logits(static_cast<size_t>(V));
  State st(*this, 1, opt.seed);
  uint64_t rng = opt.seed;
  auto encode_window = [&] {  // the last block_size tokens from an empty cache
    st.reset(next_random(st.rng_));
    const int64_t len = std::min<int64_t>(bs, static_cast<int64_t>(out.size()));
    forward(out.data() + out.size() - len, len, st, logits.data(), true);
  };
  encode_window();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t tok = sample(logits.data(), opt, rng);
    out.push_back(tok);
    if (i + 1 == n) break;
    if (st.length() < bs) forward(&tok, 1, st, logits.data(), true);
    else encode_window();
  }
  return out;
}

std::string Model::generate(const std::string& prompt, int64_t n, const SamplingOptions& opt) const {
  const std::vector<int32_t> ids = generate(encode(prompt.empty() ? std::string("\n") : prompt), n, opt);
  return decode(ids.data(), static_cast<int64_t>(ids.size()));
}

}  // namespace trix
