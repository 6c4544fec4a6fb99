// Bindings for the training operations (trix/train_ops.h): one call per forward and per backward.
// Optional outputs are None (not computed). Ternary codes cross as int8 [rows, cols] plus float32
// scales [1] or [rows].
#include <nanobind/stl/string.h>

#include <string>

#include "checks.h"
#include "trix/quantize.h"
#include "trix/train_ops.h"

namespace trix_py {
namespace {

trix::TernaryCodes codes(const InArray& q, const InArray& s, const char* func, const char* name, int64_t rows,
                         int64_t cols) {
  check_array(q, func, name, DType::i8, {rows, cols});
  check_array(s, func, (std::string(name) + "_scales").c_str(), DType::f32, {kAny});
  return {ptr<int8_t>(q), ptr<float>(s), static_cast<int64_t>(q.shape(0)), static_cast<int64_t>(q.shape(1)),
          static_cast<int64_t>(s.shape(0))};
}

// The up [T*h, d] and down [T*d, h] codes of a tiled FFN with model width d.
trix::TiledCodes tiled_codes(const InArray& upq, const InArray& ups, const InArray& downq, const InArray& downs,
                             int64_t tiles, int64_t d, const char* fn) {
  const trix::TernaryCodes up = codes(upq, ups, fn, "up", kAny, d);
  if (tiles <= 0 || up.rows % tiles != 0)
    value_error(std::string(fn) + ": argument 'tiles' must be positive and divide up's " + std::to_string(up.rows) +
                " rows, got " + std::to_string(tiles));
  return {up, codes(downq, downs, fn, "down", tiles * d, up.rows / tiles), tiles};
}

// An optional float32 output of the given shape: nullptr for None.
float* opt_out(nb::object o, OutArray& hold, const char* func, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  hold = nb::cast<OutArray>(o);
  check_array(hold, func, name, DType::f32, shape);
  return ptr<float>(hold);
}

const float* opt_in(nb::object o, InArray& hold, const char* func, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  hold = nb::cast<InArray>(o);
  check_array(hold, func, name, DType::f32, shape);
  return ptr<float>(hold);
}

}  // namespace

// The arguments train_ffn_forward and train_ffn_backward share, checked once: x [n, d], the tile
// codes, tile_idx [n, k], optional gates [n, k] (held alive by `gates_hold`), the activation.
struct FfnArgs {
  int64_t n = 0, d = 0, h = 0, k = 0;
  trix::TiledCodes f;
  InArray gates_hold;
  const float* gates = nullptr;
  trix::Activation act{};
};

FfnArgs ffn_args(const InArray& x, const InArray& upq, const InArray& ups, const InArray& downq, const InArray& downs,
                 int64_t tiles, const std::string& activation, const InArray& tile_idx, nb::object gates,
                 const char* fn) {
  FfnArgs a;
  check_array(x, fn, "x", DType::f32, {kAny, kAny});
  a.n = x.shape(0), a.d = x.shape(1);
  a.f = tiled_codes(upq, ups, downq, downs, tiles, a.d, fn);
  a.h = a.f.up.rows / tiles;
  check_array(tile_idx, fn, "tile_idx", DType::i32, {a.n, kAny});
  a.k = tile_idx.shape(1);
  a.gates = opt_in(gates, a.gates_hold, fn, "gates", {a.n, a.k});
  a.act = trix::parse_activation(activation, fn);
  return a;
}

void bind_train(nb::module_& m) {
  m.def("train_quantize", [](InArray w, const std::string& rule, float threshold, bool per_row, OutArray q,
                             OutArray scales) {
    const char* fn = "train_quantize";
    check_array(w, fn, "w", DType::f32, {kAny, kAny});
    const int64_t rows = w.shape(0), cols = w.shape(1);
    if (rule != "absmean" && rule != "threshold")
      value_error(std::string(fn) + ": argument 'rule' must be 'absmean' or 'threshold', got '" + rule + "'");
    const trix::QuantParams p{rule == "absmean" ? trix::QuantRule::absmean : trix::QuantRule::threshold, threshold,
                              per_row};
    check_array(q, fn, "q", DType::i8, {rows, cols});
    check_array(scales, fn, "scales", DType::f32, {trix::quant_scale_count(rows, p)});
    nb::gil_scoped_release rel;
    trix::quantize_ternary(ptr<float>(w), rows, cols, p, ptr<int8_t>(q), ptr<float>(scales));
  }, nb::arg("w"), nb::arg("rule"), nb::arg("threshold"), nb::arg("per_row"), nb::arg("q"),
     nb::arg("scales"));

  m.def("train_linear_forward", [](InArray x, InArray q, InArray s, OutArray y) {
    const char* fn = "train_linear_forward";
    const trix::TernaryCodes w = codes(q, s, fn, "w", kAny, kAny);
    check_array(x, fn, "x", DType::f32, {kAny, w.cols});
    check_array(y, fn, "out", DType::f32, {static_cast<int64_t>(x.shape(0)), w.rows});
    nb::gil_scoped_release rel;
    trix::linear_forward(ptr<float>(x), x.shape(0), w, ptr<float>(y));
  }, nb::arg("x"), nb::arg("q"), nb::arg("scales"), nb::arg("out"));

  m.def("train_linear_backward", [](InArray g, InArray x, InArray q, InArray s, nb::object dx, nb::object dw) {
    const char* fn = "train_linear_backward";
    const trix::TernaryCodes w = codes(q, s, fn, "w", kAny, kAny);
    check_array(g, fn, "g", DType::f32, {kAny, w.rows});
    const int64_t n = g.shape(0);
    check_array(x, fn, "x", DType::f32, {n, w.cols});
    OutArray hdx, hdw;
    float* pdx = opt_out(dx, hdx, fn, "dx", {n, w.cols});
    float* pdw = opt_out(dw, hdw, fn, "dw", {w.rows, w.cols});
    nb::gil_scoped_release rel;
    trix::linear_backward(ptr<float>(g), ptr<float>(x), n, w, pdx, pdw);
  }, nb::arg("g"), nb::arg("x"), nb::arg("q"), nb::arg("scales"), nb::arg("dx").none(), nb::arg("dw").none());

  m.def("train_ffn_forward", [](InArray x, InArray upq, InArray ups, InArray downq, InArray downs, int64_t tiles,
                                const std::string& activation, InArray tile_idx, nb::object gates, OutArray y,
                                OutArray hidden_pre) {
    const char* fn = "train_ffn_forward";
    const FfnArgs a = ffn_args(x, upq, ups, downq, downs, tiles, activation, tile_idx, gates, fn);
    check_array(y, fn, "out", DType::f32, {a.n, a.d});
    check_array(hidden_pre, fn, "hidden_pre", DType::f32, {a.n, a.k, a.h});
    nb::gil_scoped_release rel;
    trix::ffn_train_forward(ptr<float>(x), a.n, a.f, a.act, ptr<int32_t>(tile_idx), a.gates, a.k, ptr<float>(y),
                            ptr<float>(hidden_pre));
  }, nb::arg("x"), nb::arg("upq"), nb::arg("up_scales"), nb::arg("downq"), nb::arg("down_scales"), nb::arg("tiles"),
     nb::arg("activation"), nb::arg("tile_idx"), nb::arg("gates").none(), nb::arg("out"), nb::arg("hidden_pre"));

  m.def("train_ffn_backward", [](InArray gy, InArray x, InArray upq, InArray ups, InArray downq, InArray downs,
                                 int64_t tiles, const std::string& activation, InArray tile_idx, nb::object gates,
                                 InArray hidden_pre, nb::object dx, nb::object dup, nb::object ddown,
                                 nb::object dgates) {
    const char* fn = "train_ffn_backward";
    const FfnArgs a = ffn_args(x, upq, ups, downq, downs, tiles, activation, tile_idx, gates, fn);
    const int64_t n = a.n, d = a.d, h = a.h, k = a.k;
    check_array(gy, fn, "gy", DType::f32, {n, d});
    check_array(hidden_pre, fn, "hidden_pre", DType::f32, {n, k, h});
    OutArray hdx, hdu, hdd, hdg;
    float* pdx = opt_out(dx, hdx, fn, "dx", {n, d});
    float* pdu = opt_out(dup, hdu, fn, "dup", {tiles * h, d});
    float* pdd = opt_out(ddown, hdd, fn, "ddown", {tiles * d, h});
    float* pdg = opt_out(dgates, hdg, fn, "dgates", {n, k});
    nb::gil_scoped_release rel;
    trix::ffn_train_backward(ptr<float>(gy), ptr<float>(x), n, a.f, a.act, ptr<int32_t>(tile_idx), a.gates, k,
                             ptr<float>(hidden_pre), pdx, pdu, pdd, pdg);
  }, nb::arg("gy"), nb::arg("x"), nb::arg("upq"), nb::arg("up_scales"), nb::arg("downq"), nb::arg("down_scales"),
     nb::arg("tiles"), nb::arg("activation"), nb::arg("tile_idx"), nb::arg("gates").none(), nb::arg("hidden_pre"),
     nb::arg("dx").none(), nb::arg("dup").none(), nb::arg("ddown").none(), nb::arg("dgates").none());

  m.def("tile_signatures_codes", [](InArray q, int64_t tiles, OutArray sig) {
    const char* fn = "tile_signatures_codes";
    check_array(q, fn, "q", DType::i8, {kAny, kAny});
    const int64_t rows = q.shape(0), cols = q.shape(1);
    if (tiles <= 0 || rows % tiles != 0)
      value_error(std::string(fn) + ": argument 'tiles' must be positive and divide the row count " +
                  std::to_string(rows) + ", got " + std::to_string(tiles));
    check_array(sig, fn, "out", DType::i8, {tiles, cols});
    nb::gil_scoped_release rel;
    trix::tile_signatures_codes(ptr<int8_t>(q), rows, cols, tiles, ptr<int8_t>(sig));
  }, nb::arg("q"), nb::arg("tiles"), nb::arg("out"));
}

}  // namespace trix_py
