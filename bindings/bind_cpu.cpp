// Bindings for SIMD level selection (trix/cpu.h) and the thread count (trix/threads.h).
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "checks.h"
#include "trix/cpu.h"
#include "trix/threads.h"

namespace trix_py {

void bind_cpu(nb::module_& m) {
  m.def("simd_level", [] { return std::string(trix::simd_level_name(trix::simd_level())); },
        "The SIMD level in use: 'scalar', 'avx2', 'avx512', 'avx512_vnni', 'neon' or 'neon_dotprod'.");
  m.def("set_simd_level", [](const std::string& name) { trix::set_simd_level(trix::parse_simd_level(name)); },
        nb::arg("level"), "Use `level` for every later call; ValueError if this CPU or build lacks it.");
  m.def("available_simd_levels", [] {
    std::vector<std::string> out;
    for (trix::SimdLevel l : trix::available_simd_levels()) out.emplace_back(trix::simd_level_name(l));
    return out;
  }, "The levels this CPU and build support, 'scalar' first, best last.");
  m.def("set_num_threads", [](int n) { trix::set_num_threads(n); }, nb::arg("n"),
        "Threads libtrix uses for later calls (>= 1). Results do not depend on it.");
  m.def("get_num_threads", [] { return trix::get_num_threads(); },
        "Threads libtrix uses (default: TRIX_NUM_THREADS, else the hardware threads).");
}

}  // namespace trix_py
