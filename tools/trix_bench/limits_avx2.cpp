// The AVX2 loops of trix_bench --limits, in their own file compiled with -mavx2 (tools/CMakeLists.txt);
// called only when the CPU has AVX2. Each returns instructions (or bytes) per nanosecond.
#include "limits_avx2.h"

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>

namespace trix_bench {
// bench.h declares it; not included here, so no std:: template is compiled with this file's flags.
double thread_cpu_us();

namespace {

double cpu_now() { return thread_cpu_us() * 1e-6; }
double seconds_since(double t0) { return cpu_now() - t0; }

// Makes the eight chain results observable, so the compiler keeps the loop.
void keep(const __m256i* a) {
  __m256i acc = a[0];
  for (int i = 1; i < 8; ++i) acc = _mm256_xor_si256(acc, a[i]);
  volatile int sink = _mm256_extract_epi32(acc, 0);
  (void)sink;
}

// Eight independent chains of one instruction: enough in flight to hide its latency, so the loop
// runs at the instruction's throughput.
template <typename Op>
double chains_per_ns(Op op, int64_t iters) {
  __m256i a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_set1_epi8(static_cast<char>(i + 1));
  const __m256i b = _mm256_set1_epi8(3);
  const double t0 = cpu_now();
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 8; ++i) a[i] = op(a[i], b);
  const double s = seconds_since(t0);
  keep(a);
  return 8.0 * static_cast<double>(iters) / s / 1e9;
}

}  // namespace

double avx2_maddubs_per_ns(int64_t iters) {
  return chains_per_ns([](__m256i a, __m256i b) { return _mm256_maddubs_epi16(a, b); }, iters);
}

double avx2_maddubs_shuffle_mix_per_ns(int64_t iters) {
  // Four chains of each: if the two run on different pipes, this reaches the sum of both rates.
  __m256i a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_set1_epi8(static_cast<char>(i + 1));
  const __m256i b = _mm256_set1_epi8(3);
  const double t0 = cpu_now();
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 4; ++i) {
      a[i] = _mm256_maddubs_epi16(a[i], b);
      a[i + 4] = _mm256_shuffle_epi8(b, a[i + 4]);
    }
  const double s = seconds_since(t0);
  keep(a);
  return 8.0 * static_cast<double>(iters) / s / 1e9;
}

double avx2_shuffle_per_ns(int64_t iters) {
  return chains_per_ns([](__m256i a, __m256i b) { return _mm256_shuffle_epi8(b, a); }, iters);
}

double avx2_and_per_ns(int64_t iters) {
  return chains_per_ns([](__m256i a, __m256i b) { return _mm256_and_si256(a, b); }, iters);
}

// The asm loops below use every vector register.
#define TRIX_ALL_YMM                                                                                    \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15"

double avx2_gemv_mix_blocks_per_ns(int64_t iters) {
  // The AVX2 int8 GEMV's instructions per 128 weights of one row (kernels/avx2.cpp gemv_i8): one
  // weight load, vpsrlw, 4 vpand, 4 vpmaddubsw, 4 vpaddw into two int16 sums; two rows per
  // iteration share four activation loads. Weights and activations sit in L1, so only the core's
  // pipes bound it. Written in asm: the compiler can neither spill nor drop an instruction.
  alignas(32) static const uint8_t buf[256] = {};
  alignas(32) static const uint8_t masks[64] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
                                               3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
                                               12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
                                               12, 12, 12, 12};
  int64_t n = iters;
  const double t0 = cpu_now();
#define TRIX_GEMV_ROW(W, H1, H4)                                                              \
  "vmovdqu " W ", %%ymm6\n\tvpsrlw $4, %%ymm6, %%ymm7\n\t"                                     \
  "vpand %%ymm4, %%ymm6, %%ymm8\n\tvpmaddubsw %%ymm0, %%ymm8, %%ymm8\n\tvpaddw %%ymm8, " H1 ", " H1 "\n\t" \
  "vpand %%ymm5, %%ymm6, %%ymm9\n\tvpmaddubsw %%ymm1, %%ymm9, %%ymm9\n\tvpaddw %%ymm9, " H4 ", " H4 "\n\t" \
  "vpand %%ymm4, %%ymm7, %%ymm14\n\tvpmaddubsw %%ymm2, %%ymm14, %%ymm14\n\tvpaddw %%ymm14, " H1 ", " H1 "\n\t" \
  "vpand %%ymm5, %%ymm7, %%ymm15\n\tvpmaddubsw %%ymm3, %%ymm15, %%ymm15\n\tvpaddw %%ymm15, " H4 ", " H4 "\n\t"
  __asm__ volatile(
      "vmovdqa (%[m]), %%ymm4\n\tvmovdqa 32(%[m]), %%ymm5\n\t"
      "vpxor %%ymm10, %%ymm10, %%ymm10\n\tvpxor %%ymm11, %%ymm11, %%ymm11\n\t"
      "vpxor %%ymm12, %%ymm12, %%ymm12\n\tvpxor %%ymm13, %%ymm13, %%ymm13\n\t"
      "1:\n\t"
      "vmovdqa (%[b]), %%ymm0\n\tvmovdqa 32(%[b]), %%ymm1\n\tvmovdqa 64(%[b]), %%ymm2\n\tvmovdqa 96(%[b]), %%ymm3\n\t"
      TRIX_GEMV_ROW("128(%[b])", "%%ymm10", "%%ymm11")
      TRIX_GEMV_ROW("160(%[b])", "%%ymm12", "%%ymm13")
      "dec %[n]\n\tjnz 1b\n\t"
      "vpaddw %%ymm10, %%ymm11, %%ymm10\n\tvpaddw %%ymm12, %%ymm13, %%ymm12\n\tvpaddw %%ymm10, %%ymm12, %%ymm10\n\t"
      "vzeroupper"
      : [n] "+r"(n)
      : [b] "r"(buf), [m] "r"(masks)
      : TRIX_ALL_YMM, "cc", "memory");
#undef TRIX_GEMV_ROW
  return 2.0 * static_cast<double>(iters) / seconds_since(t0) / 1e9;
}

double avx2_gemm_mix_maddubs_per_ns(int64_t iters) {
  // The AVX2 int8 GEMM's instructions per block of 128 weights (kernels/avx2.cpp micro_i8, 2 weight
  // rows x 4 activation rows): 2 weight loads; per plane 2 vpand (and 2 vpsrlw after plane 0), then
  // per activation row one load, 2 vpmaddubsw and 2 vpaddw into int16 sums. 32 vpmaddubsw per
  // block; all data in L1, written in asm like the GEMV mix above.
  alignas(32) static const uint8_t buf[64 + 4 * 128] = {};
  alignas(32) static const uint8_t mask[32] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
                                              3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
  int64_t n = iters;
  const double t0 = cpu_now();
  __asm__ volatile(
      "vmovdqa (%[m]), %%ymm7\n\t"
      "vpxor %%ymm8, %%ymm8, %%ymm8\n\tvpxor %%ymm9, %%ymm9, %%ymm9\n\tvpxor %%ymm10, %%ymm10, %%ymm10\n\t"
      "vpxor %%ymm11, %%ymm11, %%ymm11\n\tvpxor %%ymm12, %%ymm12, %%ymm12\n\tvpxor %%ymm13, %%ymm13, %%ymm13\n\t"
      "vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vmovdqu (%[b]), %%ymm2\n\tvmovdqu 32(%[b]), %%ymm3\n\t"
      "vpand %%ymm7, %%ymm2, %%ymm4\n\tvpand %%ymm7, %%ymm3, %%ymm5\n\t"
      "vmovdqa 64(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm8, %%ymm8\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm12, %%ymm12\n\t"
      "vmovdqa 192(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm9, %%ymm9\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm13, %%ymm13\n\t"
      "vmovdqa 320(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm10, %%ymm10\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm14, %%ymm14\n\t"
      "vmovdqa 448(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm11, %%ymm11\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm15, %%ymm15\n\t"
      "vpsrlw $2, %%ymm2, %%ymm4\n\tvpand %%ymm7, %%ymm4, %%ymm4\n\t"
      "vpsrlw $2, %%ymm3, %%ymm5\n\tvpand %%ymm7, %%ymm5, %%ymm5\n\t"
      "vmovdqa 96(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm8, %%ymm8\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm12, %%ymm12\n\t"
      "vmovdqa 224(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm9, %%ymm9\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm13, %%ymm13\n\t"
      "vmovdqa 352(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm10, %%ymm10\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm14, %%ymm14\n\t"
      "vmovdqa 480(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm11, %%ymm11\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm15, %%ymm15\n\t"
      "vpsrlw $4, %%ymm2, %%ymm4\n\tvpand %%ymm7, %%ymm4, %%ymm4\n\t"
      "vpsrlw $4, %%ymm3, %%ymm5\n\tvpand %%ymm7, %%ymm5, %%ymm5\n\t"
      "vmovdqa 128(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm8, %%ymm8\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm12, %%ymm12\n\t"
      "vmovdqa 256(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm9, %%ymm9\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm13, %%ymm13\n\t"
      "vmovdqa 384(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm10, %%ymm10\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm14, %%ymm14\n\t"
      "vmovdqa 512(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm11, %%ymm11\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm15, %%ymm15\n\t"
      "vpsrlw $6, %%ymm2, %%ymm4\n\tvpand %%ymm7, %%ymm4, %%ymm4\n\t"
      "vpsrlw $6, %%ymm3, %%ymm5\n\tvpand %%ymm7, %%ymm5, %%ymm5\n\t"
      "vmovdqa 160(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm8, %%ymm8\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm12, %%ymm12\n\t"
      "vmovdqa 288(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm9, %%ymm9\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm13, %%ymm13\n\t"
      "vmovdqa 416(%[b]), %%ymm0\n\t"
      "vpmaddubsw %%ymm0, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm10, %%ymm10\n\t"
      "vpmaddubsw %%ymm0, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm14, %%ymm14\n\t"
      "vmovdqa 544(%[b]), %%ymm1\n\t"
      "vpmaddubsw %%ymm1, %%ymm4, %%ymm6\n\tvpaddw %%ymm6, %%ymm11, %%ymm11\n\t"
      "vpmaddubsw %%ymm1, %%ymm5, %%ymm6\n\tvpaddw %%ymm6, %%ymm15, %%ymm15\n\t"
      "dec %[n]\n\tjnz 1b\n\t"
      "vzeroupper"
      : [n] "+r"(n)
      : [b] "r"(buf), [m] "r"(mask)
      : TRIX_ALL_YMM, "cc", "memory");
  return 32.0 * static_cast<double>(iters) / seconds_since(t0) / 1e9;
}

double scalar_add_chain_per_ns(int64_t iters) {
  // One dependent chain of 64-bit adds (latency 1 cycle on every x86 core; a vector add chain is not:
  // Zen 5's vpaddd takes 2): its rate is the core clock in GHz.
  uint64_t x = 0;
  const double t0 = cpu_now();
  for (int64_t i = 0; i < iters; ++i) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  return 4.0 * static_cast<double>(iters) / seconds_since(t0) / 1e9;
}

double avx2_read_bytes_per_ns(const uint8_t* buf, int64_t bytes, int reps) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  const double t0 = cpu_now();
  for (int r = 0; r < reps; ++r)
    for (int64_t i = 0; i + 128 <= bytes; i += 128) {
      s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + i)));
      s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + i + 32)));
      s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + i + 64)));
      s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + i + 96)));
    }
  const double s = seconds_since(t0);
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  volatile long long sink = _mm256_extract_epi64(t, 0);
  (void)sink;
  return static_cast<double>(bytes) * reps / s / 1e9;
}

}  // namespace trix_bench
#else
namespace trix_bench {
double avx2_maddubs_per_ns(int64_t) { return 0; }
double avx2_maddubs_shuffle_mix_per_ns(int64_t) { return 0; }
double avx2_shuffle_per_ns(int64_t) { return 0; }
double avx2_and_per_ns(int64_t) { return 0; }
double avx2_gemv_mix_blocks_per_ns(int64_t) { return 0; }
double avx2_gemm_mix_maddubs_per_ns(int64_t) { return 0; }
double scalar_add_chain_per_ns(int64_t) { return 0; }
double avx2_read_bytes_per_ns(const uint8_t*, int64_t, int) { return 0; }
}  // namespace trix_bench
#endif
