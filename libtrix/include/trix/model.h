// A whole language model in libtrix: the .trixm file (docs/model_format.md), loading it by mmap and
// running it with a KV cache, every routing method of the Python models, and sampling. No Python,
// no torch: what `trix export` writes, a C++ app (or trix_generate, or trix.Model) runs.
//
// The architecture is trix.nn.TriXLM's: token + position embeddings, n_layer pre-norm blocks
// (x + attn(ln1 x), then x + ffn(...)), final LayerNorm, a bias-free head. Attention weights are
// float or ternary; the FFN is a float MLP or a tiled ternary FFN with one routing method.
// Results do not depend on the thread count (every output element is computed by one thread in a
// fixed order); float results differ from torch's by summation order (docs/model_format.md).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trix/ffn.h"
#include "trix/pack.h"

namespace trix {

constexpr char kModelMagic[8] = {'T', 'R', 'I', 'X', 'M', 'O', 'D', 'L'};
constexpr uint16_t kModelVersion = 1;
constexpr uint64_t kModelAlign = 64;  // every tensor starts at a multiple of this from the file start

enum class FfnKind : uint32_t { mlp = 0, tiled = 1, sparse = 2, hierarchical = 3 };
enum class Routing : uint32_t {
  emergent = 0,           // scores = normalize(x) . sig^T against stored ternary signatures, top-k
  learned = 1,            // softmax(gate x), top-k (gate value 1)
  random = 2,             // a uniform tile per slot, drawn from the engine's generator (not torch's)
  hash = 3,               // tile = table[token id]
  dense = 4,              // every tile, gate 1
  random_signatures = 5,  // as emergent, signatures fixed at init (stored like emergent's)
  mean_signature = 6,     // scores = normalize(x) . sig^T against float signatures
  autonomy = 7,           // scores = every tile's ||act(up_t x)||_2, top-k
};
constexpr uint32_t kRoutingCount = 8;

const char* ffn_kind_name(FfnKind k);
const char* routing_name(Routing r);

// Config flags (docs/model_format.md).
constexpr uint32_t kFlagTernaryAttention = 1u << 0;  // qkv / proj are ternary (else float)
constexpr uint32_t kFlagAttentionInt8 = 1u << 1;     // ternary attention with int8 activations (W1.58A8)
constexpr uint32_t kFlagBlockNorm2 = 1u << 2;        // the block applies ln2 before the FFN
constexpr uint32_t kFlagFfnNorm = 1u << 3;           // the FFN owns a LayerNorm and a per-channel out scale
constexpr uint32_t kFlagSelectBias = 1u << 4;        // a per-tile bias is added to scores only to select
constexpr uint32_t kFlagsKnown = (1u << 5) - 1;

struct ModelConfig {
  int64_t vocab_size = 0, block_size = 0, n_layer = 0, n_head = 0, d_model = 0;
  FfnKind ffn = FfnKind::sparse;
  Routing routing = Routing::emergent;
  int64_t tiles = 1;
  int64_t hidden = 0;  // rows per tile (tiled kinds) or the MLP's hidden width
  int64_t top_k = 1;
  int64_t clusters = 0, top_p = 0;  // hierarchical only
  Activation activation = Activation::gelu;
  uint32_t flags = 0;
  float norm_eps = 1e-5f;
};

// Limits a file may state (a larger value is a FormatError before anything is allocated).
constexpr int64_t kModelMaxVocab = int64_t(1) << 21;
constexpr int64_t kModelMaxBlock = int64_t(1) << 20;
constexpr int64_t kModelMaxLayers = 4096;
constexpr int64_t kModelMaxDim = int64_t(1) << 16;
constexpr int64_t kModelMaxTiles = int64_t(1) << 16;
constexpr int64_t kModelMaxHidden = int64_t(1) << 20;
constexpr int64_t kModelMaxTensors = int64_t(1) << 20;
constexpr int kModelNameBytes = 48;

// ---- Writing (trix export and tests) ------------------------------------------------------------

enum class TensorKind : uint32_t { f32 = 0, ternary = 1, i32 = 2 };

// One tensor to write. f32 / i32: `data` holds rows * cols elements (cols = 1 for a vector);
// ternary: `data` holds rows * packed_row_bytes(cols) bytes, then `scales` n_scales floats.
struct TensorData {
  std::string name;
  TensorKind kind = TensorKind::f32;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> data;
  std::vector<float> scales;
};

// The file's bytes: checks the config and every tensor against what the config needs, exactly as a
// load would (so a written model always loads). vocab: one Unicode code point per token id.
std::vector<uint8_t> serialize_model(const ModelConfig& cfg, const std::vector<uint32_t>& vocab,
                                     const std::vector<TensorData>& tensors);
// serialize_model, written atomically.
void save_model(const std::string& path, const ModelConfig& cfg, const std::vector<uint32_t>& vocab,
                const std::vector<TensorData>& tensors);

// ---- Running ------------------------------------------------------------------------------------

struct SamplingOptions {
  float temperature = 0.8f;  // <= 0: greedy (the highest logit, ties to the lower token id)
  int64_t top_k = 0;         // > 0: sample among the top_k logits (ties with the k-th kept, as torch)
  uint64_t seed = 0;         // the only randomness (sampling and random routing)
};

class Model;

// A batch of sequences in progress: the KV cache of every layer and the random-routing generator.
// All sequences of a batch have the same length.
class State {
 public:
  State() = default;
  State(const Model& m, int64_t batch, uint64_t seed = 0);
  int64_t batch() const { return batch_; }
  int64_t length() const { return len_; }
  void reset(uint64_t seed);  // empties the cache (same batch) and reseeds
  int64_t nbytes() const { return static_cast<int64_t>((k_.size() + v_.size()) * sizeof(float)); }

 private:
  friend class Model;
  int64_t batch_ = 0, len_ = 0, cap_ = 0, layers_ = 0, dim_ = 0;
  std::vector<float> k_, v_;  // [layer][batch][cap][d]
  uint64_t rng_ = 0;
};

struct ModelImpl;

class Model {
 public:
  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // Maps the file and uses its tensors in place (private, read-only mapping). Throws FormatError
  // naming the failing field, std::runtime_error when the file cannot be opened.
  static Model load(const std::string& path);
  // The same checks on a buffer; the bytes are copied into aligned memory.
  static Model from_bytes(const uint8_t* bytes, uint64_t n);

  const ModelConfig& config() const;
  const std::vector<uint32_t>& vocab() const;
  // Bytes of the file (mapped or copied) plus what the engine allocated at load.
  int64_t nbytes() const;
  bool mapped() const;

  // Token ids of a UTF-8 string (std::invalid_argument for a character not in the vocabulary or bad
  // UTF-8) and back.
  std::vector<int32_t> encode(const std::string& utf8) const;
  std::string decode(const int32_t* ids, int64_t n) const;

  // tokens: [batch, len] int32, appended after the state's cached positions (length + len must not
  // exceed block_size). logits: [batch, len, vocab], or [batch, vocab] for the last position when
  // last_only. Advances the state by len.
  void forward(const int32_t* tokens, int64_t len, State& state, float* logits, bool last_only = false) const;

  // The next token from logits [vocab] (see SamplingOptions); rng is advanced.
  int32_t sample(const float* logits, const SamplingOptions& opt, uint64_t& rng) const;

  // prompt + n sampled tokens, as TriXLM.generate: the context is the last block_size tokens; while
  // the cache has room each new token is one cached step, past it the window is re-encoded.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int64_t n, const SamplingOptions& opt) const;
  // The same on text; an empty prompt means "\n" (as `trix generate`). Returns prompt + continuation.
  std::string generate(const std::string& prompt, int64_t n, const SamplingOptions& opt) const;

 private:
  std::unique_ptr<ModelImpl> impl_;
};

}  // namespace trix
