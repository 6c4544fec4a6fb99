// Packed bytes handed in by a user (not a file): validate_packed must accept exactly what
// unpack_int8 and the prototype export accept, and a matrix it accepts must give the same exact int8
// products on every SIMD level this CPU has. Input: 2 bytes of cols (<= 1023), then rows of bytes.
#include <vector>

#include "fuzz_util.h"
#include "trix/cpu.h"
#include "trix/matmul.h"
#include "trix/pack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int64_t cols = ((data[0] | (data[1] << 8)) & 1023) + 1, rb = trix::packed_row_bytes(cols);
  const int64_t rows = static_cast<int64_t>(size - 2) / rb;
  if (rows == 0) return 0;
  const uint8_t* w = data + 2;
  const bool valid = accepted([&] { trix::validate_packed(w, rows, cols); });
  std::vector<int8_t> q(static_cast<size_t>(rows * cols));
  FUZZ_CHECK(accepted([&] { trix::unpack_int8(w, rows, cols, q.data()); }) == valid, "unpack agrees with validate");
  std::vector<uint8_t> proto(static_cast<size_t>(rows * trix::prototype_row_bytes(cols)));
  const bool exported = accepted([&] { trix::export_prototype(w, rows, cols, proto.data()); });
  if (!valid) return 0;
  FUZZ_CHECK(exported, "export accepts what validate accepts");
  std::vector<uint8_t> back(static_cast<size_t>(rows * rb));
  trix::import_prototype(proto.data(), rows, cols, back.data());
  FUZZ_CHECK(std::vector<uint8_t>(w, w + rows * rb) == back, "prototype round trip");
  std::vector<uint8_t> repacked(back.size());
  trix::pack_int8(q.data(), rows, cols, repacked.data());
  FUZZ_CHECK(repacked == back, "pack(unpack(w)) == w");
  const trix::TernaryView v{w, rows, cols, nullptr, 0};
  std::vector<int8_t> x(static_cast<size_t>(3 * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int8_t>(data[i % size] ^ (i * 37));
  const trix::SimdLevel before = trix::simd_level();
  std::vector<int32_t> ref;
  for (trix::SimdLevel l : trix::available_simd_levels()) {
    trix::set_simd_level(l);
    std::vector<int32_t> acc(static_cast<size_t>(3 * rows));
    trix::matmul_i8_acc(x.data(), 3, v, acc.data());
    if (ref.empty()) ref = acc;
    FUZZ_CHECK(acc == ref, "int8 products equal on every SIMD level");
    std::vector<int32_t> one(static_cast<size_t>(rows));
    trix::matmul_i8_acc(x.data(), 1, v, one.data());  // the GEMV path
    FUZZ_CHECK(std::vector<int32_t>(ref.begin(), ref.begin() + rows) == one, "GEMV equals GEMM row 0");
  }
  trix::set_simd_level(before);
  return 0;
}
