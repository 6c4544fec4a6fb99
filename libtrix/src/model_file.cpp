// The .trixm model file (docs/model_format.md): writing, and parsing with every count and offset
// checked against the bytes present before anything is allocated or dereferenced. A corrupt, cut or
// hostile file is a FormatError naming the field, never a crash.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "byte_order.h"
#include "lut_gemm.h"
#include "model_internal.h"
#include "trix/error.h"
#include "trix/format.h"

namespace trix {

namespace {

using detail::get_f32;
using detail::get_u16;
using detail::get_u32;
using detail::get_u64;
using detail::put_f32;
using detail::put_u16;
using detail::put_u32;
using detail::put_u64;

constexpr uint64_t kHeader = 64, kConfigBytes = 64, kEntryBytes = 96;

uint64_t round_up(uint64_t v) { return (v + kModelAlign - 1) / kModelAlign * kModelAlign; }

[[noreturn]] void bad(const std::string& what) { throw FormatError("model file: " + what); }

// Where the scales of a ternary tensor may be: none (signatures), or 1 / rows (weights).
enum class Scales { none, weight };

struct Spec {
  std::string name;
  TensorKind kind;
  int64_t rows, cols;
  Scales scales = Scales::weight;
};

bool has(uint32_t flags, uint32_t f) { return (flags & f) != 0; }

// Every tensor a config needs, in the order the exporter writes them.
std::vector<Spec> expected_tensors(const ModelConfig& c) {
  const int64_t d = c.d_model, V = c.vocab_size, T = c.tiles, h = c.hidden;
  const TensorKind attn = has(c.flags, kFlagTernaryAttention) ? TensorKind::ternary : TensorKind::f32;
  std::vector<Spec> s = {{"tok_emb", TensorKind::f32, V, d}, {"pos_emb", TensorKind::f32, c.block_size, d}};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    s.push_back({p + "ln1.weight", TensorKind::f32, d, 1});
    s.push_back({p + "ln1.bias", TensorKind::f32, d, 1});
    s.push_back({p + "attn.qkv", attn, 3 * d, d});
    s.push_back({p + "attn.proj", attn, d, d});
    if (has(c.flags, kFlagBlockNorm2)) {
      s.push_back({p + "ln2.weight", TensorKind::f32, d, 1});
      s.push_back({p + "ln2.bias", TensorKind::f32, d, 1});
    }
    if (c.ffn == FfnKind::mlp) {
      s.push_back({p + "ffn.fc1.weight", TensorKind::f32, h, d});
      s.push_back({p + "ffn.fc1.bias", TensorKind::f32, h, 1});
      s.push_back({p + "ffn.fc2.weight", TensorKind::f32, d, h});
      s.push_back({p + "ffn.fc2.bias", TensorKind::f32, d, 1});
      continue;
    }
    s.push_back({p + "ffn.up", TensorKind::ternary, T * h, d});
    s.push_back({p + "ffn.down", TensorKind::ternary, T * d, h});
    if (has(c.flags, kFlagFfnNorm)) {
      s.push_back({p + "ffn.norm.weight", TensorKind::f32, d, 1});
      s.push_back({p + "ffn.norm.bias", TensorKind::f32, d, 1});
      s.push_back({p + "ffn.out_scale", TensorKind::f32, d, 1});
    }
    switch (c.routing) {
      case Routing::emergent:
      case Routing::random_signatures:
        s.push_back({p + "ffn.signatures", TensorKind::ternary, T, d, Scales::none});
        // Only emergent routing goes through the cluster tree; other methods route flat.
        if (c.ffn == FfnKind::hierarchical && c.routing == Routing::emergent)
          s.push_back({p + "ffn.cluster_of", TensorKind::i32, T, 1});
        break;
      case Routing::mean_signature: s.push_back({p + "ffn.signatures", TensorKind::f32, T, d}); break;
      case Routing::learned: s.push_back({p + "ffn.gate", TensorKind::f32, T, d}); break;
      case Routing::hash: s.push_back({p + "ffn.hash", TensorKind::i32, V, 1}); break;
      default: break;
    }
    if (has(c.flags, kFlagSelectBias)) s.push_back({p + "ffn.select_bias", TensorKind::f32, T, 1});
  }
  s.push_back({"ln_f.weight", TensorKind::f32, d, 1});
  s.push_back({"ln_f.bias", TensorKind::f32, d, 1});
  s.push_back({"head", TensorKind::f32, V, d});
  return s;
}

void check_range(const char* field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    bad(detail::concat("config field '", field, "' = ", v, " must be in [", lo, ", ", hi, "]"));
}

void check_config(const ModelConfig& c) {
  check_range("vocab_size", c.vocab_size, 1, kModelMaxVocab);
  check_range("block_size", c.block_size, 1, kModelMaxBlock);
  check_range("n_layer", c.n_layer, 1, kModelMaxLayers);
  check_range("d_model", c.d_model, 1, kModelMaxDim);
  check_range("n_head", c.n_head, 1, c.d_model);
  if (c.d_model % c.n_head) bad(detail::concat("config field 'n_head' = ", c.n_head, " must divide d_model = ", c.d_model));
  check_range("ffn", static_cast<int64_t>(c.ffn), 0, 3);
  check_range("routing", static_cast<int64_t>(c.routing), 0, kRoutingCount - 1);
  check_range("activation", static_cast<int64_t>(c.activation), 0, 3);
  check_range("hidden", c.hidden, 1, kModelMaxHidden);
  if (c.flags & ~kFlagsKnown) bad(detail::concat("config field 'flags' = ", c.flags, " has unknown bits"));
  if (has(c.flags, kFlagAttentionInt8) && !has(c.flags, kFlagTernaryAttention))
    bad("config field 'flags': int8 attention activations need ternary attention");
  if (!(c.norm_eps > 0.0f && c.norm_eps < 1.0f)) bad(detail::concat("config field 'norm_eps' = ", c.norm_eps, " must be in (0, 1)"));
  if (c.ffn == FfnKind::mlp) {
    if (c.flags & (kFlagFfnNorm | kFlagSelectBias)) bad("config field 'flags': an MLP FFN has no FFN norm or select bias");
    if (!has(c.flags, kFlagBlockNorm2)) bad("config field 'flags': an MLP FFN needs the block's ln2");
    return;
  }
  check_range("tiles", c.tiles, 1, kModelMaxTiles);
  if (c.tiles * c.hidden > kModelMaxHidden * 16) bad("config fields 'tiles' * 'hidden' exceed 2^24 rows");
  check_range("top_k", c.top_k, 1, c.tiles);
  if (c.ffn == FfnKind::hierarchical) {
    check_range("clusters", c.clusters, 1, c.tiles);
    check_range("top_p", c.top_p, 1, c.clusters);
  }
}

void write_config(uint8_t* p, const ModelConfig& c) {
  const int64_t v[] = {c.vocab_size, c.block_size, c.n_layer, c.n_head, c.d_model, static_cast<int64_t>(c.ffn),
                       static_cast<int64_t>(c.routing), c.tiles, c.hidden, c.top_k, c.clusters, c.top_p,
                       static_cast<int64_t>(c.activation), c.flags};
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); ++i) put_u32(p + 4 * i, static_cast<uint32_t>(v[i]));
  put_f32(p + 56, c.norm_eps);
  put_u32(p + 60, 0);
}

ModelConfig read_config(const uint8_t* p) {
  ModelConfig c;
  auto f = [&](int i) { return static_cast<int64_t>(get_u32(p + 4 * i)); };
  c.vocab_size = f(0), c.block_size = f(1), c.n_layer = f(2), c.n_head = f(3), c.d_model = f(4);
  // Enumerations are range-checked in check_config before any use.
  c.ffn = static_cast<FfnKind>(get_u32(p + 20));
  c.routing = static_cast<Routing>(get_u32(p + 24));
  c.tiles = f(7), c.hidden = f(8), c.top_k = f(9), c.clusters = f(10), c.top_p = f(11);
  c.activation = static_cast<Activation>(get_u32(p + 48));
  c.flags = get_u32(p + 52);
  c.norm_eps = get_f32(p + 56);
  if (get_u32(p + 60) != 0) bad("config field 'reserved' must be 0");
  return c;
}

// rows * cols * each (+ extra) without overflow, or a FormatError naming the tensor.
uint64_t tensor_bytes(const std::string& name, TensorKind kind, uint64_t rows, uint64_t cols, uint64_t n_scales) {
  if (rows > (uint64_t(1) << 40) || cols > (uint64_t(1) << 40)) bad("tensor '" + name + "': implausible shape");
  if (kind == TensorKind::ternary)
    return rows * static_cast<uint64_t>(packed_row_bytes(static_cast<int64_t>(cols))) + 4 * n_scales;
  uint64_t elems = 0;
  if (__builtin_mul_overflow(rows, cols, &elems) || elems > (uint64_t(1) << 60)) bad("tensor '" + name + "': shape overflows");
  return elems * 4;
}

// Every 2-bit code valid (no 11) and the padding weights of every row zero.
void check_codes(const std::string& name, const uint8_t* data, int64_t rows, int64_t cols) {
  const int64_t rb = packed_row_bytes(cols);
  const uint64_t total = static_cast<uint64_t>(rows * rb);
  for (uint64_t i = 0; i < total; i += 8) {  // rb is a multiple of 32: whole words
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    if ((w & (w >> 1) & 0x5555555555555555ull) != 0) bad("tensor '" + name + "': invalid 2-bit code 11");
  }
  const int64_t padded = rb / kBlockBytes * kBlockWeights;
  if (padded == cols) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < padded; ++c)
      if (weight_at(data + r * rb, c) != 0) bad("tensor '" + name + "': non-zero padding weight");
}

struct Entry {
  TensorKind kind;
  uint64_t rows, cols, n_scales, offset, bytes;
};

}  // namespace

const char* ffn_kind_name(FfnKind k) {
  static const char* names[] = {"float", "tiled", "sparse", "hierarchical"};
  const auto i = static_cast<uint32_t>(k);
  return i < 4 ? names[i] : "unknown";
}

const char* routing_name(Routing r) {
  static const char* names[] = {"emergent", "learned", "random", "hash", "dense", "random_signatures",
                                "mean_signature", "autonomy"};
  const auto i = static_cast<uint32_t>(r);
  return i < kRoutingCount ? names[i] : "unknown";
}

ModelImpl::~ModelImpl() {
  if (map) munmap(map, map_len);
}

// Float-activation ternary layers get the table-lookup layout where the active level has that GEMV
// (2.5x faster than the public-format kernel at AVX-512; costs the matrix's packed size once more).
static void prepare_lut(ModelLinear& l, int64_t& extra_bytes) {
  if (!l.ternary || l.int8 || !detail::lut_available()) return;
  l.lut = detail::lut_layout(l.w);
  extra_bytes += static_cast<int64_t>(l.lut.size());
}

void parse_model(ModelImpl& m) {
  const uint8_t* b = m.base;
  const uint64_t n = m.size;
  if (n < kHeader + kConfigBytes) bad(detail::concat("truncated header: ", n, " bytes, expected at least 128"));
  if (std::memcmp(b, kModelMagic, 8) != 0) bad("bad magic: not a TriX model (expected \"TRIXMODL\")");
  if (get_u32(b + 60) != crc32(b, 60)) bad("header checksum mismatch (corrupt header)");
  if (get_u16(b + 8) != kModelVersion)
    bad(detail::concat("unsupported version ", get_u16(b + 8), ", this build reads ", kModelVersion));
  if (get_u16(b + 10) != kHeader) bad("field 'header_bytes' must be 64");
  if (get_u32(b + 12) != kConfigBytes) bad("field 'config_bytes' must be 64");
  const uint64_t count = get_u64(b + 16), dir = get_u64(b + 24), data = get_u64(b + 32), file = get_u64(b + 40);
  if (get_u32(b + 48) != kModelAlign) bad("field 'alignment' must be 64");
  if (get_u32(b + 52) != kEntryBytes) bad("field 'entry_bytes' must be 96");
  if (file != n) bad(detail::concat("field 'file_bytes' = ", file, " but the file has ", n, n < file ? " (truncated)" : " (trailing bytes)"));
  if (get_u32(b + 56) != crc32(b + kHeader, n - kHeader)) bad("payload checksum mismatch (corrupt data)");

  ModelConfig c = read_config(b + kHeader);
  check_config(c);
  const uint64_t vocab_end = kHeader + kConfigBytes + 4 * static_cast<uint64_t>(c.vocab_size);
  if (dir != round_up(vocab_end)) bad(detail::concat("field 'directory_offset' = ", dir, ", expected ", round_up(vocab_end)));
  if (count > static_cast<uint64_t>(kModelMaxTensors) || dir > n || count > (n - dir) / kEntryBytes)
    bad(detail::concat("field 'tensor_count' = ", count, " exceeds the file size or the maximum"));
  if (data != round_up(dir + count * kEntryBytes) || data > n)
    bad(detail::concat("field 'data_offset' = ", data, ", expected ", round_up(dir + count * kEntryBytes)));
  m.vocab.resize(static_cast<size_t>(c.vocab_size));
  for (int64_t i = 0; i < c.vocab_size; ++i) {
    const uint32_t cp = get_u32(b + kHeader + kConfigBytes + 4 * i);
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad(detail::concat("vocab entry ", i, " is not a Unicode code point"));
    m.vocab[static_cast<size_t>(i)] = cp;
  }

  std::map<std::string, Entry> entries;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = b + dir + i * kEntryBytes;
    const void* nul = std::memchr(e, 0, kModelNameBytes);
    if (nul == nullptr || nul == e) bad(detail::concat("tensor entry ", i, ": name empty or not NUL-terminated"));
    const std::string name(reinterpret_cast<const char*>(e), static_cast<const uint8_t*>(nul) - e);
    const uint32_t kind = get_u32(e + 48);
    if (kind > 2) bad(detail::concat("tensor '", name, "': unknown kind ", kind));
    if (get_u32(e + 52) != 0) bad("tensor '" + name + "': reserved field must be 0");
    Entry en{static_cast<TensorKind>(kind), get_u64(e + 56), get_u64(e + 64), get_u64(e + 72), get_u64(e + 80), get_u64(e + 88)};
    if (en.kind != TensorKind::ternary && en.n_scales != 0) bad("tensor '" + name + "': scales on a non-ternary tensor");
    if (en.kind == TensorKind::ternary && en.n_scales > en.rows) bad("tensor '" + name + "': more scales than rows");
    if (en.bytes != tensor_bytes(name, en.kind, en.rows, en.cols, en.n_scales)) bad("tensor '" + name + "': byte count does not match its shape");
    if (en.offset % kModelAlign || en.offset < data || en.offset > n || en.bytes > n - en.offset)
      bad(detail::concat("tensor '", name, "': offset ", en.offset, " is unaligned or outside the data area"));
    if (!entries.emplace(name, en).second) bad("tensor '" + name + "' appears twice");
    spans.emplace_back(en.offset, en.bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i - 1].first + spans[i - 1].second > spans[i].first) bad("two tensors overlap");

  const std::vector<Spec> specs = expected_tensors(c);
  if (specs.size() != entries.size()) {
    for (const auto& kv : entries) {
      bool known = false;
      for (const Spec& s : specs) known = known || s.name == kv.first;
      if (!known) bad("unexpected tensor '" + kv.first + "' for this config");
    }
  }
  std::map<std::string, const uint8_t*> ptrs;
  std::map<std::string, uint64_t> nscales;
  for (const Spec& s : specs) {
    auto it = entries.find(s.name);
    if (it == entries.end()) bad("missing tensor '" + s.name + "'");
    const Entry& en = it->second;
    if (en.kind != s.kind || en.rows != static_cast<uint64_t>(s.rows) || en.cols != static_cast<uint64_t>(s.cols))
      bad(detail::concat("tensor '", s.name, "': kind ", static_cast<uint32_t>(en.kind), " [", en.rows, ", ", en.cols,
                         "], expected kind ", static_cast<uint32_t>(s.kind), " [", s.rows, ", ", s.cols, "]"));
    if (s.kind == TensorKind::ternary) {
      const bool ok = s.scales == Scales::none ? en.n_scales == 0 : (en.n_scales == 1 || en.n_scales == en.rows);
      if (!ok) bad(detail::concat("tensor '", s.name, "': ", en.n_scales, " scales, expected ",
                                  s.scales == Scales::none ? "0" : "1 or rows"));
      check_codes(s.name, b + en.offset, s.rows, s.cols);
    }
    ptrs[s.name] = b + en.offset;
    nscales[s.name] = en.n_scales;
  }
  auto f32 = [&](const std::string& k) { return reinterpret_cast<const float*>(ptrs.at(k)); };
  auto i32 = [&](const std::string& k) { return reinterpret_cast<const int32_t*>(ptrs.at(k)); };
  auto ternary = [&](const std::string& k, int64_t rows, int64_t cols) {
    const uint8_t* p = ptrs.at(k);
    const uint64_t ns = nscales.at(k);
    return TernaryView{p, rows, cols, ns ? reinterpret_cast<const float*>(p + rows * packed_row_bytes(cols)) : nullptr,
                       static_cast<int64_t>(ns)};
  };
  auto linear = [&](const std::string& k, int64_t out, int64_t in, bool tern, const float* bias = nullptr) {
    ModelLinear l;
    l.ternary = tern, l.out = out, l.in = in, l.bias = bias;
    if (tern) l.w = ternary(k, out, in);
    else l.wf = f32(k);
    return l;
  };

  const int64_t d = c.d_model, T = c.tiles, h = c.hidden;
  const bool tern_attn = has(c.flags, kFlagTernaryAttention);
  m.tok_emb = f32("tok_emb"), m.pos_emb = f32("pos_emb"), m.lnf_w = f32("ln_f.weight"), m.lnf_b = f32("ln_f.bias");
  m.head = linear("head", c.vocab_size, d, false);
  m.layers.clear();
  m.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    ModelLayer& L = m.layers[static_cast<size_t>(i)];
    L.ln1_w = f32(p + "ln1.weight"), L.ln1_b = f32(p + "ln1.bias");
    L.qkv = linear(p + "attn.qkv", 3 * d, d, tern_attn);
    L.proj = linear(p + "attn.proj", d, d, tern_attn);
    L.qkv.int8 = L.proj.int8 = has(c.flags, kFlagAttentionInt8);
    for (ModelLinear* l : {&L.qkv, &L.proj}) prepare_lut(*l, m.extra_bytes);
    if (has(c.flags, kFlagBlockNorm2)) L.ln2_w = f32(p + "ln2.weight"), L.ln2_b = f32(p + "ln2.bias");
    if (c.ffn == FfnKind::mlp) {
      L.fc1 = linear(p + "ffn.fc1.weight", h, d, false, f32(p + "ffn.fc1.bias"));
      L.fc2 = linear(p + "ffn.fc2.weight", d, h, false, f32(p + "ffn.fc2.bias"));
      continue;
    }
    L.tiles = TiledFFN{ternary(p + "ffn.up", T * h, d), ternary(p + "ffn.down", T * d, h), T};
    if (detail::lut_available() && h % 16 == 0 && d % 16 == 0) {  // tile row ranges start on a layout group
      L.up_lut = detail::lut_layout(L.tiles.up);
      L.down_lut = detail::lut_layout(L.tiles.down);
      m.extra_bytes += static_cast<int64_t>(L.up_lut.size() + L.down_lut.size());
    }
    if (has(c.flags, kFlagFfnNorm))
      L.norm_w = f32(p + "ffn.norm.weight"), L.norm_b = f32(p + "ffn.norm.bias"), L.out_scale = f32(p + "ffn.out_scale");
    if (has(c.flags, kFlagSelectBias)) L.select_bias = f32(p + "ffn.select_bias");
    if (c.routing == Routing::emergent || c.routing == Routing::random_signatures) L.sig = ternary(p + "ffn.signatures", T, d);
    if (c.routing == Routing::mean_signature) L.sig_f = f32(p + "ffn.signatures");
    if (c.routing == Routing::learned) L.gate = linear(p + "ffn.gate", T, d, false);
    if (c.routing == Routing::hash) {
      L.hash = i32(p + "ffn.hash");
      for (int64_t v = 0; v < c.vocab_size; ++v)
        if (L.hash[v] < 0 || L.hash[v] >= T)
          bad(detail::concat("tensor '", p, "ffn.hash': entry ", v, " = ", L.hash[v], " is not a tile in [0, ", T, ")"));
    }
    if (c.ffn == FfnKind::hierarchical && c.routing == Routing::emergent) {
      L.cluster_of = i32(p + "ffn.cluster_of");
      std::vector<int64_t> members(static_cast<size_t>(c.clusters), 0);
      for (int64_t t = 0; t < T; ++t) {
        if (L.cluster_of[t] < 0 || L.cluster_of[t] >= c.clusters)
          bad(detail::concat("tensor '", p, "ffn.cluster_of': entry ", t, " = ", L.cluster_of[t], " is not a cluster in [0, ",
                             c.clusters, ")"));
        ++members[static_cast<size_t>(L.cluster_of[t])];
      }
      for (int64_t k = 0; k < c.clusters; ++k)
        if (members[static_cast<size_t>(k)] == 0) bad(detail::concat("tensor '", p, "ffn.cluster_of': cluster ", k, " is empty"));
      // The tree the Python packed path builds: the stored signatures, the module's clusters.
      L.memory = std::make_unique<SignatureMemory>(SignatureMemory::from_packed(L.sig));
      L.memory->build_from_assignment(L.cluster_of, T, c.clusters, /*sign_routes=*/true);
      m.extra_bytes += L.memory->nbytes();
      if (L.select_bias) {  // the masked path needs the cluster signatures: sign of the members' sum
        std::vector<int8_t> s(static_cast<size_t>(T * d)), cs(static_cast<size_t>(c.clusters * d));
        std::vector<int32_t> sum(static_cast<size_t>(c.clusters * d), 0);
        unpack_int8(L.sig.data, T, d, s.data());
        for (int64_t t = 0; t < T; ++t)
          for (int64_t j = 0; j < d; ++j) sum[L.cluster_of[t] * d + j] += s[t * d + j];
        for (size_t j = 0; j < sum.size(); ++j) cs[j] = static_cast<int8_t>((sum[j] > 0) - (sum[j] < 0));
        L.cluster_sig.resize(static_cast<size_t>(c.clusters * packed_row_bytes(d)));
        pack_int8(cs.data(), c.clusters, d, L.cluster_sig.data());
        m.extra_bytes += static_cast<int64_t>(L.cluster_sig.size());
      }
    }
  }
  m.cfg = c;
}

std::vector<uint8_t> serialize_model(const ModelConfig& cfg, const std::vector<uint32_t>& vocab,
                                     const std::vector<TensorData>& tensors) {
  const char* f = "serialize_model";
  TRIX_CHECK_ARG(static_cast<int64_t>(vocab.size()) == cfg.vocab_size, f, "vocab", "must have vocab_size = ",
                 cfg.vocab_size, " entries, got ", vocab.size());
  TRIX_CHECK_ARG(static_cast<int64_t>(tensors.size()) <= kModelMaxTensors, f, "tensors", "must hold at most ",
                 kModelMaxTensors, " tensors, got ", tensors.size());
  const uint64_t dir = round_up(kHeader + kConfigBytes + 4 * vocab.size());
  const uint64_t data = round_up(dir + kEntryBytes * tensors.size());
  std::vector<uint64_t> offsets;
  uint64_t end = data;
  for (const TensorData& t : tensors) {
    TRIX_CHECK_ARG(!t.name.empty() && t.name.size() < static_cast<size_t>(kModelNameBytes), f, "tensors",
                   "names must have 1 to ", kModelNameBytes - 1, " bytes, got '", t.name, "'");
    TRIX_CHECK_ARG(t.rows >= 0 && t.cols >= 0, f, "tensors", "'", t.name, "' has a negative shape");
    const uint64_t want = tensor_bytes(t.name, t.kind, t.rows, t.cols, 0);
    TRIX_CHECK_ARG(t.data.size() == want, f, "tensors", "'", t.name, "' must have ", want, " data bytes, got ", t.data.size());
    TRIX_CHECK_ARG(t.kind == TensorKind::ternary || t.scales.empty(), f, "tensors", "'", t.name, "' is not ternary but has scales");
    offsets.push_back(end);
    end = round_up(end + want + 4 * t.scales.size());
  }
  std::vector<uint8_t> out(end, 0);
  uint8_t* h = out.data();
  std::memcpy(h, kModelMagic, 8);
  put_u16(h + 8, kModelVersion);
  put_u16(h + 10, kHeader);
  put_u32(h + 12, kConfigBytes);
  put_u64(h + 16, tensors.size());
  put_u64(h + 24, dir);
  put_u64(h + 32, data);
  put_u64(h + 40, end);
  put_u32(h + 48, kModelAlign);
  put_u32(h + 52, kEntryBytes);
  write_config(h + kHeader, cfg);
  for (size_t i = 0; i < vocab.size(); ++i) put_u32(h + kHeader + kConfigBytes + 4 * i, vocab[i]);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorData& t = tensors[i];
    uint8_t* e = h + dir + i * kEntryBytes;
    std::memcpy(e, t.name.data(), t.name.size());
    put_u32(e + 48, static_cast<uint32_t>(t.kind));
    put_u64(e + 56, static_cast<uint64_t>(t.rows));
    put_u64(e + 64, static_cast<uint64_t>(t.cols));
    put_u64(e + 72, t.scales.size());
    put_u64(e + 80, offsets[i]);
    put_u64(e + 88, t.data.size() + 4 * t.scales.size());
    std::memcpy(h + offsets[i], t.data.data(), t.data.size());
    for (size_t s = 0; s < t.scales.size(); ++s) put_f32(h + offsets[i] + t.data.size() + 4 * s, t.scales[s]);
  }
  put_u32(h + 56, crc32(h + kHeader, end - kHeader));
  put_u32(h + 60, crc32(h, 60));
  try {  // the written bytes must load: the same checks as a reader, on an aligned copy
    Model::from_bytes(out.data(), out.size());
  } catch (const FormatError& e) {
    throw std::invalid_argument(std::string("serialize_model: the model does not satisfy its format: ") + e.what());
  }
  return out;
}

void save_model(const std::string& path, const ModelConfig& cfg, const std::vector<uint32_t>& vocab,
                const std::vector<TensorData>& tensors) {
  const std::vector<uint8_t> b = serialize_model(cfg, vocab, tensors);
  write_file_atomic(path, b.data(), b.size());
}

Model Model::from_bytes(const uint8_t* bytes, uint64_t n) {
  static_assert(sizeof(float) == 4, "IEEE float32");
  const uint32_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1)
    throw std::runtime_error("trix::Model: tensors are used in place and need a little-endian CPU");
  Model m;
  ModelImpl& impl = *m.impl_;
  // new[] of a 64-byte-aligned size through an over-allocation: tensors need their file alignment.
  impl.own.reset(new uint8_t[n + kModelAlign]);
  uint8_t* p = impl.own.get();
  p += (kModelAlign - reinterpret_cast<uintptr_t>(p) % kModelAlign) % kModelAlign;
  if (n) std::memcpy(p, bytes, n);
  impl.base = p, impl.size = n;
  parse_model(impl);
  return m;
}

Model Model::load(const std::string& path) {
  const uint32_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1)
    throw std::runtime_error("trix::Model: tensors are used in place and need a little-endian CPU");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open '" + path + "' for reading");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error("'" + path + "' is not a regular file");
  }
  Model m;
  ModelImpl& impl = *m.impl_;
  impl.size = static_cast<uint64_t>(st.st_size);
  if (impl.size > 0) {
    void* p = ::mmap(nullptr, impl.size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw std::runtime_error("cannot map '" + path + "'");
    }
    impl.map = p, impl.map_len = impl.size;
    impl.base = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  try {
    parse_model(impl);
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " in '" + path + "'");
  }
  return m;
}

}  // namespace trix
