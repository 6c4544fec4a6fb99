// Hostile inputs (issue 13): crafted files whose checksums are valid, counts near 2^64, invalid
// codes from users, outputs aliasing inputs and the int8 depth limit, on every SIMD level. Each
// case once crashed, hung, allocated without bound or answered differently per level.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"
#include "trix/cpu.h"
#include "trix/error.h"
#include "trix/ffn.h"
#include "trix/format.h"
#include "trix/matmul.h"
#include "trix/memory.h"
#include "trix/prepared.h"
#include "trix/route.h"

using namespace trix;

namespace {

struct LevelGuard {
  SimdLevel before = simd_level();
  ~LevelGuard() { set_simd_level(before); }
};

void put64(uint8_t* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }

// Both formats keep the payload CRC at 56 and the header CRC at 60: an attacker recomputes them.
void reseal(std::vector<uint8_t>& b) {
  put32(b.data() + 56, crc32(b.data() + 64, b.size() - 64));
  put32(b.data() + 60, crc32(b.data(), 60));
}

// Expects a FormatError whose message contains `what`.
template <typename Fn>
void expect_format_error(Fn fn, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no FormatError; expected one mentioning '" << what << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

template <typename Fn>
void expect_invalid(Fn fn, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no invalid_argument; expected one mentioning '" << what << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

PackedTernary packed(int64_t rows, int64_t cols, uint32_t seed) {
  PackedTernary p;
  p.rows = rows, p.cols = cols;
  p.data.resize(static_cast<size_t>(rows * packed_row_bytes(cols)));
  const auto q = trix_test::random_ternary(rows * cols, seed);
  pack_int8(q.data(), rows, cols, p.data.data());
  p.scales = {0.5f};
  return p;
}

}  // namespace

// ---------------------------------------------------------------- packed format

// The reported crash: 2^40 rows of 2^24 bytes wrap rows * row_bytes to 0 in 64 bits, so a bare
// 64-byte header with valid checksums passed the size check and the code check walked off the buffer.
TEST(Hostile, PackedHeaderWhoseSizeWrapsToZero) {
  std::vector<uint8_t> b(64, 0);
  std::memcpy(b.data(), kFormatMagic, 8);
  b[8] = 1, b[10] = 64, b[12] = 1;
  const uint64_t rows = uint64_t(1) << 40, cols = uint64_t(1) << 26;  // row_bytes = 2^24
  put64(b.data() + 16, rows);
  put64(b.data() + 24, cols);
  put32(b.data() + 32, 128);
  put32(b.data() + 36, static_cast<uint32_t>(packed_row_bytes(static_cast<int64_t>(cols))));
  put64(b.data() + 40, 0);
  put64(b.data() + 48, rows * (uint64_t(1) << 24));  // wraps to 0
  reseal(b);
  ASSERT_EQ(rows * (uint64_t(1) << 24), 0u);
  expect_format_error([&] { deserialize(b.data(), b.size()); }, "field 'rows'");
}

TEST(Hostile, PackedHeaderFieldsAreBoundedAndNamed) {
  const PackedTernary t = packed(3, 130, 1);
  const std::vector<uint8_t> good = serialize(t.view());
  auto patched = [&](size_t off, uint64_t v, int bytes) {
    std::vector<uint8_t> b = good;
    if (bytes == 8) put64(b.data() + off, v); else put32(b.data() + off, static_cast<uint32_t>(v));
    reseal(b);
    return b;
  };
  auto load = [](const std::vector<uint8_t>& b) { return [b] { deserialize(b.data(), b.size()); }; };
  expect_format_error(load(patched(16, (uint64_t(1) << 40) + 1, 8)), "field 'rows'");
  expect_format_error(load(patched(24, ~uint64_t(0), 8)), "field 'cols'");
  expect_format_error(load(patched(32, 64, 4)), "field 'block weights'");
  expect_format_error(load(patched(36, 32, 4)), "field 'row bytes'");
  expect_format_error(load(patched(40, ~uint64_t(0), 8)), "field 'scales'");
  expect_format_error(load(patched(48, 0, 8)), "field 'data bytes'");
  // rows near 2^40 with their real row bytes: more than the file holds, found by division
  expect_format_error(load(patched(16, uint64_t(1) << 39, 8)), "field 'rows'");
  // 2^40 zero-column rows with one scale per row: the scales must be present
  {
    std::vector<uint8_t> b = patched(24, 0, 8);
    put32(b.data() + 36, 0);
    put64(b.data() + 16, uint64_t(1) << 40);
    put64(b.data() + 40, uint64_t(1) << 40);
    put64(b.data() + 48, 0);
    reseal(b);
    expect_format_error(load(b), "field 'scales'");
  }
  // a NaN scale (valid checksums) is refused
  {
    std::vector<uint8_t> b = good;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(b.data() + 64 + 3 * 64, &nan, 4);
    reseal(b);
    expect_format_error(load(b), "not a finite number");
  }
}

TEST(Hostile, PackedFileWithCode11OrPaddingIsRefused) {
  const PackedTernary t = packed(2, 130, 2);
  std::vector<uint8_t> b = serialize(t.view());
  b[64 + 5] |= 0x03;  // row 0, weight 5: code 11
  reseal(b);
  expect_format_error([&] { deserialize(b.data(), b.size()); }, "invalid code 11 at row 0, column 5");
  b = serialize(t.view());
  b[64 + 64 + 32 + 10] = 0x56;  // row 1, block 1, weight 10 (column 138 >= 130): padding +1... code 10
  reseal(b);
  expect_format_error([&] { deserialize(b.data(), b.size()); }, "non-zero padding weight at row 1");
}

// ---------------------------------------------------------------- users' packed bytes

TEST(Hostile, Code11IsRefusedWhereBytesEnter) {
  PackedTernary t = packed(4, 200, 3);
  t.data[17] = 0xFF;  // four codes 11 in row 0
  expect_format_error([&] { validate_packed(t.data.data(), t.rows, t.cols); }, "invalid code 11 at row 0");
  expect_format_error([&] { PreparedMatrix p(t.view()); }, "PreparedMatrix: invalid code 11");
  expect_format_error([&] { SignatureMemory::from_packed(t.view()); }, "invalid code 11");
  expect_format_error([&] { SignatureMemory::from_tiles(t.view(), 2); }, "invalid code 11");
  expect_format_error([&] { serialize(t.view()); }, "serialize: invalid code 11");
  // every valid byte pattern passes: all 81 four-weight bytes without a code 11
  std::vector<uint8_t> all;
  for (int v = 0; v < 256; ++v)
    if ((v & (v >> 1) & 0x55) == 0) all.push_back(static_cast<uint8_t>(v));
  ASSERT_EQ(all.size(), 81u);
  all.resize(96, kZeroByte);  // three 32-byte rows of 128 weights
  EXPECT_NO_THROW(validate_packed(all.data(), 3, 128));
}

// ---------------------------------------------------------------- out= aliasing, every level

TEST(Hostile, OutputOverlappingAnInputIsAnErrorOnEveryLevel) {
  LevelGuard guard;
  const int64_t n = 4, k = 4;  // square: y [n, m] may alias x [n, k]
  const PackedTernary w = packed(k, k, 4);
  const TernaryView v = w.view();
  const PreparedMatrix pw(v);
  for (SimdLevel l : available_simd_levels()) {
    set_simd_level(l);
    std::vector<float> x = trix_test::random_floats(n * k, 5);
    std::vector<int8_t> xq = trix_test::random_int8(n * k + 64, 6);
    std::vector<float> xs(static_cast<size_t>(n), 0.01f);
    const std::string lv = simd_level_name(l);
    SCOPED_TRACE(lv);
    expect_invalid([&] { matmul(x.data(), n, v, x.data()); }, "'out' must not overlap argument 'x'");
    expect_invalid([&] { matmul(x.data(), n, v, x.data() + 3); }, "must not overlap");
    expect_invalid([&] { matmul_t(x.data(), n, v, x.data()); }, "'out' must not overlap argument 'g'");
    expect_invalid([&] { matmul_i8_acc(xq.data(), n, v, reinterpret_cast<int32_t*>(xq.data())); },
                   "'out' must not overlap argument 'xq'");
    expect_invalid([&] { matmul_i8(xq.data(), xs.data(), n, v, xs.data()); }, "'out' must not overlap argument 'xscale'");
    expect_invalid([&] { matmul(x.data(), n, pw, x.data()); }, "'out' must not overlap argument 'x'");
    expect_invalid([&] { route_scores(x.data(), n, v, x.data()); }, "'out' must not overlap argument 'x'");
    std::vector<float> wbuf(64);
    expect_invalid([&] { matmul(x.data(), n, TernaryView{reinterpret_cast<const uint8_t*>(wbuf.data()), k, k, nullptr, 0},
                                wbuf.data()); }, "'out' must not overlap argument 'w'");
    const PackedTernary up = packed(2 * 4, k, 7), down = packed(2 * k, 4, 8);
    const TiledFFN f{up.view(), down.view(), 2};
    const std::vector<int32_t> idx(static_cast<size_t>(n), 0);
    expect_invalid([&] { tiled_ffn(x.data(), n, f, Activation::relu, idx.data(), nullptr, 1, x.data()); },
                   "'out' must not overlap argument 'x'");
    std::vector<float> y(static_cast<size_t>(n * k));
    expect_invalid([&] { tiled_ffn(x.data(), n, f, Activation::relu, idx.data(), nullptr, 1, y.data(), y.data()); },
                   "'hidden_pre' must not overlap argument 'out'");
    // separate buffers still work, and give the same answer on every level
    std::vector<float> ok(static_cast<size_t>(n * k));
    EXPECT_NO_THROW(matmul(x.data(), n, v, ok.data()));
  }
}

// ---------------------------------------------------------------- int8 depth limit, every level

// At K = kMaxI8Depth the extremes (x = -128 against +1 weights, the VNNI GEMV's worst plane sum
// -2^31) are exact on every level, one activation row (GEMV) or several; K + 1 is refused.
TEST(Hostile, Int8DepthLimitIsExactAtTheLimitAndEnforcedAbove) {
  LevelGuard guard;
  const int64_t k = kMaxI8Depth, rb = packed_row_bytes(k);
  std::vector<uint8_t> w(static_cast<size_t>(3 * rb));
  std::memset(w.data(), 0xAA, static_cast<size_t>(rb));           // row 0: all +1 (code 10)
  std::memset(w.data() + rb, 0x00, static_cast<size_t>(rb));      // row 1: all -1 (code 00)
  for (int64_t b = 0; b < rb; ++b) w[2 * rb + b] = (b & 1) ? 0xAA : 0x00;  // row 2: +1 / -1 by byte
  const TernaryView v{w.data(), 3, k, nullptr, 0};
  std::vector<int8_t> x(static_cast<size_t>(2 * k));
  std::fill(x.begin(), x.begin() + k, int8_t(-128));
  std::fill(x.begin() + k, x.end(), int8_t(127));
  const int32_t lo = -128 * (1 << 23), hi = 127 * (1 << 23);
  const std::vector<int32_t> want{lo, -lo, 0, hi, -hi, 0};
  for (SimdLevel l : available_simd_levels()) {
    set_simd_level(l);
    SCOPED_TRACE(simd_level_name(l));
    std::vector<int32_t> one(3), two(6);
    matmul_i8_acc(x.data(), 1, v, one.data());
    EXPECT_EQ(one, std::vector<int32_t>(want.begin(), want.begin() + 3));
    matmul_i8_acc(x.data(), 2, v, two.data());
    EXPECT_EQ(two, want);
    const TernaryView over{w.data(), 0, k + 1, nullptr, 0};
    expect_invalid([&] { matmul_i8_acc(x.data(), 1, over, one.data()); }, "at most 8388608 columns");
    std::vector<float> xs(1, 1.0f), y(1);
    expect_invalid([&] { matmul_i8(x.data(), xs.data(), 1, over, y.data()); }, "at most 8388608 columns");
  }
  expect_invalid([] { SignatureMemory m(kMaxMemoryDim + 1); }, "must be in [1, 8388608]");
}

// ---------------------------------------------------------------- SignatureMemory files

namespace {
std::vector<uint8_t> small_memory_file(bool tree) {
  const int64_t n = 20, d = 24;  // under 1 KB
  const auto s = trix_test::random_ternary(n * d, 9);
  SignatureMemory m = SignatureMemory::from_int8(s.data(), n, d);
  if (tree) {
    IndexOptions o;
    o.leaf_size = 8;
    m.build(o);
  }
  return m.serialize();
}
constexpr size_t kOpt = 64;  // the ten u64 options start the payload
}  // namespace

// The reported allocation: a 1 KB file naming next_id = 2^40 had the loader allocate 8 TiB for its
// id map before any check. The bound is now the file size (docs/memory.md).
TEST(Hostile, MemoryFileCannotAskForTerabytes) {
  std::vector<uint8_t> b = small_memory_file(false);
  ASSERT_LT(b.size(), 1500u);
  put64(b.data() + 32, uint64_t(1) << 40);
  reseal(b);
  expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "field 'next_id'");
  put64(b.data() + 32, (uint64_t(1) << 16) + 64 * (b.size() - 64) + 1);  // just past the bound
  reseal(b);
  expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "field 'next_id'");
  put64(b.data() + 32, 100000);  // sparse ids within the bound load (and are usable)
  reseal(b);
  const SignatureMemory m = SignatureMemory::deserialize(b.data(), b.size());
  EXPECT_EQ(m.next_id(), 100000);
  EXPECT_EQ(m.size(), 20);
  put64(b.data() + 16, uint64_t(kMaxMemoryDim) + 1);
  reseal(b);
  expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "field 'dim'");
}

// Reader::count once computed (n + extra) * each, which wraps for n near 2^64.
TEST(Hostile, MemoryCountsNear2To64AreRefused) {
  for (bool tree : {false, true}) {
    const std::vector<uint8_t> good = small_memory_file(tree);
    const size_t first = kOpt + 80;  // after the options: a level count (tree) or the cluster size (flat)
    for (uint64_t v : {~uint64_t(0), ~uint64_t(0) - 1, ~uint64_t(0) / 8, ~uint64_t(0) / 40 + 1, uint64_t(1) << 63}) {
      std::vector<uint8_t> b = good;
      put64(b.data() + first, v);
      reseal(b);
      expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, tree ? "level count" : "cluster size");
    }
  }
  std::vector<uint8_t> b = small_memory_file(true);
  put64(b.data() + 40, ~uint64_t(0));  // cluster count in the header
  reseal(b);
  expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "field 'clusters'");
}

// k-means iterations, levels, leaf sizes and sample sizes read from a file were unbounded (an add
// after the load could run 2^31 Lloyd iterations).
TEST(Hostile, MemoryIndexOptionsFromAFileAreBounded) {
  const std::vector<uint8_t> good = small_memory_file(true);
  const struct { size_t field; uint64_t v; } cases[] = {
      {0, 7}, {0, 1}, {0, ~uint64_t(0)},                          // levels
      {1, uint64_t(1) << 62},                                     // leaf_size
      {3, uint64_t(1) << 31}, {3, 0}, {3, kMaxKMeansIters + 1},   // iters
      {5, uint64_t(1) << 40}, {5, 0},                             // max_train_per_cluster
      {7, 2}, {8, 5},                                             // flags
      {9, ~uint64_t(0)},                                          // built_size
  };
  for (const auto& c : cases) {
    std::vector<uint8_t> b = good;
    put64(b.data() + kOpt + 8 * c.field, c.v);
    reseal(b);
    expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "invalid index options");
  }
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), -1.0, 1e9}) {
    for (size_t field : {4, 6}) {  // slack, rebuild_factor
      std::vector<uint8_t> b = good;
      uint64_t u;
      std::memcpy(&u, &bad, 8);
      put64(b.data() + kOpt + 8 * field, u);
      reseal(b);
      expect_format_error([&] { SignatureMemory::deserialize(b.data(), b.size()); }, "invalid index options");
    }
  }
  EXPECT_NO_THROW(SignatureMemory::deserialize(good.data(), good.size()));
  // build() refuses the same values, so a memory that saves also loads
  SignatureMemory m(8);
  IndexOptions o;
  o.kmeans.iters = kMaxKMeansIters + 1;
  expect_invalid([&] { m.build(o); }, "iters");
}

// Found by fuzz_memory: loading an empty memory passed a null pointer to memcpy (undefined
// behaviour, reported by UBSan in the sanitizer build of this suite).
TEST(Hostile, EmptyMemoryRoundTripsWithoutUndefinedBehaviour) {
  for (bool tree : {false, true}) {
    SignatureMemory m(16);
    if (tree) m.build();
    const std::vector<uint8_t> b = m.serialize();
    const SignatureMemory back = SignatureMemory::deserialize(b.data(), b.size());
    EXPECT_EQ(back.size(), 0);
    EXPECT_EQ(back.serialize(), b);
  }
}
