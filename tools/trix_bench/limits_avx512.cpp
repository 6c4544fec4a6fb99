// The AVX-512 VNNI loops of trix_bench --limits, in their own file compiled with AVX-512 flags
// (tools/CMakeLists.txt); called only when the CPU has the avx512_vnni level. The loops are inline
// asm on fixed registers so the compiler adds no copies (it does around vpdpbusd intrinsics).
#include "limits_avx512.h"

#if defined(__x86_64__) && defined(__AVX512VNNI__)
namespace trix_bench {
// bench.h declares it; not included here, so no std:: template is compiled with this file's flags.
double thread_cpu_us();

namespace {

double cpu_now() { return thread_cpu_us() * 1e-6; }

alignas(64) unsigned char g_buf[4096];

#define TRIX_X16(I) I(0) I(1) I(2) I(3) I(4) I(5) I(6) I(7) I(8) I(9) I(10) I(11) I(12) I(13) I(14) I(15)
#define TRIX_DPB(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define TRIX_PERMB(i) "vpermb %%zmm30, %%zmm" #i ", %%zmm" #i "\n\t"
// What the GEMM micro-kernel issues besides vpdpbusd per 16 of them: 4 shifts and 8 masks (plane
// decode) on other registers, and 8 loads.
#define TRIX_DECODE                                                                                        \
  "vpsrlw $2, %%zmm31, %%zmm16\n\tvpsrlw $4, %%zmm31, %%zmm17\n\tvpsrlw $6, %%zmm31, %%zmm18\n\t"          \
  "vpsrlw $2, %%zmm29, %%zmm19\n\t"                                                                        \
  "vpandd %%zmm31, %%zmm30, %%zmm20\n\tvpandd %%zmm29, %%zmm30, %%zmm21\n\t"                               \
  "vpandd %%zmm28, %%zmm30, %%zmm22\n\tvpandd %%zmm27, %%zmm30, %%zmm23\n\t"                               \
  "vpandd %%zmm31, %%zmm29, %%zmm20\n\tvpandd %%zmm29, %%zmm28, %%zmm21\n\t"                               \
  "vpandd %%zmm28, %%zmm27, %%zmm22\n\tvpandd %%zmm27, %%zmm31, %%zmm23\n\t"                               \
  "vmovdqa64 (%0), %%zmm24\n\tvmovdqa64 64(%0), %%zmm25\n\tvmovdqa64 128(%0), %%zmm26\n\t"                 \
  "vmovdqa64 192(%0), %%zmm24\n\tvmovdqa64 256(%0), %%zmm25\n\tvmovdqa64 320(%0), %%zmm26\n\t"             \
  "vmovdqa64 384(%0), %%zmm24\n\tvmovdqa64 448(%0), %%zmm25\n\t"
#define TRIX_CLOBBERS                                                                                      \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",    \
      "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"

void set_inputs() {
  __asm__ volatile(
      "vpternlogd $0xff, %%zmm27, %%zmm27, %%zmm27\n\tvpternlogd $0xff, %%zmm28, %%zmm28, %%zmm28\n\t"
      "vpternlogd $0xff, %%zmm29, %%zmm29, %%zmm29\n\tvpternlogd $0xff, %%zmm30, %%zmm30, %%zmm30\n\t"
      "vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31\n\t" ::: TRIX_CLOBBERS);
}

}  // namespace

double vnni_dpbusd_per_ns(int64_t iters) {
  set_inputs();
  const double t0 = cpu_now();
  for (int64_t i = 0; i < iters; ++i) __asm__ volatile(TRIX_X16(TRIX_DPB)::: TRIX_CLOBBERS);
  return 16.0 * static_cast<double>(iters) / (cpu_now() - t0) / 1e9;
}

double vnni_dpbusd_with_decode_per_ns(int64_t iters) {
  set_inputs();
  const double t0 = cpu_now();
  for (int64_t i = 0; i < iters; ++i) __asm__ volatile(TRIX_X16(TRIX_DPB) TRIX_DECODE ::"r"(g_buf) : TRIX_CLOBBERS);
  return 16.0 * static_cast<double>(iters) / (cpu_now() - t0) / 1e9;
}

double vbmi_permb_per_ns(int64_t iters) {
  if (!__builtin_cpu_supports("avx512vbmi")) return 0;
  set_inputs();
  const double t0 = cpu_now();
  for (int64_t i = 0; i < iters; ++i) __asm__ volatile(TRIX_X16(TRIX_PERMB)::: TRIX_CLOBBERS);
  return 16.0 * static_cast<double>(iters) / (cpu_now() - t0) / 1e9;
}

}  // namespace trix_bench
#else
namespace trix_bench {
double vnni_dpbusd_per_ns(int64_t) { return 0; }
double vnni_dpbusd_with_decode_per_ns(int64_t) { return 0; }
double vbmi_permb_per_ns(int64_t) { return 0; }
}  // namespace trix_bench
#endif
