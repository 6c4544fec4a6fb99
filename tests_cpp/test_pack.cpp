// Packing, unpacking, the byte layout of format version 1 and the prototype layout.
#include <gtest/gtest.h>

#include "test_util.h"
#include "trix/error.h"
#include "trix/pack.h"

using namespace trix;
using trix_test::awkward_sizes;
using trix_test::random_ternary;

TEST(Pack, RowBytesArePaddedToBlocks) {
  EXPECT_EQ(packed_row_bytes(0), 0);
  EXPECT_EQ(packed_row_bytes(1), 32);
  EXPECT_EQ(packed_row_bytes(128), 32);
  EXPECT_EQ(packed_row_bytes(129), 64);
  EXPECT_EQ(packed_row_bytes(4096), 1024);
}

TEST(Pack, ByteLayoutMatchesTheSpecification) {
  // Weight c of a block lives in byte c % 32 at bits 2 * (c / 32); the code is w + 1.
  std::vector<int8_t> w(130, 0);
  w[0] = 1;     // byte 0, bits 0-1 -> code 10
  w[32] = -1;   // byte 0, bits 2-3 -> code 00
  w[97] = 1;    // byte 1, bits 6-7 -> code 10
  w[129] = -1;  // second block, byte 1, bits 0-1 -> code 00
  std::vector<uint8_t> p(static_cast<size_t>(packed_row_bytes(130)));
  pack_int8(w.data(), 1, 130, p.data());
  EXPECT_EQ(p[0], 0b01010010);   // w96=0 w64=0 w32=-1 w0=+1
  EXPECT_EQ(p[1], 0b10010101);   // w97=+1 w65=0 w33=0 w1=0
  EXPECT_EQ(p[2], kZeroByte);
  EXPECT_EQ(p[32], kZeroByte);   // weight 128 is 0, and the padding is zero weights
  EXPECT_EQ(p[33], 0b01010100);  // weight 129 = -1
  for (size_t i = 34; i < p.size(); ++i) EXPECT_EQ(p[i], kZeroByte);
}

TEST(Pack, RoundTripOnAwkwardSizes) {
  for (int64_t rows : {1, 3, 5}) {
    for (int64_t cols : awkward_sizes()) {
      const auto w = random_ternary(rows * cols, static_cast<uint32_t>(rows * 1000 + cols));
      std::vector<uint8_t> p(static_cast<size_t>(rows * packed_row_bytes(cols)));
      pack_int8(w.data(), rows, cols, p.data());
      std::vector<int8_t> back(w.size());
      unpack_int8(p.data(), rows, cols, back.data());
      EXPECT_EQ(back, w) << rows << "x" << cols;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(weight_at(p.data() + r * packed_row_bytes(cols), c), w[r * cols + c]);
    }
  }
}

TEST(Pack, RejectsValuesOutsideTernary) {
  std::vector<int8_t> w{0, 1, 2, -1};
  std::vector<uint8_t> p(32);
  try {
    pack_int8(w.data(), 1, 4, p.data());
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("got 2 at [0, 2]"), std::string::npos) << e.what();
  }
}

TEST(Pack, UnpackRejectsInvalidCodesAndDirtyPadding) {
  std::vector<uint8_t> p(32, kZeroByte);
  std::vector<int8_t> out(5);
  p[3] = 0xFF;  // code 11
  EXPECT_THROW(unpack_int8(p.data(), 1, 5, out.data()), FormatError);
  p[3] = kZeroByte;
  p[10] = 0x56;  // weight 10 (padding when cols = 5) set to +1
  EXPECT_THROW(unpack_int8(p.data(), 1, 5, out.data()), FormatError);
}

TEST(Prototype, ImportExportRoundTrip) {
  for (int64_t cols : awkward_sizes()) {
    const int64_t rows = 3;
    const auto w = random_ternary(rows * cols, static_cast<uint32_t>(cols));
    // Build the prototype bytes independently: 00 = 0, 01 = +1, 10 = -1, weight i at bits 2i.
    const int64_t prb = (cols + 3) / 4;
    std::vector<uint8_t> proto(static_cast<size_t>(rows * prb), 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int8_t v = w[r * cols + c];
        const int code = v == 0 ? 0 : (v == 1 ? 1 : 2);
        proto[r * prb + c / 4] |= static_cast<uint8_t>(code << (2 * (c % 4)));
      }
    std::vector<uint8_t> packed(static_cast<size_t>(rows * packed_row_bytes(cols)));
    import_prototype(proto.data(), rows, cols, packed.data());
    std::vector<int8_t> back(w.size());
    unpack_int8(packed.data(), rows, cols, back.data());
    EXPECT_EQ(back, w);
    std::vector<uint8_t> again(proto.size());
    export_prototype(packed.data(), rows, cols, again.data());
    EXPECT_EQ(again, proto);
  }
}

TEST(Prototype, ImportRejectsCode11) {
  std::vector<uint8_t> proto{0b11000000};
  std::vector<uint8_t> out(32);
  EXPECT_THROW(import_prototype(proto.data(), 1, 4, out.data()), FormatError);
}

TEST(Pack, ZeroColumnsTouchNoMemory) {
  // rows of zero columns have zero bytes: null buffers must be accepted (UBSan checks the memsets)
  pack_int8(nullptr, 3, 0, nullptr);
  unpack_int8(nullptr, 3, 0, nullptr);
  import_prototype(nullptr, 3, 0, nullptr);
  export_prototype(nullptr, 3, 0, nullptr);
  SUCCEED();
}
