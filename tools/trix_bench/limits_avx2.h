// AVX2 microbenchmark loops for trix_bench --limits (limits_avx2.cpp). Only call them when the CPU has
// AVX2; in a build without x86 kernels they return 0.
#pragma once
#include <cstdint>

namespace trix_bench {
double avx2_maddubs_per_ns(int64_t iters);   // vpmaddubsw ymm per ns
double avx2_maddubs_shuffle_mix_per_ns(int64_t iters);  // vpmaddubsw + vpshufb interleaved, per ns
double avx2_shuffle_per_ns(int64_t iters);   // vpshufb ymm per ns
double avx2_and_per_ns(int64_t iters);       // vpand ymm per ns
double avx2_gemv_mix_blocks_per_ns(int64_t iters);  // the AVX2 GEMV's op mix: 128-weight row blocks per ns
double avx2_gemm_mix_maddubs_per_ns(int64_t iters);  // the AVX2 GEMM's op mix: vpmaddubsw per ns
double scalar_add_chain_per_ns(int64_t iters); // dependent 64-bit adds per ns = core GHz
double avx2_read_bytes_per_ns(const uint8_t* buf, int64_t bytes, int reps);  // read GB/s
}  // namespace trix_bench
