// AVX-512 VNNI microbenchmark loops for trix_bench --limits (limits_avx512.cpp). Only call them when
// the CPU has the avx512_vnni level; in a build without x86 kernels they return 0.
#pragma once
#include <cstdint>

namespace trix_bench {
double vnni_dpbusd_per_ns(int64_t iters);        // zmm vpdpbusd per ns, 16 independent accumulators
double vnni_dpbusd_with_decode_per_ns(int64_t iters);  // the same with the GEMM's decode ops mixed in
double vbmi_permb_per_ns(int64_t iters);        // zmm vpermb (64 byte-table lookups) per ns; 0 without VBMI
}  // namespace trix_bench
