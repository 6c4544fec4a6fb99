// The .trixm loader: every truncation and every flipped byte is a FormatError; fields that are
// wrong but carry valid checksums are rejected with a message naming the field; mmap and buffer
// loads agree; the writer refuses what a reader would refuse.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "test_model_util.h"
#include "trix/error.h"
#include "trix/format.h"
#include "trix/model.h"

namespace {

using trix::FfnKind;
using trix::Routing;

std::vector<uint8_t> small_file() {
  return trix_test::random_model(FfnKind::hierarchical, Routing::emergent, 2).bytes();
}

uint64_t get64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + i];
  return v;
}
void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) { for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i)); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i)); }

// Recomputes both checksums, so that only the field under test is wrong.
void reseal(std::vector<uint8_t>& b) {
  put32(b, 56, trix::crc32(b.data() + 64, b.size() - 64));
  put32(b, 60, trix::crc32(b.data(), 60));
}

std::string load_error(std::vector<uint8_t> b) {
  try {
    trix::Model::from_bytes(b.data(), b.size());
  } catch (const trix::FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelFile, LoadsFromBytesAndFromAMapping) {
  const std::vector<uint8_t> b = small_file();
  const std::string path = ::testing::TempDir() + "trix_model_test.trixm";
  trix::write_file_atomic(path, b.data(), b.size());
  const trix::Model a = trix::Model::load(path), c = trix::Model::from_bytes(b.data(), b.size());
  EXPECT_TRUE(a.mapped());
  EXPECT_FALSE(c.mapped());
  EXPECT_EQ(a.config().tiles, 4);
  EXPECT_EQ(a.vocab(), c.vocab());
  EXPECT_EQ(a.generate("c", 25, {0.0f, 0, 0}), c.generate("c", 25, {0.0f, 0, 0}));
  std::remove(path.c_str());
  EXPECT_THROW(trix::Model::load(path), std::runtime_error);
}

TEST(ModelFile, TensorsAre64ByteAligned) {
  const std::vector<uint8_t> b = small_file();
  const uint64_t count = get64(b, 16), dir = get64(b, 24);
  ASSERT_GT(count, 10u);
  for (uint64_t i = 0; i < count; ++i) EXPECT_EQ(get64(b, dir + i * 96 + 80) % 64, 0u) << i;
  EXPECT_EQ(get64(b, 40), b.size());
}

TEST(ModelFile, EveryTruncationIsAFormatError) {
  const std::vector<uint8_t> b = small_file();
  for (size_t n = 0; n < b.size(); n += (n < 512 ? 1 : 97))
    EXPECT_THROW(trix::Model::from_bytes(b.data(), n), trix::FormatError) << n;
}

TEST(ModelFile, EveryFlippedByteIsDetected) {
  std::vector<uint8_t> b = small_file();
  for (size_t i = 0; i < b.size(); i += (i < 2048 ? 1 : 61)) {
    b[i] ^= 0x40;
    EXPECT_THROW(trix::Model::from_bytes(b.data(), b.size()), trix::FormatError) << i;
    b[i] ^= 0x40;
  }
}

TEST(ModelFile, WrongFieldsWithValidChecksumsNameTheField) {
  const std::vector<uint8_t> good = small_file();
  const uint64_t dir = get64(good, 24), data = get64(good, 32);
  auto with = [&](auto edit) {
    std::vector<uint8_t> b = good;
    edit(b);
    reseal(b);
    return load_error(b);
  };
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 28, 0); }).find("'tiles'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 28, 1u << 30); }).find("'tiles'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 12, 5); }).find("'n_head'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 24, 99); }).find("'routing'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 52, 0xFFFF); }).find("'flags'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 64 + 0, 1u << 30); }).find("'vocab_size'"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put64(b, 16, uint64_t(1) << 62); }).find("'tensor_count'"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put64(b, 32, data + 64); }).find("'data_offset'"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put64(b, dir + 80, data + 8); }).find("offset"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put64(b, dir + 80, uint64_t(1) << 63); }).find("offset"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put64(b, dir + 56, uint64_t(1) << 50); }).find("shape"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put32(b, dir + 48, 7); }).find("unknown kind"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { b[dir] = 'X'; }).find("missing tensor 'tok_emb'"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { std::memset(&b[dir], 'a', 48); }).find("NUL"), std::string::npos);
  EXPECT_NE(with([&](auto& b) { put64(b, dir + 96 + 80, get64(b, dir + 80)); }).find("overlap"), std::string::npos);
  EXPECT_NE(with([](auto& b) { put32(b, 128, 0xD800); }).find("vocab entry 0"), std::string::npos);
}

TEST(ModelFile, InvalidCodesAndRoutingTablesAreRejected) {
  auto m = trix_test::random_model(FfnKind::sparse, Routing::hash, 4, true);
  for (auto& t : m.tensors)
    if (t.name == "blocks.0.ffn.hash") t.data[0] = 9;  // tile 9 of 4
  EXPECT_THROW(m.bytes(), std::invalid_argument);
  auto q = trix_test::random_model(FfnKind::sparse, Routing::emergent, 4, true);
  for (auto& t : q.tensors)
    if (t.name == "blocks.1.attn.qkv") t.data[3] = 0xFF;  // code 11
  EXPECT_THROW(q.bytes(), std::invalid_argument);
  auto c = trix_test::random_model(FfnKind::hierarchical, Routing::emergent, 4);
  for (auto& t : c.tensors)
    if (t.name == "blocks.0.ffn.cluster_of") std::memset(t.data.data(), 0, t.data.size());  // cluster 1 empty
  EXPECT_THROW(c.bytes(), std::invalid_argument);
  auto x = trix_test::random_model(FfnKind::sparse, Routing::learned, 4);
  x.tensors.push_back(trix_test::float_tensor("extra", 2, 2, 1, 1.0f));
  EXPECT_THROW(x.bytes(), std::invalid_argument);
}

}  // namespace
