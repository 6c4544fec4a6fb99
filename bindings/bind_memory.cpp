// Bindings for the signature memory (trix/memory.h): balanced k-means and SignatureMemory.
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "checks.h"
#include "trix/memory.h"

namespace trix_py {
namespace {

// Hands a vector to numpy without a copy; shape is its size or (rows, size / rows).
template <typename T>
nb::object to_numpy(std::vector<T>&& v, int64_t rows = -1) {
  auto* owned = new std::vector<T>(std::move(v));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  if (rows < 0) return nb::cast(nb::ndarray<nb::numpy, T, nb::ndim<1>>(owned->data(), {owned->size()}, owner));
  const size_t cols = rows == 0 ? 0 : owned->size() / static_cast<size_t>(rows);
  return nb::cast(nb::ndarray<nb::numpy, T, nb::ndim<2>>(owned->data(), {static_cast<size_t>(rows), cols}, owner));
}

}  // namespace


void bind_memory(nb::module_& m) {
  m.def("kmeans_capacity", &trix::kmeans_capacity, nb::arg("n"), nb::arg("k"), nb::arg("slack"));

  m.def("balanced_kmeans", [](InArray x, int64_t k, uint64_t seed, int iters, double slack, int64_t max_train) {
    check_array(x, "balanced_kmeans", "signatures", DType::i8, {kAny, kAny});
    const int64_t n = x.shape(0), d = x.shape(1);
    trix::KMeansOptions opt{seed, iters, slack, max_train};
    std::vector<int32_t> assign;
    std::vector<int8_t> cent(static_cast<size_t>(k > 0 && k <= n ? k * d : 0));
    {
      nb::gil_scoped_release rel;
      assign = trix::balanced_kmeans(ptr<int8_t>(x), n, d, k, opt, cent.data());
    }
    return nb::make_tuple(to_numpy(std::move(assign)), to_numpy(std::move(cent), k));
  }, nb::arg("signatures"), nb::arg("k"), nb::arg("seed"), nb::arg("iters"), nb::arg("slack"),
     nb::arg("max_train_per_cluster"));

  m.def("compose_signatures", [](InArray sigs) {
    check_array(sigs, "compose_signatures", "signatures", DType::i8, {kAny, kAny});
    std::vector<int8_t> out(static_cast<size_t>(sigs.shape(1)));
    trix::compose_signatures(ptr<int8_t>(sigs), sigs.shape(0), sigs.shape(1), out.data());
    return to_numpy(std::move(out));
  }, nb::arg("signatures"));
}

}  // namespace trix_py
