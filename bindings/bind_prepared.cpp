// Bindings for trix::PreparedMatrix (trix/prepared.h): built once from a packed matrix, then passed
// to the products instead of (data, cols, scales).
#include <memory>

#include "checks.h"
#include "trix/prepared.h"

namespace trix_py {

void bind_prepared(nb::module_& m) {
  nb::class_<trix::PreparedMatrix>(m, "PreparedMatrix",
                                   "A packed matrix copied into the layout of the fastest kernels (trix.prepare).")
      .def("__init__", [](trix::PreparedMatrix* self, InArray w, int64_t cols, InArray scales) {
        const trix::TernaryView v = packed_view(w, cols, scales, "prepare", "w");
        nb::gil_scoped_release rel;
        new (self) trix::PreparedMatrix(v);
      }, nb::arg("w"), nb::arg("cols"), nb::arg("scales"))
      .def_prop_ro("rows", &trix::PreparedMatrix::rows)
      .def_prop_ro("cols", &trix::PreparedMatrix::cols)
      .def_prop_ro("nbytes", &trix::PreparedMatrix::nbytes);

  m.def("prepared_matmul", [](InArray x, const trix::PreparedMatrix& w, OutArray y) {
    check_array(x, "matmul", "x", DType::f32, {kAny, w.cols()});
    check_array(y, "matmul", "out", DType::f32, {static_cast<int64_t>(x.shape(0)), w.rows()});
    nb::gil_scoped_release rel;
    trix::matmul(ptr<float>(x), x.shape(0), w, ptr<float>(y));
  }, nb::arg("x"), nb::arg("w"), nb::arg("out"));

  m.def("prepared_matmul_t", [](InArray g, const trix::PreparedMatrix& w, OutArray dx) {
    check_array(g, "matmul_t", "g", DType::f32, {kAny, w.rows()});
    check_array(dx, "matmul_t", "out", DType::f32, {static_cast<int64_t>(g.shape(0)), w.cols()});
    nb::gil_scoped_release rel;
    trix::matmul_t(ptr<float>(g), g.shape(0), w, ptr<float>(dx));
  }, nb::arg("g"), nb::arg("w"), nb::arg("out"));

  m.def("prepared_matmul_i8_acc", [](InArray xq, const trix::PreparedMatrix& w, OutArray acc) {
    check_array(xq, "matmul_i8_acc", "xq", DType::i8, {kAny, w.cols()});
    check_array(acc, "matmul_i8_acc", "out", DType::i32, {static_cast<int64_t>(xq.shape(0)), w.rows()});
    nb::gil_scoped_release rel;
    trix::matmul_i8_acc(ptr<int8_t>(xq), xq.shape(0), w, ptr<int32_t>(acc));
  }, nb::arg("xq"), nb::arg("w"), nb::arg("out"));

  m.def("prepared_matmul_a8", [](InArray x, const trix::PreparedMatrix& w, OutArray y) {
    check_array(x, "matmul_i8", "x", DType::f32, {kAny, w.cols()});
    check_array(y, "matmul_i8", "out", DType::f32, {static_cast<int64_t>(x.shape(0)), w.rows()});
    nb::gil_scoped_release rel;
    trix::matmul_a8(ptr<float>(x), x.shape(0), w, ptr<float>(y));
  }, nb::arg("x"), nb::arg("w"), nb::arg("out"));
}

}  // namespace trix_py
