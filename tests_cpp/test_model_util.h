// A random model of any FFN kind and routing method, written with trix::serialize_model, for the
// model tests (weights seeded; shapes small enough for the sanitizer build).
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"
#include "trix/model.h"
#include "trix/pack.h"
#include "trix/signature.h"

namespace trix_test {

struct RandomModel {
  trix::ModelConfig cfg;
  std::vector<uint32_t> vocab;
  std::vector<trix::TensorData> tensors;
  std::vector<uint8_t> bytes() const { return trix::serialize_model(cfg, vocab, tensors); }
};

inline trix::TensorData float_tensor(const std::string& name, int64_t rows, int64_t cols, uint32_t seed,
                                     float scale, float offset = 0.0f) {
  trix::TensorData t{name, trix::TensorKind::f32, rows, cols, {}, {}};
  std::vector<float> v = random_floats(rows * cols, seed, scale);
  for (float& x : v) x += offset;
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

inline trix::TensorData int_tensor(const std::string& name, const std::vector<int32_t>& v) {
  trix::TensorData t{name, trix::TensorKind::i32, static_cast<int64_t>(v.size()), 1, {}, {}};
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

inline trix::TensorData ternary_tensor(const std::string& name, const std::vector<int8_t>& q, int64_t rows,
                                       int64_t cols, std::vector<float> scales) {
  trix::TensorData t{name, trix::TensorKind::ternary, rows, cols, {}, std::move(scales)};
  t.data.resize(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  trix::pack_int8(q.data(), rows, cols, t.data.data());
  return t;
}

inline RandomModel random_model(trix::FfnKind ffn, trix::Routing routing, uint32_t seed = 1, bool ternary_attn = false,
                                int64_t top_k = 1, int64_t d_model = 24, int64_t layers = 2) {
  using namespace trix;
  RandomModel m;
  ModelConfig& c = m.cfg;
  c.vocab_size = 11, c.block_size = 12, c.n_layer = layers, c.n_head = 2, c.d_model = d_model;
  c.ffn = ffn, c.routing = routing, c.tiles = ffn == FfnKind::mlp ? 1 : 4, c.top_k = ffn == FfnKind::mlp ? 1 : top_k;
  c.hidden = ffn == FfnKind::mlp ? 4 * c.d_model : c.d_model;
  c.activation = Activation::gelu;
  c.flags = kFlagBlockNorm2 | (ternary_attn ? kFlagTernaryAttention : 0u);
  if (ffn == FfnKind::hierarchical) {
    c.clusters = 2, c.top_p = 1;
    c.flags = (c.flags & ~kFlagBlockNorm2) | kFlagFfnNorm;
  }
  for (int64_t i = 0; i < c.vocab_size; ++i) m.vocab.push_back(i == 0 ? 0x0A : (i == 1 ? 0xE9 : 0x61 + i));
  const int64_t d = c.d_model, T = c.tiles, h = c.hidden, V = c.vocab_size;
  uint32_t s = seed * 1000;
  auto& t = m.tensors;
  t.push_back(float_tensor("tok_emb", V, d, ++s, 1.0f));
  t.push_back(float_tensor("pos_emb", c.block_size, d, ++s, 0.3f));
  auto norm = [&](const std::string& p) {
    t.push_back(float_tensor(p + ".weight", d, 1, ++s, 0.1f, 1.0f));
    t.push_back(float_tensor(p + ".bias", d, 1, ++s, 0.1f));
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    if (ternary_attn) t.push_back(ternary_tensor(name, random_ternary(out * in, ++s), out, in, {0.05f}));
    else t.push_back(float_tensor(name, out, in, ++s, 0.2f));
  };
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    norm(p + "ln1");
    linear(p + "attn.qkv", 3 * d, d);
    linear(p + "attn.proj", d, d);
    if (c.flags & kFlagBlockNorm2) norm(p + "ln2");
    if (ffn == FfnKind::mlp) {
      t.push_back(float_tensor(p + "ffn.fc1.weight", h, d, ++s, 0.2f));
      t.push_back(float_tensor(p + "ffn.fc1.bias", h, 1, ++s, 0.1f));
      t.push_back(float_tensor(p + "ffn.fc2.weight", d, h, ++s, 0.1f));
      t.push_back(float_tensor(p + "ffn.fc2.bias", d, 1, ++s, 0.1f));
      continue;
    }
    const std::vector<int8_t> up = random_ternary(T * h * d, ++s);
    t.push_back(ternary_tensor(p + "ffn.up", up, T * h, d, {0.3f}));
    t.push_back(ternary_tensor(p + "ffn.down", random_ternary(T * d * h, ++s), T * d, h, {0.2f}));
    if (c.flags & kFlagFfnNorm) {
      norm(p + "ffn.norm");
      t.push_back(float_tensor(p + "ffn.out_scale", d, 1, ++s, 0.1f, 1.0f));
    }
    if (routing == Routing::emergent || routing == Routing::random_signatures) {
      std::vector<int8_t> sig(static_cast<size_t>(T * d));
      std::vector<uint8_t> packed(static_cast<size_t>(T * h * packed_row_bytes(d)));
      pack_int8(up.data(), T * h, d, packed.data());
      tile_signatures(TernaryView{packed.data(), T * h, d, nullptr, 0}, T, sig.data());
      t.push_back(ternary_tensor(p + "ffn.signatures", sig, T, d, {}));
      if (ffn == FfnKind::hierarchical && routing == Routing::emergent) {
        std::vector<int32_t> cl;
        for (int64_t i = 0; i < T; ++i) cl.push_back(static_cast<int32_t>(i % c.clusters));
        t.push_back(int_tensor(p + "ffn.cluster_of", cl));
      }
    } else if (routing == Routing::mean_signature) {
      t.push_back(float_tensor(p + "ffn.signatures", T, d, ++s, 0.5f));
    } else if (routing == Routing::learned) {
      t.push_back(float_tensor(p + "ffn.gate", T, d, ++s, 1.0f));
    } else if (routing == Routing::hash) {
      std::vector<int32_t> tab;
      for (int64_t i = 0; i < V; ++i) tab.push_back(static_cast<int32_t>((i * 3) % T));
      t.push_back(int_tensor(p + "ffn.hash", tab));
    }
  }
  norm("ln_f");
  t.push_back(float_tensor("head", V, d, ++s, 1.0f));
  return m;
}

}  // namespace trix_test
