#include "trix/pack.h"

#include <cstring>

#include "trix/error.h"

namespace trix {

int64_t packed_row_bytes(int64_t cols) {
  return (cols + kBlockWeights - 1) / kBlockWeights * kBlockBytes;
}

void check_view(const TernaryView& v, const char* func, const char* arg) {
  TRIX_CHECK_ARG(v.rows >= 0 && v.cols >= 0, func, arg, "must have a non-negative shape, got [", v.rows,
                 ", ", v.cols, "]");
  TRIX_CHECK_ARG(v.data != nullptr || v.rows * v.cols == 0, func, arg, "has no data");
  TRIX_CHECK_ARG(v.n_scales == 0 || v.n_scales == 1 || v.n_scales == v.rows, func, arg,
                 "must have 0, 1 or rows (", v.rows, ") scales, got ", v.n_scales);
  TRIX_CHECK_ARG(v.n_scales == 0 || v.scales != nullptr, func, arg, "has a scale count but no scales");
}

namespace {
inline void set_code(uint8_t* row, int64_t c, int code) {
  const int64_t b = c / kBlockWeights, r = c % kBlockWeights;
  uint8_t& byte = row[b * kBlockBytes + (r % kBlockBytes)];
  const int shift = 2 * static_cast<int>(r / kBlockBytes);
  byte = static_cast<uint8_t>((byte & ~(3u << shift)) | (static_cast<unsigned>(code) << shift));
}
}  // namespace

void pack_int8(const int8_t* w, int64_t rows, int64_t cols, uint8_t* out) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, "pack_int8", "w", "must have a non-negative shape, got [", rows,
                 ", ", cols, "]");
  const int64_t rb = packed_row_bytes(cols);
  if (rb == 0) return;  // no columns: no bytes (and out may be null)
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out + r * rb;
    std::memset(row, kZeroByte, static_cast<size_t>(rb));
    for (int64_t c = 0; c < cols; ++c) {
      const int8_t v = w[r * cols + c];
      TRIX_CHECK_ARG(v >= -1 && v <= 1, "pack_int8", "w", "must hold only -1, 0 or 1, got ",
                     static_cast<int>(v), " at [", r, ", ", c, "]");
      set_code(row, c, v + 1);
    }
  }
}

void unpack_int8(const uint8_t* packed, int64_t rows, int64_t cols, int8_t* out) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, "unpack_int8", "packed", "must have a non-negative shape, got [",
                 rows, ", ", cols, "]");
  const int64_t rb = packed_row_bytes(cols);
  const int64_t padded = rb * 4;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = packed + r * rb;
    for (int64_t c = 0; c < padded; ++c) {
      const int64_t b = c / kBlockWeights, q = c % kBlockWeights;
      const int code = (row[b * kBlockBytes + (q % kBlockBytes)] >> (2 * (q / kBlockBytes))) & 3;
      if (code == 3)
        throw FormatError(detail::concat("unpack_int8: invalid code 11 at row ", r, ", column ", c));
      if (c >= cols) {
        if (code != 1)
          throw FormatError(detail::concat("unpack_int8: non-zero padding weight at row ", r, ", column ", c));
        continue;
      }
      out[r * cols + c] = static_cast<int8_t>(code - 1);
    }
  }
}

namespace {
// A byte holds a code 11 where both bits of a slot are set.
inline bool has_code3(uint64_t v) { return (v & (v >> 1) & 0x5555555555555555ull) != 0; }
}  // namespace

void validate_packed(const uint8_t* packed, int64_t rows, int64_t cols, const char* func) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, func, "packed", "must have a non-negative shape, got [", rows, ", ", cols, "]");
  const int64_t rb = packed_row_bytes(cols);
  if (rb == 0 || rows == 0) return;
  TRIX_CHECK_ARG(packed != nullptr, func, "packed", "has no data");
  const int64_t tail = cols % kBlockWeights, last = rb - kBlockBytes;  // the last block holds the padding
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = packed + r * rb;
    bool bad = false;
    for (int64_t b = 0; b + 8 <= rb; b += 8) {  // rb is a multiple of 32
      uint64_t v;
      std::memcpy(&v, row + b, 8);
      bad |= has_code3(v);
    }
    for (int64_t c = tail ? tail : kBlockWeights; c < kBlockWeights && !bad; ++c)
      bad = ((row[last + c % kBlockBytes] >> (2 * (c / kBlockBytes))) & 3) != 1;
    if (!bad) continue;
    for (int64_t c = 0; c < rb * 4; ++c) {  // find the first offender, for the message
      const int64_t b = c / kBlockWeights, q = c % kBlockWeights;
      const int code = (row[b * kBlockBytes + (q % kBlockBytes)] >> (2 * (q / kBlockBytes))) & 3;
      if (code == 3) throw FormatError(detail::concat(func, ": invalid code 11 at row ", r, ", column ", c));
      if (c >= cols && code != 1)
        throw FormatError(detail::concat(func, ": non-zero padding weight at row ", r, ", column ", c));
    }
  }
}

int64_t prototype_row_bytes(int64_t cols) { return (cols + 3) / 4; }

void import_prototype(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* out) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, "import_prototype", "src", "must have a non-negative shape");
  const int64_t prb = prototype_row_bytes(cols), rb = packed_row_bytes(cols);
  if (rb == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out + r * rb;
    std::memset(row, kZeroByte, static_cast<size_t>(rb));
    for (int64_t c = 0; c < cols; ++c) {
      const int code = (src[r * prb + c / 4] >> (2 * (c % 4))) & 3;  // 00 = 0, 01 = +1, 10 = -1
      if (code == 3)
        throw FormatError(detail::concat("import_prototype: invalid code 11 at row ", r, ", column ", c));
      const int w = code == 0 ? 0 : (code == 1 ? 1 : -1);
      set_code(row, c, w + 1);
    }
  }
}

void export_prototype(const uint8_t* packed, int64_t rows, int64_t cols, uint8_t* out) {
  TRIX_CHECK_ARG(rows >= 0 && cols >= 0, "export_prototype", "packed", "must have a non-negative shape");
  const int64_t prb = prototype_row_bytes(cols), rb = packed_row_bytes(cols);
  if (prb == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out + r * prb;
    std::memset(dst, 0, static_cast<size_t>(prb));
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t b = c / kBlockWeights, q = c % kBlockWeights;
      const int code = (packed[r * rb + b * kBlockBytes + (q % kBlockBytes)] >> (2 * (q / kBlockBytes))) & 3;
      if (code == 3)
        throw FormatError(detail::concat("export_prototype: invalid code 11 at row ", r, ", column ", c));
      const int proto = code == 1 ? 0 : (code == 2 ? 1 : 2);
      dst[c / 4] = static_cast<uint8_t>(dst[c / 4] | (proto << (2 * (c % 4))));
    }
  }
}

}  // namespace trix
