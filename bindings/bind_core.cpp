// Bindings for packing, the packed format, matrix products, the tiled FFN, signatures and routing.
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <string>

#include "checks.h"
#include "trix/trix.h"

namespace trix_py {
namespace {

using trix::TernaryView;

trix::QuantRule parse_rule(const std::string& rule) {
  if (rule == "absmean") return trix::QuantRule::absmean;
  if (rule == "threshold") return trix::QuantRule::threshold;
  value_error("quantize_ternary: argument 'rule' must be 'absmean' or 'threshold', got '" + rule + "'");
}

trix::Activation parse_act(const std::string& a) {
  if (a == "identity") return trix::Activation::identity;
  if (a == "relu") return trix::Activation::relu;
  if (a == "gelu") return trix::Activation::gelu;
  if (a == "silu") return trix::Activation::silu;
  value_error("tiled_ffn: argument 'activation' must be one of identity, relu, gelu, silu; got '" + a + "'");
}

nb::object packed_to_numpy(trix::PackedTernary&& pt) {
  auto* owned = new trix::PackedTernary(std::move(pt));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<trix::PackedTernary*>(p); });
  const size_t rb = static_cast<size_t>(trix::packed_row_bytes(owned->cols));
  nb::ndarray<nb::numpy, uint8_t, nb::ndim<2>> data(owned->data.data(), {static_cast<size_t>(owned->rows), rb}, owner);
  nb::ndarray<nb::numpy, float, nb::ndim<1>> scales(owned->scales.data(), {owned->scales.size()}, owner);
  return nb::make_tuple(data, owned->cols, scales);
}

}  // namespace

void bind_core(nb::module_& m) {
  nb::exception<trix::FormatError>(m, "FormatError", PyExc_ValueError);

  m.def("packed_row_bytes", [](int64_t cols) {
    if (cols < 0) value_error("packed_row_bytes: argument 'cols' must be >= 0, got " + std::to_string(cols));
    return trix::packed_row_bytes(cols);
  }, nb::arg("cols"));

  m.def("pack_int8", [](InArray w, OutArray out) {
    check_array(w, "pack_int8", "w", DType::i8, {kAny, kAny});
    const int64_t rows = w.shape(0), cols = w.shape(1);
    check_array(out, "pack_int8", "out", DType::u8, {rows, trix::packed_row_bytes(cols)});
    nb::gil_scoped_release rel;
    trix::pack_int8(ptr<int8_t>(w), rows, cols, ptr<uint8_t>(out));
  }, nb::arg("w"), nb::arg("out"));

  m.def("unpack_int8", [](InArray data, int64_t cols, OutArray out) {
    if (cols < 0) value_error("unpack_int8: argument 'cols' must be >= 0, got " + std::to_string(cols));
    check_array(data, "unpack_int8", "packed", DType::u8, {kAny, trix::packed_row_bytes(cols)});
    check_array(out, "unpack_int8", "out", DType::i8, {static_cast<int64_t>(data.shape(0)), cols});
    nb::gil_scoped_release rel;
    trix::unpack_int8(ptr<uint8_t>(data), data.shape(0), cols, ptr<int8_t>(out));
  }, nb::arg("packed"), nb::arg("cols"), nb::arg("out"));

  m.def("validate_packed", [](InArray data, int64_t cols) {
    if (cols < 0) value_error("PackedTernary: argument 'cols' must be >= 0, got " + std::to_string(cols));
    check_array(data, "PackedTernary", "data", DType::u8, {kAny, trix::packed_row_bytes(cols)});
    nb::gil_scoped_release rel;
    trix::validate_packed(ptr<uint8_t>(data), data.shape(0), cols, "PackedTernary");
  }, nb::arg("data"), nb::arg("cols"), "Checks dtype, shape and every code (no 11, zero padding).");

  m.def("quantize_ternary", [](InArray w, const std::string& rule, float threshold, bool per_row, OutArray q,
                               OutArray scales) {
    check_array(w, "quantize_ternary", "w", DType::f32, {kAny, kAny});
    const int64_t rows = w.shape(0), cols = w.shape(1);
    trix::QuantParams p{parse_rule(rule), threshold, per_row};
    check_array(q, "quantize_ternary", "q", DType::i8, {rows, cols});
    check_array(scales, "quantize_ternary", "scales", DType::f32, {trix::quant_scale_count(rows, p)});
    nb::gil_scoped_release rel;
    trix::quantize_ternary(ptr<float>(w), rows, cols, p, ptr<int8_t>(q), ptr<float>(scales));
  }, nb::arg("w"), nb::arg("rule"), nb::arg("threshold"), nb::arg("per_row"), nb::arg("q"), nb::arg("scales"));

  m.def("quantize_activations", [](InArray x, OutArray xq, OutArray xscale) {
    check_array(x, "quantize_activations", "x", DType::f32, {kAny, kAny});
    const int64_t n = x.shape(0), k = x.shape(1);
    check_array(xq, "quantize_activations", "xq", DType::i8, {n, k});
    check_array(xscale, "quantize_activations", "xscale", DType::f32, {n});
    nb::gil_scoped_release rel;
    trix::quantize_activations(ptr<float>(x), n, k, ptr<int8_t>(xq), ptr<float>(xscale));
  }, nb::arg("x"), nb::arg("xq"), nb::arg("xscale"));

  m.def("matmul", [](InArray x, InArray w, int64_t cols, InArray scales, OutArray y) {
    const TernaryView v = packed_view(w, cols, scales, "matmul", "w");
    check_array(x, "matmul", "x", DType::f32, {kAny, cols});
    check_array(y, "matmul", "out", DType::f32, {static_cast<int64_t>(x.shape(0)), v.rows});
    nb::gil_scoped_release rel;
    trix::matmul(ptr<float>(x), x.shape(0), v, ptr<float>(y));
  }, nb::arg("x"), nb::arg("w"), nb::arg("cols"), nb::arg("scales"), nb::arg("out"));

  m.def("matmul_t", [](InArray g, InArray w, int64_t cols, InArray scales, OutArray dx) {
    const TernaryView v = packed_view(w, cols, scales, "matmul_t", "w");
    check_array(g, "matmul_t", "g", DType::f32, {kAny, v.rows});
    check_array(dx, "matmul_t", "out", DType::f32, {static_cast<int64_t>(g.shape(0)), cols});
    nb::gil_scoped_release rel;
    trix::matmul_t(ptr<float>(g), g.shape(0), v, ptr<float>(dx));
  }, nb::arg("g"), nb::arg("w"), nb::arg("cols"), nb::arg("scales"), nb::arg("out"));

  m.def("matmul_i8_acc", [](InArray xq, InArray w, int64_t cols, OutArray acc) {
    const TernaryView v = packed_view(w, cols, InArray(), "matmul_i8_acc", "w");
    check_array(xq, "matmul_i8_acc", "xq", DType::i8, {kAny, cols});
    check_array(acc, "matmul_i8_acc", "out", DType::i32, {static_cast<int64_t>(xq.shape(0)), v.rows});
    nb::gil_scoped_release rel;
    trix::matmul_i8_acc(ptr<int8_t>(xq), xq.shape(0), v, ptr<int32_t>(acc));
  }, nb::arg("xq"), nb::arg("w"), nb::arg("cols"), nb::arg("out"));

  m.def("matmul_i8", [](InArray xq, InArray xscale, InArray w, int64_t cols, InArray scales, OutArray y) {
    const TernaryView v = packed_view(w, cols, scales, "matmul_i8", "w");
    check_array(xq, "matmul_i8", "xq", DType::i8, {kAny, cols});
    const int64_t n = xq.shape(0);
    check_array(xscale, "matmul_i8", "xscale", DType::f32, {n});
    check_array(y, "matmul_i8", "out", DType::f32, {n, v.rows});
    nb::gil_scoped_release rel;
    trix::matmul_i8(ptr<int8_t>(xq), ptr<float>(xscale), n, v, ptr<float>(y));
  }, nb::arg("xq"), nb::arg("xscale"), nb::arg("w"), nb::arg("cols"), nb::arg("scales"), nb::arg("out"));

  m.def("matmul_a8", [](InArray x, InArray w, int64_t cols, InArray scales, OutArray y) {
    const TernaryView v = packed_view(w, cols, scales, "matmul_i8", "w");
    check_array(x, "matmul_i8", "x", DType::f32, {kAny, cols});
    check_array(y, "matmul_i8", "out", DType::f32, {static_cast<int64_t>(x.shape(0)), v.rows});
    nb::gil_scoped_release rel;
    trix::matmul_a8(ptr<float>(x), x.shape(0), v, ptr<float>(y));
  }, nb::arg("x"), nb::arg("w"), nb::arg("cols"), nb::arg("scales"), nb::arg("out"));

  m.def("tiled_ffn", [](InArray x, InArray up, InArray up_scales, InArray down, InArray down_scales, int64_t tiles,
                        const std::string& activation, InArray tile_idx, nb::object gates, OutArray y,
                        nb::object hidden_pre) {
    const char* fn = "tiled_ffn";
    check_array(x, fn, "x", DType::f32, {kAny, kAny});
    const int64_t n = x.shape(0), d = x.shape(1);
    if (tiles <= 0) value_error("tiled_ffn: argument 'tiles' must be positive, got " + std::to_string(tiles));
    const TernaryView vu = packed_view(up, d, up_scales, fn, "up");
    if (vu.rows % tiles != 0)
      value_error("tiled_ffn: argument 'up' must have a multiple of tiles (" + std::to_string(tiles) + ") rows, got " +
                  std::to_string(vu.rows));
    const int64_t h = vu.rows / tiles;
    const TernaryView vd = packed_view(down, h, down_scales, fn, "down");
    check_array(tile_idx, fn, "tile_idx", DType::i32, {n, kAny});
    const int64_t k = tile_idx.shape(1);
    const float* gp = nullptr;
    InArray garr;
    if (!gates.is_none()) {
      garr = nb::cast<InArray>(gates);
      check_array(garr, fn, "gates", DType::f32, {n, k});
      gp = ptr<float>(garr);
    }
    check_array(y, fn, "out", DType::f32, {n, d});
    float* hp = nullptr;
    OutArray harr;
    if (!hidden_pre.is_none()) {
      harr = nb::cast<OutArray>(hidden_pre);
      check_array(harr, fn, "hidden_pre", DType::f32, {n, k, h});
      hp = ptr<float>(harr);
    }
    const trix::TiledFFN f{vu, vd, tiles};
    const trix::Activation act = parse_act(activation);
    nb::gil_scoped_release rel;
    trix::tiled_ffn(ptr<float>(x), n, f, act, ptr<int32_t>(tile_idx), gp, k, ptr<float>(y), hp);
  }, nb::arg("x"), nb::arg("up"), nb::arg("up_scales"), nb::arg("down"), nb::arg("down_scales"), nb::arg("tiles"),
     nb::arg("activation"), nb::arg("tile_idx"), nb::arg("gates").none(), nb::arg("out"),
     nb::arg("hidden_pre").none());

  m.def("tile_signatures", [](InArray up, int64_t cols, int64_t tiles, OutArray sig) {
    const TernaryView v = packed_view(up, cols, InArray(), "tile_signatures", "up");
    if (tiles <= 0 || v.rows % tiles != 0)
      value_error("tile_signatures: argument 'tiles' must be positive and divide the row count " +
                  std::to_string(v.rows) + ", got " + std::to_string(tiles));
    check_array(sig, "tile_signatures", "out", DType::i8, {tiles, cols});
    nb::gil_scoped_release rel;
    trix::tile_signatures(v, tiles, ptr<int8_t>(sig));
  }, nb::arg("up"), nb::arg("cols"), nb::arg("tiles"), nb::arg("out"));

  m.def("route_scores", [](InArray x, InArray sig, int64_t cols, OutArray scores) {
    const TernaryView v = packed_view(sig, cols, InArray(), "route_scores", "sig");
    check_array(x, "route_scores", "x", DType::f32, {kAny, cols});
    check_array(scores, "route_scores", "out", DType::f32, {static_cast<int64_t>(x.shape(0)), v.rows});
    nb::gil_scoped_release rel;
    trix::route_scores(ptr<float>(x), x.shape(0), v, ptr<float>(scores));
  }, nb::arg("x"), nb::arg("sig"), nb::arg("cols"), nb::arg("out"));

  m.def("top_k", [](InArray scores, int64_t k, OutArray idx, OutArray val) {
    check_array(scores, "top_k", "scores", DType::f32, {kAny, kAny});
    const int64_t n = scores.shape(0), t = scores.shape(1);
    if (k < 1 || k > t)
      value_error("top_k: argument 'k' must be in [1, " + std::to_string(t) + "], got " + std::to_string(k));
    check_array(idx, "top_k", "idx", DType::i32, {n, k});
    check_array(val, "top_k", "val", DType::f32, {n, k});
    nb::gil_scoped_release rel;
    trix::top_k(ptr<float>(scores), n, t, k, ptr<int32_t>(idx), ptr<float>(val));
  }, nb::arg("scores"), nb::arg("k"), nb::arg("idx"), nb::arg("val"));

  m.def("serialize", [](InArray data, int64_t cols, InArray scales) {
    const TernaryView v = packed_view(data, cols, scales, "serialize", "data");
    std::vector<uint8_t> bytes;
    {
      nb::gil_scoped_release rel;
      bytes = trix::serialize(v);
    }
    return nb::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }, nb::arg("data"), nb::arg("cols"), nb::arg("scales"));

  m.def("deserialize", [](nb::bytes blob) {
    return packed_to_numpy(trix::deserialize(reinterpret_cast<const uint8_t*>(blob.c_str()), blob.size()));
  }, nb::arg("blob"), "Returns (data uint8 [rows, row_bytes], cols, scales float32).");

  m.def("save_packed", [](const std::string& path, InArray data, int64_t cols, InArray scales) {
    const TernaryView v = packed_view(data, cols, scales, "save_packed", "data");
    nb::gil_scoped_release rel;
    trix::save_packed(path, v);
  }, nb::arg("path"), nb::arg("data"), nb::arg("cols"), nb::arg("scales"));

  m.def("load_packed", [](const std::string& path) { return packed_to_numpy(trix::load_packed(path)); },
        nb::arg("path"));

  m.def("import_prototype", [](InArray src, int64_t cols, OutArray out) {
    if (cols < 0) value_error("import_prototype: argument 'cols' must be >= 0, got " + std::to_string(cols));
    check_array(src, "import_prototype", "src", DType::u8, {kAny, trix::prototype_row_bytes(cols)});
    const int64_t rows = src.shape(0);
    check_array(out, "import_prototype", "out", DType::u8, {rows, trix::packed_row_bytes(cols)});
    nb::gil_scoped_release rel;
    trix::import_prototype(ptr<uint8_t>(src), rows, cols, ptr<uint8_t>(out));
  }, nb::arg("src"), nb::arg("cols"), nb::arg("out"));

  m.def("export_prototype", [](InArray data, int64_t cols, OutArray out) {
    if (cols < 0) value_error("export_prototype: argument 'cols' must be >= 0, got " + std::to_string(cols));
    check_array(data, "export_prototype", "packed", DType::u8, {kAny, trix::packed_row_bytes(cols)});
    const int64_t rows = data.shape(0);
    check_array(out, "export_prototype", "out", DType::u8, {rows, trix::prototype_row_bytes(cols)});
    nb::gil_scoped_release rel;
    trix::export_prototype(ptr<uint8_t>(data), rows, cols, ptr<uint8_t>(out));
  }, nb::arg("packed"), nb::arg("cols"), nb::arg("out"));
}

}  // namespace trix_py
