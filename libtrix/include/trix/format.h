// The stored form of a packed tensor: a 64-byte header, the packed rows, then the scales.
// docs/format.md specifies every byte; all fields are little-endian on every CPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trix/pack.h"

namespace trix {

constexpr char kFormatMagic[8] = {'T', 'R', 'I', 'X', 'T', 'E', 'R', 'N'};
constexpr uint16_t kFormatVersion = 1;
constexpr uint16_t kHeaderBytes = 64;
constexpr uint32_t kLayoutRowBlock128 = 1;  // the only layout of version 1
constexpr uint64_t kMaxPackedDim = uint64_t(1) << 40;  // rows and cols of a stored tensor, at most

// Serialized size of a view.
uint64_t serialized_bytes(const TernaryView& v);
std::vector<uint8_t> serialize(const TernaryView& v);
// Throws FormatError, naming the field, on a bad magic, version, layout, shape, size, checksum, code
// or scale; every size is checked against the bytes present before anything is allocated.
PackedTernary deserialize(const uint8_t* bytes, uint64_t n);

// File helpers. save_packed writes to a temporary file and renames it, so a reader never sees half.
void save_packed(const std::string& path, const TernaryView& v);
PackedTernary load_packed(const std::string& path);

// CRC-32 (IEEE 802.3 polynomial, as zlib) used by the header.
uint32_t crc32(const uint8_t* data, uint64_t n, uint32_t crc = 0);

// Writes bytes to path atomically (temporary file in the same directory, then rename).
void write_file_atomic(const std::string& path, const uint8_t* data, uint64_t n);
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace trix
