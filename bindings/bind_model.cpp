// Bindings for the model file and engine (trix/model.h): save_model, Model, ModelState.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "checks.h"
#include "trix/model.h"

namespace trix_py {
namespace {

struct FlagName {
  const char* name;
  uint32_t bit;
};
constexpr FlagName kFlags[] = {{"ternary_attention", trix::kFlagTernaryAttention},
                               {"attention_int8", trix::kFlagAttentionInt8},
                               {"block_norm2", trix::kFlagBlockNorm2},
                               {"ffn_norm", trix::kFlagFfnNorm},
                               {"select_bias", trix::kFlagSelectBias}};
const char* kActs[] = {"identity", "relu", "gelu", "silu"};

template <typename E>
E parse_enum(const std::string& key, const std::string& v, int count, const char* (*name)(E)) {
  std::string known;
  for (int i = 0; i < count; ++i) {
    if (v == name(static_cast<E>(i))) return static_cast<E>(i);
    known += std::string(i ? ", " : "") + name(static_cast<E>(i));
  }
  value_error("save_model: argument 'config' field '" + key + "' must be one of " + known + "; got '" + v + "'");
}

const char* act_name(trix::Activation a) { return kActs[static_cast<int>(a) & 3]; }

trix::ModelConfig config_from_dict(const nb::dict& d) {
  trix::ModelConfig c;
  auto get = [&](const char* key) -> nb::handle {
    if (!d.contains(key)) value_error(std::string("save_model: argument 'config' lacks field '") + key + "'");
    return d[key];
  };
  auto i64 = [&](const char* key) { return nb::cast<int64_t>(get(key)); };
  c.vocab_size = i64("vocab_size"), c.block_size = i64("block_size"), c.n_layer = i64("n_layer");
  c.n_head = i64("n_head"), c.d_model = i64("d_model"), c.tiles = i64("tiles"), c.hidden = i64("hidden");
  c.top_k = i64("top_k"), c.clusters = i64("clusters"), c.top_p = i64("top_p");
  c.ffn = parse_enum<trix::FfnKind>("ffn", nb::cast<std::string>(get("ffn")), 4, trix::ffn_kind_name);
  c.routing = parse_enum<trix::Routing>("routing", nb::cast<std::string>(get("routing")), trix::kRoutingCount,
                                        trix::routing_name);
  c.activation = parse_enum<trix::Activation>("activation", nb::cast<std::string>(get("activation")), 4, act_name);
  c.norm_eps = nb::cast<float>(get("norm_eps"));
  for (const FlagName& f : kFlags)
    if (nb::cast<bool>(get(f.name))) c.flags |= f.bit;
  return c;
}

nb::dict config_to_dict(const trix::ModelConfig& c) {
  nb::dict d;
  d["vocab_size"] = c.vocab_size, d["block_size"] = c.block_size, d["n_layer"] = c.n_layer;
  d["n_head"] = c.n_head, d["d_model"] = c.d_model, d["ffn"] = trix::ffn_kind_name(c.ffn);
  d["routing"] = trix::routing_name(c.routing), d["tiles"] = c.tiles, d["hidden"] = c.hidden;
  d["top_k"] = c.top_k, d["clusters"] = c.clusters, d["top_p"] = c.top_p, d["activation"] = act_name(c.activation);
  d["norm_eps"] = c.norm_eps;
  for (const FlagName& f : kFlags) d[f.name] = (c.flags & f.bit) != 0;
  return d;
}

// (name, data, cols, scales): data float32 [rows] / [rows, cols], int32 likewise, or uint8
// [rows, packed_row_bytes(cols)] for a ternary matrix with float32 scales [0, 1 or rows].
trix::TensorData tensor_from(const nb::tuple& t) {
  if (t.size() != 4) value_error("save_model: argument 'tensors' must hold (name, data, cols, scales) tuples");
  trix::TensorData out;
  out.name = nb::cast<std::string>(t[0]);
  const InArray a = nb::cast<InArray>(t[1]);
  const int64_t cols = nb::cast<int64_t>(t[2]);
  const std::string f = "save_model tensor '" + out.name + "'";
  const auto dt = a.dtype();
  if (dt == nb::dtype<uint8_t>()) {
    check_array(a, f.c_str(), "data", DType::u8, {kAny, trix::packed_row_bytes(cols)});
    out.kind = trix::TensorKind::ternary;
    const InArray s = nb::cast<InArray>(t[3]);
    check_array(s, f.c_str(), "scales", DType::f32, {kAny});
    out.scales.assign(ptr<float>(s), ptr<float>(s) + s.shape(0));
  } else {
    const bool is_f32 = dt == nb::dtype<float>();
    if (!is_f32 && dt != nb::dtype<int32_t>()) type_error(f + ": argument 'data' must be float32, int32 or uint8 (packed)");
    if (a.ndim() == 1) check_array(a, f.c_str(), "data", is_f32 ? DType::f32 : DType::i32, {kAny});
    else check_array(a, f.c_str(), "data", is_f32 ? DType::f32 : DType::i32, {kAny, cols});
    out.kind = is_f32 ? trix::TensorKind::f32 : trix::TensorKind::i32;
  }
  out.rows = static_cast<int64_t>(a.shape(0));
  out.cols = out.kind == trix::TensorKind::ternary || a.ndim() == 2 ? cols : 1;
  const auto* p = static_cast<const uint8_t*>(a.data());
  out.data.assign(p, p + a.nbytes());
  return out;
}

nb::ndarray<nb::numpy, float> logits_array(std::vector<float>&& v, std::initializer_list<size_t> shape) {
  auto* owned = new std::vector<float>(std::move(v));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return nb::ndarray<nb::numpy, float>(owned->data(), shape, owner);
}

}  // namespace

void bind_model(nb::module_& m) {
  m.def("save_model", [](const std::string& path, const nb::dict& config, const std::vector<uint32_t>& vocab,
                         const std::vector<nb::tuple>& tensors) {
    const trix::ModelConfig c = config_from_dict(config);
    std::vector<trix::TensorData> ts;
    for (const nb::tuple& t : tensors) ts.push_back(tensor_from(t));
    nb::gil_scoped_release rel;
    trix::save_model(path, c, vocab, ts);
  }, nb::arg("path"), nb::arg("config"), nb::arg("vocab"), nb::arg("tensors"),
     "Writes a .trixm model file (docs/model_format.md) atomically; checks it as a load would.");

  nb::class_<trix::State>(m, "ModelState", "KV cache and routing generator of a batch of sequences.")
      .def(nb::init<const trix::Model&, int64_t, uint64_t>(), nb::arg("model"), nb::arg("batch") = 1, nb::arg("seed") = 0)
      .def_prop_ro("batch", &trix::State::batch)
      .def_prop_ro("length", &trix::State::length)
      .def_prop_ro("nbytes", &trix::State::nbytes)
      .def("reset", &trix::State::reset, nb::arg("seed") = 0);

  nb::class_<trix::Model>(m, "Model", "A .trixm model run by libtrix (trix/model.h).")
      .def_static("load", [](const std::string& path) {
        nb::gil_scoped_release rel;
        return trix::Model::load(path);
      }, nb::arg("path"))
      .def_static("from_bytes", [](nb::bytes b) {
        return trix::Model::from_bytes(reinterpret_cast<const uint8_t*>(b.c_str()), b.size());
      }, nb::arg("data"))
      .def_prop_ro("config", [](const trix::Model& mm) { return config_to_dict(mm.config()); })
      .def_prop_ro("vocab", [](const trix::Model& mm) { return mm.vocab(); })
      .def_prop_ro("nbytes", &trix::Model::nbytes)
      .def_prop_ro("mapped", &trix::Model::mapped)
      .def("encode", &trix::Model::encode, nb::arg("text"))
      .def("decode", [](const trix::Model& mm, const std::vector<int32_t>& ids) {
        return mm.decode(ids.data(), static_cast<int64_t>(ids.size()));
      }, nb::arg("ids"))
      .def("forward", [](const trix::Model& mm, InArray tokens, trix::State& st, bool last_only) {
        check_array(tokens, "Model.forward", "tokens", DType::i32, {st.batch(), kAny});
        const int64_t len = static_cast<int64_t>(tokens.shape(1)), V = mm.config().vocab_size;
        std::vector<float> out(static_cast<size_t>(st.batch() * (last_only ? 1 : len) * V));
        {
          nb::gil_scoped_release rel;
          mm.forward(ptr<int32_t>(tokens), len, st, out.data(), last_only);
        }
        if (last_only) return logits_array(std::move(out), {static_cast<size_t>(st.batch()), static_cast<size_t>(V)});
        return logits_array(std::move(out), {static_cast<size_t>(st.batch()), static_cast<size_t>(len), static_cast<size_t>(V)});
      }, nb::arg("tokens"), nb::arg("state"), nb::arg("last_only") = false,
         "tokens: int32 [batch, len] appended to the state; logits float32 [batch, len, vocab] ([batch, vocab] if last_only).")
      .def("generate", [](const trix::Model& mm, const std::string& prompt, int64_t n, float temperature, int64_t top_k,
                          uint64_t seed) {
        if (top_k < 0) value_error("Model.generate: argument 'top_k' must be >= 0, got " + std::to_string(top_k));
        nb::gil_scoped_release rel;
        return mm.generate(prompt, n, trix::SamplingOptions{temperature, top_k, seed});
      }, nb::arg("prompt"), nb::arg("n"), nb::arg("temperature") = 0.8f, nb::arg("top_k") = 0, nb::arg("seed") = 0,
         "prompt + n generated characters; temperature 0 is greedy, top_k 0 means all tokens.");
}

}  // namespace trix_py
