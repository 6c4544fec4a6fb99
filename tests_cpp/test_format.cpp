// The stored form: header fields, checksums, and every kind of damaged input.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "test_util.h"
#include "trix/error.h"
#include "trix/format.h"
#include "trix/quantize.h"

using namespace trix;

namespace {
PackedTernary sample(int64_t rows, int64_t cols, bool per_row) {
  const auto w = trix_test::random_floats(rows * cols, 7);
  QuantParams p;
  p.per_row = per_row;
  return pack_float(w.data(), rows, cols, p);
}
}  // namespace

TEST(Format, KnownCrc) {
  const char* s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);  // the standard check value
}

TEST(Format, HeaderFields) {
  const PackedTernary t = sample(3, 130, true);
  const auto b = serialize(t.view());
  ASSERT_EQ(b.size(), 64u + 3 * 64 + 3 * 4);
  EXPECT_EQ(std::memcmp(b.data(), "TRIXTERN", 8), 0);
  EXPECT_EQ(b[8], 1);      // version, little-endian
  EXPECT_EQ(b[10], 64);    // header bytes
  EXPECT_EQ(b[12], 1);     // layout
  EXPECT_EQ(b[16], 3);     // rows
  EXPECT_EQ(b[24], 130);   // cols
  EXPECT_EQ(b[32], 128);   // block weights
  EXPECT_EQ(b[36], 64);    // row bytes
  EXPECT_EQ(b[40], 3);     // scale count
  EXPECT_EQ(b[48], 192);   // data bytes
}

TEST(Format, RoundTrip) {
  for (bool per_row : {false, true}) {
    for (int64_t cols : {1, 65, 128, 257}) {
      const PackedTernary t = sample(5, cols, per_row);
      const auto b = serialize(t.view());
      const PackedTernary u = deserialize(b.data(), b.size());
      EXPECT_EQ(u.rows, t.rows);
      EXPECT_EQ(u.cols, t.cols);
      EXPECT_EQ(u.data, t.data);
      EXPECT_EQ(u.scales, t.scales);
    }
  }
}

TEST(Format, EmptyMatrixRoundTrips) {
  PackedTernary t;
  t.rows = 0;
  t.cols = 10;
  const auto b = serialize(t.view());
  const PackedTernary u = deserialize(b.data(), b.size());
  EXPECT_EQ(u.rows, 0);
  EXPECT_EQ(u.cols, 10);
}

TEST(Format, EveryTruncationIsAFormatError) {
  const auto b = serialize(sample(2, 70, false).view());
  for (size_t n = 0; n < b.size(); ++n) EXPECT_THROW(deserialize(b.data(), n), FormatError) << n;
}

TEST(Format, EveryFlippedByteIsDetected) {
  const auto good = serialize(sample(2, 70, true).view());
  for (size_t i = 0; i < good.size(); ++i) {
    auto b = good;
    b[i] ^= 0x5A;
    EXPECT_THROW(deserialize(b.data(), b.size()), FormatError) << "byte " << i;
  }
}

TEST(Format, TrailingBytesAreRejected) {
  auto b = serialize(sample(2, 70, false).view());
  b.push_back(0);
  EXPECT_THROW(deserialize(b.data(), b.size()), FormatError);
}

TEST(Format, SaveLoadFile) {
  const PackedTernary t = sample(4, 100, false);
  const std::string path = ::testing::TempDir() + "trix_format_test.trix";
  save_packed(path, t.view());
  const PackedTernary u = load_packed(path);
  EXPECT_EQ(u.data, t.data);
  EXPECT_EQ(u.scales, t.scales);
  std::remove(path.c_str());
  EXPECT_THROW(load_packed(path), std::runtime_error);
}
