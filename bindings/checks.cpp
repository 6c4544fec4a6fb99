#include "checks.h"

#include <sstream>

namespace trix_py {

void type_error(const std::string& msg) { throw nb::type_error(msg.c_str()); }
void value_error(const std::string& msg) { throw nb::value_error(msg.c_str()); }

namespace {

std::string dtype_name(nb::dlpack::dtype t) {
  const char* kind = "?";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bool: return "bool";
  }
  return std::string(kind) + std::to_string(t.bits);
}

nb::dlpack::dtype dtype_of(DType d) {
  switch (d) {
    case DType::f32: return nb::dtype<float>();
    case DType::f64: return nb::dtype<double>();
    case DType::i8: return nb::dtype<int8_t>();
    case DType::u8: return nb::dtype<uint8_t>();
    case DType::i32: return nb::dtype<int32_t>();
    case DType::i64: return nb::dtype<int64_t>();
  }
  return nb::dtype<float>();
}

template <typename Arr>
std::string shape_str(const Arr& a) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
  os << "]";
  return os.str();
}

std::string want_str(std::initializer_list<int64_t> shape) {
  std::ostringstream os;
  os << "[";
  size_t i = 0;
  for (int64_t s : shape) {
    os << (i++ ? ", " : "");
    if (s == kAny) os << "*"; else os << s;
  }
  os << "]";
  return os.str();
}

template <typename Arr>
void check_impl(const Arr& a, const char* func, const char* name, DType dt, std::initializer_list<int64_t> shape) {
  const std::string where = std::string(func) + ": argument '" + name + "' ";
  if (!a.is_valid()) type_error(where + "must be an array, got None");
  if (a.device_type() != nb::device::cpu::value)
    type_error(where + "must be on the CPU, got device type " + std::to_string(a.device_type()) +
               " (move it with .cpu(), or use the torch fallback)");
  const nb::dlpack::dtype want = dtype_of(dt);
  if (a.dtype() != want) type_error(where + "must have dtype " + dtype_name(want) + ", got " + dtype_name(a.dtype()));
  if (a.ndim() != shape.size())
    value_error(where + "must have " + std::to_string(shape.size()) + " dimensions " + want_str(shape) + ", got " +
                std::to_string(a.ndim()) + " with shape " + shape_str(a));
  size_t i = 0;
  for (int64_t s : shape) {
    if (s != kAny && static_cast<int64_t>(a.shape(i)) != s)
      value_error(where + "must have shape " + want_str(shape) + ", got " + shape_str(a));
    ++i;
  }
  if (a.size() == 0) return;  // an empty array has no layout to check
  int64_t expect = 1;
  for (size_t d = a.ndim(); d-- > 0;) {
    if (a.shape(d) != 1 && a.stride(d) != expect)
      value_error(where + "must be C-contiguous (row-major, no gaps); call .contiguous() or np.ascontiguousarray");
    expect *= static_cast<int64_t>(a.shape(d));
  }
}

}  // namespace

void check_array(const InArray& a, const char* func, const char* name, DType dt, std::initializer_list<int64_t> shape) {
  check_impl(a, func, name, dt, shape);
}
void check_array(const OutArray& a, const char* func, const char* name, DType dt, std::initializer_list<int64_t> shape) {
  check_impl(a, func, name, dt, shape);
}

trix::TernaryView packed_view(const InArray& data, int64_t cols, const InArray& scales, const char* func,
                              const char* name) {
  if (cols < 0) value_error(std::string(func) + ": argument 'cols' of '" + name + "' must be >= 0, got " + std::to_string(cols));
  check_array(data, func, name, DType::u8, {kAny, trix::packed_row_bytes(cols)});
  const int64_t rows = static_cast<int64_t>(data.shape(0));
  if (!scales.is_valid()) return trix::TernaryView{ptr<uint8_t>(data), rows, cols, nullptr, 0};  // scale 1
  check_array(scales, func, (std::string(name) + ".scales").c_str(), DType::f32, {kAny});
  const int64_t ns = static_cast<int64_t>(scales.shape(0));
  if (ns != 0 && ns != 1 && ns != rows)
    value_error(std::string(func) + ": argument '" + name + ".scales' must have 0, 1 or rows (" + std::to_string(rows) +
                ") entries, got " + std::to_string(ns));
  return trix::TernaryView{ptr<uint8_t>(data), rows, cols, ns ? ptr<float>(scales) : nullptr, ns};
}

}  // namespace trix_py
