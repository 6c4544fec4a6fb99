// What a loaded trix::Model holds: views into the file's bytes (mapped or copied), one struct per
// block. Shared by model_file.cpp (parsing), model_forward.cpp and model_generate.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "trix/memory.h"
#include "trix/model.h"

namespace trix {

// A linear layer y = x W^T (+ bias): ternary (packed, with scales; optionally int8 activations) or
// float [out, in].
struct ModelLinear {
  bool ternary = false;
  bool int8 = false;
  TernaryView w;
  const float* wf = nullptr;
  const float* bias = nullptr;
  int64_t out = 0, in = 0;
  std::vector<uint8_t> lut;  // float-activation ternary at AVX-512 levels: w's codes for the table GEMV
};

struct ModelLayer {
  const float *ln1_w = nullptr, *ln1_b = nullptr, *ln2_w = nullptr, *ln2_b = nullptr;
  ModelLinear qkv, proj;
  ModelLinear fc1, fc2;                 // FfnKind::mlp
  TiledFFN tiles;                       // the tiled kinds
  std::vector<uint8_t> up_lut, down_lut;  // their table-GEMV layouts (AVX-512 levels), else empty
  TernaryView sig;                      // emergent / random_signatures: ternary signatures [T, d]
  const float* sig_f = nullptr;         // mean_signature: float signatures [T, d]
  ModelLinear gate;                     // learned: [T, d]
  const int32_t* hash = nullptr;        // hash: [vocab] tile of each token id
  const float* select_bias = nullptr;   // kFlagSelectBias: [T]
  const int32_t* cluster_of = nullptr;  // hierarchical: [T] cluster of each tile
  const float *norm_w = nullptr, *norm_b = nullptr, *out_scale = nullptr;  // kFlagFfnNorm
  std::unique_ptr<SignatureMemory> memory;  // hierarchical emergent: the tree over sig
  std::vector<uint8_t> cluster_sig;         // hierarchical with a select bias: packed [C, d]
};

struct ModelImpl {
  ModelConfig cfg;
  std::vector<uint32_t> vocab;
  void* map = nullptr;  // mmap'ed file (load) ...
  uint64_t map_len = 0;
  std::unique_ptr<uint8_t[]> own;  // ... or an aligned copy (from_bytes)
  const uint8_t* base = nullptr;
  uint64_t size = 0;
  int64_t extra_bytes = 0;  // allocated at load (trees)
  const float *tok_emb = nullptr, *pos_emb = nullptr, *lnf_w = nullptr, *lnf_b = nullptr;
  ModelLinear head;
  std::vector<ModelLayer> layers;
  ~ModelImpl();
};

// Parses and checks bytes [base, base + size) (which must stay alive and 64-byte aligned) into impl.
void parse_model(ModelImpl& impl);

// Float helpers of the engine (model_forward.cpp), deterministic for any thread count.
void linear_forward(const ModelLinear& l, const float* x, int64_t n, float* y);
void layer_norm(const float* x, int64_t n, int64_t d, const float* w, const float* b, float eps, float* y);

// splitmix64: the engine's generator (sampling, random routing).
inline uint64_t next_random(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace trix
