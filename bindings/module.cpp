// trix._C: the entry point. Each bind_*.cpp file binds one part of libtrix.
#include "checks.h"

namespace trix_py {
void bind_core(nb::module_& m);
void bind_cpu(nb::module_& m);
void bind_memory(nb::module_& m);
void bind_prepared(nb::module_& m);
void bind_train(nb::module_& m);
void bind_model(nb::module_& m);
}

NB_MODULE(_C, m) {
  m.doc() = "Low-level bindings over libtrix. Use the functions in the trix package instead.";
  m.attr("__version__") = TRIX_VERSION;
  trix_py::bind_core(m);
  trix_py::bind_cpu(m);
  trix_py::bind_memory(m);
  trix_py::bind_prepared(m);
  trix_py::bind_train(m);
  trix_py::bind_model(m);
}
