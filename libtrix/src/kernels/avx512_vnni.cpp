// AVX-512 with VNNI: int8 dot products through vpdpbusd.
#define TRIX_VNNI 1
#include "kernels/avx512_body.h"

namespace trix::kernels {
const Kernels& avx512_vnni() {
  static const Kernels k{"avx512_vnni", gemm_f32, gemm_t_f32, gemm_i8, i8_row_bytes, prep_i8, gemm_i8_prep,
                         absmax_bits, quantize_i8, rescale_i32, lut_tables, gemv_lut};
  return k;
}
}  // namespace trix::kernels
