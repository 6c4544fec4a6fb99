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
double scalar_add_chain_per_ns(int64_t) { return 0; }
double avx2_read_bytes_per_ns(const uint8_t*, int64_t, int) { return 0; }
}  // namespace trix_bench
#endif
