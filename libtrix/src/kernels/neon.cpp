// AArch64 Advanced SIMD without the dot-product extension (baseline flags).
#define TRIX_DOTPROD 0
#include "kernels/neon_body.h"

namespace trix::kernels {
const Kernels& neon() {
  static const Kernels k{"neon", gemm_f32, gemm_t_f32, gemm_i8, nullptr, nullptr, nullptr,
                         absmax_bits, quantize_i8, rescale_i32, nullptr, nullptr};
  return k;
}
}  // namespace trix::kernels
