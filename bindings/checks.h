// Argument checks for arrays crossing into libtrix. Any DLPack/buffer object is accepted without a
// copy (numpy arrays, torch CPU tensors); a wrong dtype or device raises TypeError, a wrong shape or
// layout ValueError, each naming the function, the argument, what was expected and what was given.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "trix/pack.h"

namespace trix_py {

namespace nb = nanobind;
using InArray = nb::ndarray<nb::ro>;  // read-only view: accepts writable and read-only arrays
using OutArray = nb::ndarray<>;       // must be writable

enum class DType { f32, f64, i8, u8, i32, i64 };

constexpr int64_t kAny = -1;

// Checks dtype, CPU device, rank, shape (kAny matches anything) and C-contiguity.
void check_array(const InArray& a, const char* func, const char* name, DType dt,
                 std::initializer_list<int64_t> shape);
void check_array(const OutArray& a, const char* func, const char* name, DType dt,
                 std::initializer_list<int64_t> shape);

// A packed matrix crossing as (data uint8 [rows, row_bytes], cols, scales float32 [0, 1 or rows]);
// an empty InArray() for scales means every scale is 1.
trix::TernaryView packed_view(const InArray& data, int64_t cols, const InArray& scales, const char* func,
                              const char* name);

[[noreturn]] void type_error(const std::string& msg);
[[noreturn]] void value_error(const std::string& msg);

template <typename T>
const T* ptr(const InArray& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* ptr(const OutArray& a) { return static_cast<T*>(a.data()); }

}  // namespace trix_py
