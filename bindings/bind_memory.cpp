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

trix::SearchOptions search_opts(int64_t k, int64_t probes, int64_t upper_probes, bool exact) {
  trix::SearchOptions o;
  o.k = k, o.probes = probes, o.upper_probes = upper_probes, o.exact = exact;
  return o;
}

nb::tuple result_tuple(trix::SearchResult&& r) {
  const int64_t n = r.n;
  return nb::make_tuple(to_numpy(std::move(r.ids), n), to_numpy(std::move(r.scores), n), to_numpy(std::move(r.scored)));
}

int64_t rows_of(const InArray& a, const char* f, const char* name, DType dt, int64_t d) {
  check_array(a, f, name, dt, {kAny, d});
  return static_cast<int64_t>(a.shape(0));
}

using Mem = trix::SignatureMemory;

void bind_memory_class(nb::module_& m) {
  nb::class_<Mem>(m, "SignatureMemory")
      .def(nb::init<int64_t>(), nb::arg("dim"))
      .def_static("from_int8", [](InArray s) {
        check_array(s, "SignatureMemory.from_int8", "signatures", DType::i8, {kAny, kAny});
        nb::gil_scoped_release rel;
        return Mem::from_int8(ptr<int8_t>(s), s.shape(0), s.shape(1));
      }, nb::arg("signatures"))
      .def_static("from_tiles", [](InArray data, int64_t cols, InArray scales, int64_t tiles) {
        const trix::TernaryView up = packed_view(data, cols, scales, "SignatureMemory.from_tiles", "up");
        nb::gil_scoped_release rel;
        return Mem::from_tiles(up, tiles);
      }, nb::arg("data"), nb::arg("cols"), nb::arg("scales"), nb::arg("tiles"))
      .def_prop_ro("dim", &Mem::dim)
      .def_prop_ro("size", &Mem::size)
      .def_prop_ro("next_id", &Mem::next_id)
      .def_prop_ro("levels", &Mem::levels)
      .def_prop_ro("num_clusters", &Mem::num_clusters)
      .def_prop_ro("nbytes", &Mem::nbytes)
      .def_prop_ro("prepared", &Mem::prepared)
      .def_prop_ro("prepared_nbytes", &Mem::prepared_nbytes)
      .def("prepare", [](Mem& mm, bool on) {
        nb::gil_scoped_release g;
        mm.prepare(on);
      }, nb::arg("on") = true)
      .def_prop_ro("needs_rebuild", &Mem::needs_rebuild)
      .def("cluster_sizes", [](const Mem& mm) { return to_numpy(mm.cluster_sizes()); })
      .def("contains", &Mem::contains, nb::arg("id"))
      .def("cluster_of", &Mem::cluster_of, nb::arg("id"))
      .def("add", [](Mem& mm, InArray s) {
        const int64_t n = rows_of(s, "SignatureMemory.add", "signatures", DType::i8, mm.dim());
        std::vector<int64_t> ids;
        {
          nb::gil_scoped_release rel;
          ids = mm.add(ptr<int8_t>(s), n);
        }
        return to_numpy(std::move(ids));
      }, nb::arg("signatures"))
      .def("remove", [](Mem& mm, InArray ids) {
        check_array(ids, "SignatureMemory.remove", "ids", DType::i64, {kAny});
        nb::gil_scoped_release rel;
        mm.remove(ptr<int64_t>(ids), ids.shape(0));
      }, nb::arg("ids"))
      .def("replace", [](Mem& mm, InArray ids, InArray s) {
        check_array(ids, "SignatureMemory.replace", "ids", DType::i64, {kAny});
        check_array(s, "SignatureMemory.replace", "signatures", DType::i8, {static_cast<int64_t>(ids.shape(0)), mm.dim()});
        nb::gil_scoped_release rel;
        mm.replace(ptr<int64_t>(ids), ids.shape(0), ptr<int8_t>(s));
      }, nb::arg("ids"), nb::arg("signatures"))
      .def("get", [](const Mem& mm, InArray ids) {
        check_array(ids, "SignatureMemory.get", "ids", DType::i64, {kAny});
        const int64_t n = ids.shape(0);
        std::vector<int8_t> out(static_cast<size_t>(n * mm.dim()));
        mm.get(ptr<int64_t>(ids), n, out.data());
        return to_numpy(std::move(out), n);
      }, nb::arg("ids"))
      .def("compose", [](const Mem& mm, InArray ids) {
        check_array(ids, "SignatureMemory.compose", "ids", DType::i64, {kAny});
        return to_numpy(mm.compose(ptr<int64_t>(ids), ids.shape(0)));
      }, nb::arg("ids"))
      .def("build", [](Mem& mm, int levels, int64_t leaf_size, uint64_t seed, int iters, double slack,
                       int64_t max_train, double rebuild_factor, bool auto_rebuild) {
        trix::IndexOptions o;
        o.levels = levels, o.leaf_size = leaf_size, o.rebuild_factor = rebuild_factor, o.auto_rebuild = auto_rebuild;
        o.kmeans = trix::KMeansOptions{seed, iters, slack, max_train};
        nb::gil_scoped_release rel;
        mm.build(o);
      }, nb::arg("levels"), nb::arg("leaf_size"), nb::arg("seed"), nb::arg("iters"), nb::arg("slack"),
         nb::arg("max_train_per_cluster"), nb::arg("rebuild_factor"), nb::arg("auto_rebuild"))
      .def("build_from_assignment", [](Mem& mm, InArray assign, int64_t k, bool sign_routes) {
        check_array(assign, "SignatureMemory.build_from_assignment", "assignment", DType::i32, {kAny});
        nb::gil_scoped_release rel;
        mm.build_from_assignment(ptr<int32_t>(assign), assign.shape(0), k, sign_routes);
      }, nb::arg("assignment"), nb::arg("clusters"), nb::arg("sign_routes") = false)
      .def("search", [](const Mem& mm, InArray q, int64_t k, int64_t probes, int64_t up, bool exact, bool quantize) {
        const int64_t n = rows_of(q, "SignatureMemory.search", "queries", DType::f32, mm.dim());
        trix::SearchResult r;
        {
          nb::gil_scoped_release rel;
          r = mm.search(ptr<float>(q), n, search_opts(k, probes, up, exact), quantize);
        }
        return result_tuple(std::move(r));
      }, nb::arg("queries"), nb::arg("k"), nb::arg("probes"), nb::arg("upper_probes"), nb::arg("exact"), nb::arg("quantize"))
      .def("search_i8", [](const Mem& mm, InArray q, int64_t k, int64_t probes, int64_t up, bool exact) {
        const int64_t n = rows_of(q, "SignatureMemory.search", "queries", DType::i8, mm.dim());
        trix::SearchResult r;
        {
          nb::gil_scoped_release rel;
          r = mm.search_i8(ptr<int8_t>(q), n, search_opts(k, probes, up, exact));
        }
        return result_tuple(std::move(r));
      }, nb::arg("queries"), nb::arg("k"), nb::arg("probes"), nb::arg("upper_probes"), nb::arg("exact"))
      .def("lookup", [](const Mem& mm, InArray q, int64_t k, int64_t probes, int64_t up, bool exact, bool quantize) {
        const bool i8 = q.dtype() == nb::dtype<int8_t>();
        const int64_t n = rows_of(q, "SignatureMemory.lookup", "queries", i8 ? DType::i8 : DType::f32, mm.dim());
        trix::Grouping g;
        {
          nb::gil_scoped_release rel;
          const auto o = search_opts(k, probes, up, exact);
          g = i8 ? mm.lookup_i8(ptr<int8_t>(q), n, o) : mm.lookup(ptr<float>(q), n, o, quantize);
        }
        nb::tuple r = result_tuple(std::move(g.result));
        return nb::make_tuple(r[0], r[1], r[2], to_numpy(std::move(g.tiles)), to_numpy(std::move(g.offsets)),
                              to_numpy(std::move(g.perm)));
      }, nb::arg("queries"), nb::arg("k"), nb::arg("probes"), nb::arg("upper_probes"), nb::arg("exact"), nb::arg("quantize"))
      .def("explain", [](const Mem& mm, InArray q, int64_t probes, int64_t up) {
        check_array(q, "SignatureMemory.explain", "query", DType::f32, {mm.dim()});
        const trix::Explanation e = mm.explain(ptr<float>(q), search_opts(1, probes, up, false));
        nb::dict d;
        d["id"] = e.id;
        d["score"] = e.score;
        d["runner_up"] = e.runner_up;
        d["runner_up_score"] = e.runner_up_score;
        d["margin"] = e.margin;
        d["path"] = e.path;
        d["path_scores"] = e.path_scores;
        d["scored"] = e.scored;
        d["exact_id"] = e.exact_id;
        d["exact_score"] = e.exact_score;
        return d;
      }, nb::arg("query"), nb::arg("probes"), nb::arg("upper_probes"))
      .def("save", &Mem::save, nb::arg("path"))
      .def_static("load", &Mem::load, nb::arg("path"))
      .def("serialize", [](const Mem& mm) {
        const std::vector<uint8_t> b = mm.serialize();
        return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size());
      })
      .def_static("deserialize", [](nb::bytes b) {
        return Mem::deserialize(reinterpret_cast<const uint8_t*>(b.c_str()), b.size());
      }, nb::arg("data"));
}

}  // namespace

void bind_memory(nb::module_& m) {
  bind_memory_class(m);
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
