// Internal kernel table: one instance per instruction set (kernels/<isa>.cpp), chosen at run time.
// Kernels see raw packed rows in the public format and compute unscaled products; the public
// functions in src/*.cpp check arguments, split work and apply scales.
#pragma once
#include <cstddef>
#include <cstdint>

#include "trix/cpu.h"

namespace trix::kernels {

struct Kernels {
  const char* name;
  // y[i*ldy + (m - m0)] = sum_c x[i*k + c] * W[m, c]   for i < n, m0 <= m < m1 (unscaled float product)
  void (*gemm_f32)(const float* x, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
                   float* y, int64_t ldy);
  // dx[i*k + c] = sum_{m < mrows} g[i*mrows + m] * W[m, c]   for i < n, c0 <= c < c1
  // (g already multiplied by the row scales; c0 and c1 are multiples of kBlockWeights or c1 = k)
  void (*gemm_t_f32)(const float* g, int64_t n, int64_t mrows, const uint8_t* w, int64_t k, int64_t c0,
                     int64_t c1, float* dx);
  // acc[i*ldy + (m - m0)] = sum_c xq[i*k + c] * W[m, c]   exact in int32
  void (*gemm_i8)(const int8_t* xq, int64_t n, int64_t k, const uint8_t* w, int64_t m0, int64_t m1,
                  int32_t* acc, int64_t ldy);
  // gemm_i8 in two steps, so a product split over threads lays its activations out once:
  // prep_i8 writes n rows of i8_row_bytes(k) bytes (the level's own order, 64-byte aligned rows)
  // to xr and each row's sum to sums; gemm_i8_prep then reads only those. nullptr at levels that
  // lay out activations per call (callers then use gemm_i8).
  int64_t (*i8_row_bytes)(int64_t k);
  void (*prep_i8)(const int8_t* xq, int64_t n, int64_t k, int8_t* xr, int32_t* sums);
  void (*gemm_i8_prep)(const int8_t* xr, const int32_t* sums, int64_t n, int64_t k, const uint8_t* w, int64_t m0,
                       int64_t m1, int32_t* acc, int64_t ldy);

  // The activation quantizer's two passes (trix/quantize.h): the largest bit pattern of |x[c]|
  // (>= 0x7F800000 exactly when some x[c] is infinite or NaN), and
  // xq[c] = clamp(round_half_even(x[c] * inv), -128, 127).
  uint32_t (*absmax_bits)(const float* x, int64_t k);
  void (*quantize_i8)(const float* x, int64_t k, float inv, int8_t* xq);
  // The int8 product's rescale: y[j] = float(acc[j]) * s * sc[j] for j < n, in that order.
  void (*rescale_i32)(const int32_t* acc, int64_t n, float s, const float* sc, float* y);

  // Float GEMV over the private 16-row layout of a PreparedMatrix (lut_layout below), by table
  // lookup: nullptr at levels without it (callers then use gemm_f32 on the public copy).
  // lut_tables: for input row x[0..k), tables[(pos*2 + h)*16 + idx] with pos = b*32 + j (block b,
  //   byte j) = v(idx & 3, x[b*128 + j + 64h]) + v(idx >> 2, x[b*128 + j + 32 + 64h]), where
  //   v(code, x) = -x, +-0, x for code 0, 1, 2 (a zero weight never touches x). lut_table_floats(k)
  //   floats, 64-byte aligned.
  void (*lut_tables)(const float* x, int64_t k, float* tables);
  // y[16*(g - g0) + r] = sum over the row's codes of the table entries = row 16g + r of x * W^T
  // (unscaled), for row groups g0 <= g < g1; rb = packed_row_bytes(k).
  void (*gemv_lut)(const float* tables, int64_t rb, const uint8_t* wl, int64_t g0, int64_t g1, float* y);
};

// The private layout of a PreparedMatrix: rows in groups of 16 (the last padded with zero weights);
// for group g and byte positions pos = 4p .. 4p+3 of a packed row, 64 contiguous bytes holding
// row r's four bytes at 4r .. 4r+3: wl[(g * rb + 4p) * 16 + 4r + q] = public byte 4p + q of row
// 16g + r (rb is a multiple of 32). Same 2 bits per weight.
inline int64_t lut_offset(int64_t rb, int64_t m, int64_t pos) {
  return ((m / 16) * rb + (pos & ~int64_t{3})) * 16 + (m % 16) * 4 + (pos & 3);
}
constexpr int64_t kLutRows = 16;
constexpr int64_t kLutSlack = 64;  // bytes after the layout that kernels may read (never use)
inline int64_t lut_groups(int64_t rows) { return (rows + kLutRows - 1) / kLutRows; }
inline int64_t lut_table_floats(int64_t k) { return (k + 127) / 128 * 32 * 2 * 16; }

const Kernels& scalar();
// The kernels in use: the best this CPU supports, or the level chosen by TRIX_SIMD / set_simd_level.
const Kernels& active();
// The table for a level, or nullptr when this build has none (it may still not run on this CPU:
// see simd_level_supported).
const Kernels* for_level(SimdLevel level);

// One table per instruction set, each in its own file compiled with that ISA's flags only.
const Kernels& avx2();
const Kernels& avx512();
const Kernels& avx512_vnni();
const Kernels& neon();
const Kernels& neon_dotprod();

// A per-thread, 64-byte aligned scratch buffer of at least `bytes` (valid until the next call with
// the same slot on this thread). Kernels use it for padded / reordered activations.
// Slots 0 and 1 hold a kernel's own activation layout; kSharedSlot belongs to the drivers
// (parallel.h): activations prepared once per product and read by every thread.
constexpr int kScratchSlots = 3;
constexpr int kSharedSlot = 2;
void* scratch(int slot, size_t bytes);

}  // namespace trix::kernels
