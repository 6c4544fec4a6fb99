// AVX-512 F/BW/VL without VNNI: int8 dot products through vpmaddubsw + vpmaddwd.
#define TRIX_VNNI 0
#include "kernels/avx512_body.h"

namespace trix::kernels {
const Kernels& avx512() {
  static const Kernels k{"avx512", gemm_f32, gemm_t_f32, gemm_i8, i8_row_bytes, prep_i8, gemm_i8_prep,
                         absmax_bits, quantize_i8, rescale_i32, lut_tables, gemv_lut};
  return k;
}
}  // namespace trix::kernels
