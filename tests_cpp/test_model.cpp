// trix::Model engine: the KV cache equals recomputation, batches equal single sequences, results do
// not depend on the thread count, every routing method runs, sampling follows its options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "test_model_util.h"
#include "trix/error.h"
#include "trix/model.h"
#include "trix/cpu.h"
#include "trix/threads.h"

namespace {

using trix::FfnKind;
using trix::Routing;
using trix_test::random_model;

struct Case {
  FfnKind ffn;
  Routing routing;
  bool ternary_attn;
  int64_t top_k;
};

std::vector<Case> all_cases() {
  std::vector<Case> v{{FfnKind::mlp, Routing::dense, false, 1}};
  for (FfnKind f : {FfnKind::tiled, FfnKind::sparse, FfnKind::hierarchical})
    for (uint32_t r = 0; r < trix::kRoutingCount; ++r) v.push_back({f, static_cast<Routing>(r), f == FfnKind::sparse, 1});
  v.push_back({FfnKind::sparse, Routing::emergent, false, 2});
  v.push_back({FfnKind::sparse, Routing::autonomy, true, 2});
  v.push_back({FfnKind::hierarchical, Routing::emergent, false, 2});
  return v;
}

std::string name_of(const Case& c) {
  return std::string(trix::ffn_kind_name(c.ffn)) + "/" + trix::routing_name(c.routing) + "/k" + std::to_string(c.top_k);
}

trix::Model build(const Case& c) {
  const auto m = random_model(c.ffn, c.routing, 3, c.ternary_attn, c.top_k);
  const auto b = m.bytes();
  return trix::Model::from_bytes(b.data(), b.size());
}

const std::vector<int32_t> kTokens{0, 3, 5, 1, 9, 2, 2, 7, 10, 4};

std::vector<float> full_logits(const trix::Model& m, const std::vector<int32_t>& tok) {
  trix::State st(m, 1, 5);
  std::vector<float> out(tok.size() * static_cast<size_t>(m.config().vocab_size));
  m.forward(tok.data(), static_cast<int64_t>(tok.size()), st, out.data());
  return out;
}

TEST(Model, CachedStepsEqualOneForward) {
  for (const Case& c : all_cases()) {
    if (c.routing == Routing::random) continue;  // a fresh draw per call
    const trix::Model m = build(c);
    const int64_t V = m.config().vocab_size;
    const std::vector<float> full = full_logits(m, kTokens);
    trix::State st(m, 1, 5);
    std::vector<float> step(static_cast<size_t>(V));
    for (size_t i = 0; i < kTokens.size(); ++i) {
      m.forward(&kTokens[i], 1, st, step.data(), true);
      for (int64_t v = 0; v < V; ++v)
        ASSERT_NEAR(step[v], full[i * V + v], 1e-4f * (1 + std::fabs(full[i * V + v]))) << name_of(c) << " position " << i;
    }
    EXPECT_EQ(st.length(), static_cast<int64_t>(kTokens.size()));
  }
}

TEST(Model, BatchEqualsSingleSequences) {
  for (const Case& c : all_cases()) {
    if (c.routing == Routing::random) continue;
    const trix::Model m = build(c);
    const int64_t V = m.config().vocab_size, len = 5;
    std::vector<int32_t> batch(kTokens.begin(), kTokens.end());  // two sequences of 5
    trix::State st(m, 2, 0);
    std::vector<float> out(static_cast<size_t>(2 * len * V));
    m.forward(batch.data(), len, st, out.data());
    for (int b = 0; b < 2; ++b) {
      const std::vector<int32_t> one(kTokens.begin() + b * len, kTokens.begin() + (b + 1) * len);
      const std::vector<float> ref = full_logits(m, one);
      for (int64_t i = 0; i < len * V; ++i)
        ASSERT_NEAR(out[b * len * V + i], ref[i], 1e-4f * (1 + std::fabs(ref[i]))) << name_of(c) << " sequence " << b;
    }
  }
}

TEST(Model, ThreadCountDoesNotChangeABit) {
  const int before = trix::get_num_threads();
  for (const Case& c : all_cases()) {
    const trix::Model m = build(c);
    trix::set_num_threads(1);
    const std::vector<float> one = full_logits(m, kTokens);
    const std::string g1 = m.generate("c\xC3\xA9", 20, trix::SamplingOptions{0.9f, 3, 11});
    trix::set_num_threads(2);
    const std::vector<float> two = full_logits(m, kTokens);
    const std::string g2 = m.generate("c\xC3\xA9", 20, trix::SamplingOptions{0.9f, 3, 11});
    trix::set_num_threads(3);
    const std::vector<float> three = full_logits(m, kTokens);
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * 4)) << name_of(c);
    EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * 4)) << name_of(c);
    EXPECT_EQ(g1, g2) << name_of(c);
  }
  trix::set_num_threads(before);
}

// At AVX-512 levels the engine multiplies float-activation ternary matrices through table-lookup
// layouts built at load (d and hidden multiples of 16 so the tiles use them too). They must agree with
// the public-format kernels within float reordering, and not depend on the thread count.
TEST(Model, TableLayoutsMatchThePublicKernels) {
  const trix::SimdLevel best = trix::simd_level();
  const int threads = trix::get_num_threads();
  if (best != trix::SimdLevel::avx512 && best != trix::SimdLevel::avx512_vnni)
    GTEST_SKIP() << "no table-lookup GEMV at level " << trix::simd_level_name(best);
  for (const Case& c : all_cases()) {
    const auto rm = random_model(c.ffn, c.routing, 3, c.ternary_attn, c.top_k, /*d_model=*/32);
    const auto b = rm.bytes();
    const trix::Model m = trix::Model::from_bytes(b.data(), b.size());  // layouts built at this level
    trix::set_num_threads(1);
    const std::vector<float> lut = full_logits(m, kTokens);
    trix::set_num_threads(2);
    const std::vector<float> lut2 = full_logits(m, kTokens);
    EXPECT_EQ(0, std::memcmp(lut.data(), lut2.data(), lut.size() * 4)) << name_of(c);
    trix::set_simd_level(trix::SimdLevel::avx2);  // the same model object, public-format kernels
    const std::vector<float> pub = full_logits(m, kTokens);
    trix::set_simd_level(best);
    float worst = 0, scale = 1e-3f;
    for (size_t i = 0; i < lut.size(); ++i) {
      worst = std::max(worst, std::fabs(lut[i] - pub[i]));
      scale = std::max(scale, std::fabs(pub[i]));
    }
    EXPECT_LE(worst, 1e-4f * scale) << name_of(c);
    if (c.ternary_attn || c.ffn != FfnKind::mlp) EXPECT_GT(m.nbytes(), static_cast<int64_t>(b.size())) << name_of(c);
  }
  trix::set_num_threads(threads);
}

TEST(Model, RoutingMethodsDiffer) {
  // Each method must route differently from dense on this model (a method silently falling back to
  // another would give the same logits).
  const std::vector<float> dense = full_logits(build({FfnKind::sparse, Routing::dense, true, 1}), kTokens);
  for (Routing r : {Routing::emergent, Routing::learned, Routing::hash, Routing::mean_signature, Routing::autonomy}) {
    const std::vector<float> other = full_logits(build({FfnKind::sparse, r, true, 1}), kTokens);
    EXPECT_NE(0, std::memcmp(dense.data(), other.data(), dense.size() * 4)) << trix::routing_name(r);
  }
}

TEST(Model, GreedyIsArgmaxAndGenerateFollowsTheWindow) {
  const trix::Model m = build({FfnKind::sparse, Routing::emergent, false, 1});
  const int64_t V = m.config().vocab_size, bs = m.config().block_size;
  const trix::SamplingOptions greedy{0.0f, 0, 0};
  const std::vector<int32_t> prompt{0, 4};
  const std::vector<int32_t> out = m.generate(prompt, 2 * bs, greedy);
  ASSERT_EQ(out.size(), prompt.size() + 2 * bs);
  // Reference: recompute every step from scratch on the last block_size tokens (no cache).
  std::vector<int32_t> ref(prompt);
  for (int64_t i = 0; i < 2 * bs; ++i) {
    const int64_t len = std::min<int64_t>(bs, static_cast<int64_t>(ref.size()));
    const std::vector<int32_t> ctx(ref.end() - len, ref.end());
    const std::vector<float> l = full_logits(m, ctx);
    const float* last = l.data() + (len - 1) * V;
    ref.push_back(static_cast<int32_t>(std::max_element(last, last + V) - last));
  }
  EXPECT_EQ(out, ref);
}

TEST(Model, SamplingRespectsTopKAndSeed) {
  const trix::Model m = build({FfnKind::sparse, Routing::hash, false, 1});
  const int64_t V = m.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) logits[v] = static_cast<float>(v % 5);  // top-2: ids with v % 5 >= 3
  uint64_t rng = 7;
  std::vector<int> seen(static_cast<size_t>(V), 0);
  for (int i = 0; i < 2000; ++i) ++seen[m.sample(logits.data(), trix::SamplingOptions{1.0f, 2, 0}, rng)];
  for (int64_t v = 0; v < V; ++v) {
    if (v % 5 == 4) EXPECT_GT(seen[v], 0) << v;  // the two ids with logit 4 are the top 2
    else EXPECT_EQ(seen[v], 0) << v;
  }
  EXPECT_EQ(m.generate("c", 30, {1.0f, 0, 5}), m.generate("c", 30, {1.0f, 0, 5}));
  EXPECT_NE(m.generate("c", 30, {1.0f, 0, 5}), m.generate("c", 30, {1.0f, 0, 6}));
}

TEST(Model, TextRoundTripsAndBadInputIsRejected) {
  const trix::Model m = build({FfnKind::mlp, Routing::dense, false, 1});
  const std::vector<int32_t> ids = m.encode("\n\xC3\xA9" "cd");  // vocab: \n, U+00E9, then 'a' + id
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(m.decode(ids.data(), static_cast<int64_t>(ids.size())), "\n\xC3\xA9" "cd");
  EXPECT_THROW(m.encode("z"), std::invalid_argument);      // not in the vocabulary
  EXPECT_THROW(m.encode("\xC3"), std::invalid_argument);   // truncated UTF-8
  trix::State st(m, 1);
  std::vector<float> out(64);
  const int32_t bad = 11;
  EXPECT_THROW(m.forward(&bad, 1, st, out.data()), std::invalid_argument);
  std::vector<int32_t> many(13, 0);
  std::vector<float> big(13 * 11);
  EXPECT_THROW(m.forward(many.data(), 13, st, big.data()), std::invalid_argument);  // past block_size
}

}  // namespace
