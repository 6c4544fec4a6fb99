// AArch64 with the dot-product extension (sdot); compiled with -march=armv8.2-a+dotprod only here.
#define TRIX_DOTPROD 1
#include "kernels/neon_body.h"

namespace trix::kernels {
const Kernels& neon_dotprod() {
  static const Kernels k{"neon_dotprod", gemm_f32, gemm_t_f32, gemm_i8, nullptr, nullptr, nullptr,
                         absmax_bits, quantize_i8, rescale_i32, nullptr, nullptr};
  return k;
}
}  // namespace trix::kernels
