// The packed ternary format, version 1 (docs/format.md is the byte-by-byte specification).
//
// A weight w in {-1, 0, +1} is stored as the 2-bit code w + 1 (00 = -1, 01 = 0, 10 = +1; 11 is
// invalid). Each row is cut into blocks of 128 weights held in 32 bytes: byte j of a block holds
// the weights j, j+32, j+64, j+96 of that block in bits 0-1, 2-3, 4-5, 6-7. A row whose length is
// not a multiple of 128 is padded with zero weights (code 01). Rows follow each other.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace trix {

constexpr int64_t kBlockWeights = 128;  // weights per block, fixed by the format on every CPU
constexpr int64_t kBlockBytes = 32;     // bytes per block
constexpr uint8_t kZeroByte = 0x55;     // four zero weights (code 01 in every slot)
static_assert(kBlockWeights == 4 * kBlockBytes, "four 2-bit codes per byte");

// Bytes of one packed row of `cols` weights (a multiple of 32).
int64_t packed_row_bytes(int64_t cols);

// A non-owning view of a packed ternary matrix [rows, cols] with its scales.
// scales has n_scales = 1 (one scale for the matrix) or n_scales = rows (one per row);
// n_scales = 0 means every scale is 1 (signatures are stored that way).
struct TernaryView {
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  const float* scales = nullptr;
  int64_t n_scales = 0;

  int64_t row_bytes() const { return packed_row_bytes(cols); }
  const uint8_t* row(int64_t r) const { return data + r * row_bytes(); }
  float scale(int64_t r) const { return n_scales == 0 ? 1.0f : scales[n_scales == 1 ? 0 : r]; }
};

// Checks shape and scale count of a view; throws std::invalid_argument naming `arg`.
void check_view(const TernaryView& v, const char* func, const char* arg);

// An owning packed matrix.
struct PackedTernary {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> data;   // rows * packed_row_bytes(cols)
  std::vector<float> scales;   // empty, 1 or rows entries
  TernaryView view() const {
    return TernaryView{data.data(), rows, cols, scales.empty() ? nullptr : scales.data(),
                       static_cast<int64_t>(scales.size())};
  }
};

// Weight (-1, 0, +1) at column c of a packed row.
inline int weight_at(const uint8_t* row, int64_t c) {
  const int64_t b = c / kBlockWeights, r = c % kBlockWeights;
  return ((row[b * kBlockBytes + (r % kBlockBytes)] >> (2 * (r / kBlockBytes))) & 3) - 1;
}

// Packs int8 weights in {-1, 0, 1}, row-major [rows, cols], into out (rows * packed_row_bytes).
// Any other value is an error naming its position.
void pack_int8(const int8_t* w, int64_t rows, int64_t cols, uint8_t* out);

// Unpacks to int8 {-1, 0, 1}. A code 11 or a non-zero padding weight is a FormatError.
void unpack_int8(const uint8_t* packed, int64_t rows, int64_t cols, int8_t* out);

// Checks that rows * packed_row_bytes(cols) bytes hold only valid codes (no 11) with zero padding;
// throws FormatError("<func>: invalid code 11 at row r, column c" or "... non-zero padding ...").
// Kernels trust their packed input: bytes that come from a user or a file are checked once, where
// they enter (deserialize, PreparedMatrix, SignatureMemory, trix.PackedTernary in Python).
void validate_packed(const uint8_t* packed, int64_t rows, int64_t cols, const char* func = "validate_packed");

// The prototype's layout (no header): codes 00 = 0, 01 = +1, 10 = -1, weight i of a group of four at
// bits 2i..2i+1, each row padded to a multiple of 4 weights, ceil(cols / 4) bytes per row.
int64_t prototype_row_bytes(int64_t cols);
void import_prototype(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* out);
void export_prototype(const uint8_t* packed, int64_t rows, int64_t cols, uint8_t* out);

}  // namespace trix
