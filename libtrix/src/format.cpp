#include "trix/format.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "byte_order.h"
#include "trix/error.h"

namespace trix {

using detail::get_f32;
using detail::get_u16;
using detail::get_u32;
using detail::get_u64;
using detail::put_f32;
using detail::put_u16;
using detail::put_u32;
using detail::put_u64;

uint32_t crc32(const uint8_t* data, uint64_t n, uint32_t crc) {
  static uint32_t table[256];
  static const bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  crc = ~crc;
  for (uint64_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint64_t serialized_bytes(const TernaryView& v) {
  return kHeaderBytes + static_cast<uint64_t>(v.rows * v.row_bytes()) + 4u * static_cast<uint64_t>(v.n_scales);
}

std::vector<uint8_t> serialize(const TernaryView& v) {
  check_view(v, "serialize", "v");
  TRIX_CHECK_ARG(static_cast<uint64_t>(v.rows) <= kMaxPackedDim && static_cast<uint64_t>(v.cols) <= kMaxPackedDim,
                 "serialize", "v", "must have at most ", kMaxPackedDim, " rows and columns, got [", v.rows, ", ", v.cols, "]");
  validate_packed(v.data, v.rows, v.cols, "serialize");
  for (int64_t i = 0; i < v.n_scales; ++i)
    TRIX_CHECK_ARG(std::isfinite(v.scales[i]), "serialize", "v", "must have finite scales, got ", v.scales[i], " at ", i);
  std::vector<uint8_t> out(serialized_bytes(v), 0);
  uint8_t* h = out.data();
  const uint64_t data_bytes = static_cast<uint64_t>(v.rows * v.row_bytes());
  std::memcpy(h, kFormatMagic, 8);
  put_u16(h + 8, kFormatVersion);
  put_u16(h + 10, kHeaderBytes);
  put_u32(h + 12, kLayoutRowBlock128);
  put_u64(h + 16, static_cast<uint64_t>(v.rows));
  put_u64(h + 24, static_cast<uint64_t>(v.cols));
  put_u32(h + 32, static_cast<uint32_t>(kBlockWeights));
  put_u32(h + 36, static_cast<uint32_t>(v.row_bytes()));
  put_u64(h + 40, static_cast<uint64_t>(v.n_scales));
  put_u64(h + 48, data_bytes);
  if (data_bytes) std::memcpy(h + kHeaderBytes, v.data, data_bytes);
  for (int64_t i = 0; i < v.n_scales; ++i) put_f32(h + kHeaderBytes + data_bytes + 4 * i, v.scales[i]);
  const uint32_t crc = crc32(h + kHeaderBytes, out.size() - kHeaderBytes);
  put_u32(h + 56, crc);
  put_u32(h + 60, crc32(h, 60));
  return out;
}

PackedTernary deserialize(const uint8_t* bytes, uint64_t n) {
  if (n < kHeaderBytes)
    throw FormatError(detail::concat("deserialize: truncated header: ", n, " bytes, expected at least ", kHeaderBytes));
  if (std::memcmp(bytes, kFormatMagic, 8) != 0)
    throw FormatError("deserialize: bad magic: not a TriX packed tensor (expected \"TRIXTERN\")");
  if (get_u32(bytes + 60) != crc32(bytes, 60)) throw FormatError("deserialize: header checksum mismatch (corrupt header)");
  const uint16_t version = get_u16(bytes + 8);
  if (version != kFormatVersion)
    throw FormatError(detail::concat("deserialize: unsupported format version ", version, ", this build reads ", kFormatVersion));
  if (get_u16(bytes + 10) != kHeaderBytes) throw FormatError("deserialize: unexpected header size");
  if (get_u32(bytes + 12) != kLayoutRowBlock128)
    throw FormatError(detail::concat("deserialize: unknown layout ", get_u32(bytes + 12)));
  const uint64_t rows = get_u64(bytes + 16), cols = get_u64(bytes + 24);
  if (rows > kMaxPackedDim) throw FormatError(detail::concat("deserialize: field 'rows' is ", rows, ", the maximum is ", kMaxPackedDim));
  if (cols > kMaxPackedDim) throw FormatError(detail::concat("deserialize: field 'cols' is ", cols, ", the maximum is ", kMaxPackedDim));
  const uint64_t rb = static_cast<uint64_t>(packed_row_bytes(static_cast<int64_t>(cols)));
  if (get_u32(bytes + 32) != kBlockWeights)
    throw FormatError(detail::concat("deserialize: field 'block weights' is ", get_u32(bytes + 32), ", expected ", kBlockWeights));
  if (get_u32(bytes + 36) != rb)
    throw FormatError(detail::concat("deserialize: field 'row bytes' is ", get_u32(bytes + 36), ", cols ", cols, " needs ", rb));
  const uint64_t n_scales = get_u64(bytes + 40), data_bytes = get_u64(bytes + 48);
  if (n_scales != 0 && n_scales != 1 && n_scales != rows)
    throw FormatError(detail::concat("deserialize: field 'scales' is ", n_scales, ", neither 0, 1 nor rows (", rows, ")"));
  // rows * rb can exceed 2^64 (2^40 rows of 2^38 bytes): compare by division, against the bytes present.
  const uint64_t present = n - kHeaderBytes;
  if (rb != 0 && rows > present / rb)
    throw FormatError(detail::concat("deserialize: field 'rows' is ", rows, " rows of ", rb, " bytes, but the file has only ",
                                     present, " bytes after the header (truncated or corrupt)"));
  if (data_bytes != rows * rb)
    throw FormatError(detail::concat("deserialize: field 'data bytes' is ", data_bytes, ", rows * row bytes is ", rows * rb));
  if (n_scales > (present - data_bytes) / 4)
    throw FormatError(detail::concat("deserialize: field 'scales' is ", n_scales, ", but only ", present - data_bytes,
                                     " bytes follow the rows (truncated or corrupt)"));
  const uint64_t expect = kHeaderBytes + data_bytes + 4 * n_scales;
  if (n != expect)
    throw FormatError(detail::concat("deserialize: size ", n, " bytes, header says ", expect, n < expect ? " (truncated)" : " (trailing bytes)"));
  if (get_u32(bytes + 56) != crc32(bytes + kHeaderBytes, n - kHeaderBytes))
    throw FormatError("deserialize: payload checksum mismatch (corrupt data)");
  // Every code valid, zero padding, finite scales: a tensor that loads is safe with every API.
  validate_packed(bytes + kHeaderBytes, static_cast<int64_t>(rows), static_cast<int64_t>(cols), "deserialize");
  PackedTernary out;
  out.rows = static_cast<int64_t>(rows);
  out.cols = static_cast<int64_t>(cols);
  out.data.assign(bytes + kHeaderBytes, bytes + kHeaderBytes + data_bytes);
  out.scales.resize(n_scales);
  for (uint64_t i = 0; i < n_scales; ++i) {
    out.scales[i] = get_f32(bytes + kHeaderBytes + data_bytes + 4 * i);
    if (!std::isfinite(out.scales[i]))
      throw FormatError(detail::concat("deserialize: scale ", i, " is ", out.scales[i], ", not a finite number"));
  }
  return out;
}

void write_file_atomic(const std::string& path, const uint8_t* data, uint64_t n) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot open '" + tmp + "' for writing");
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw std::runtime_error("failed writing '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open '" + path + "' for reading");
  const std::streamsize size = f.tellg();
  f.seekg(0);
  std::vector<uint8_t> buf(static_cast<size_t>(size));
  if (size > 0 && !f.read(reinterpret_cast<char*>(buf.data()), size))
    throw std::runtime_error("failed reading '" + path + "'");
  return buf;
}

void save_packed(const std::string& path, const TernaryView& v) {
  const std::vector<uint8_t> bytes = serialize(v);
  write_file_atomic(path, bytes.data(), bytes.size());
}

PackedTernary load_packed(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  try {
    return deserialize(bytes.data(), bytes.size());
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " in '" + path + "'");
  }
}

}  // namespace trix
