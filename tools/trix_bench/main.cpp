// trix_bench: kernel benchmarks (default), the tiled FFN (--ffn), the signature memory (--memory) and
// the machine limits the kernels run into (--limits). --help prints the options of every mode.
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>

#include "bench.h"

namespace trix_bench {
const char* const kUsage =
    "usage: trix_bench [MODE] [OPTIONS]\n"
    "\n"
    "Modes (default: the packed products):\n"
    "  (none)      matmul_i8 (op int8), matmul on the public format (float) and on a PreparedMatrix\n"
    "              (fprep) per shape, batch N, thread count and SIMD level: warm (one matrix, in cache)\n"
    "              and cold (a stack of copies larger than twice the last-level cache, cycled)\n"
    "  --ffn       tiled FFN, d=1024, hidden 4096 in T = 4, 16, 64 tiles: routing + the routed tile vs\n"
    "              the dense FFN of the same total width (hidden 4096, one tile)\n"
    "  --memory    signature memory: flat exact, prepared, int8 and tree search (add --quick)\n"
    "  --limits    microbenchmarks of the limits: DRAM and cache read bandwidth (one and two threads,\n"
    "              and the LLC read pass by pass), vpmaddubsw, vpshufb and (with VNNI) vpdpbusd\n"
    "              throughput, alone and with decode ops, the AVX2 GEMV's and GEMM's instruction\n"
    "              mixes, the int8 GEMV from L2 and from the LLC (fastest / median / 90th percentile)\n"
    "\n"
    "Options of the product and FFN modes:\n"
    "  --shapes MxK,...     default 4096x4096,2560x6912,1024x1024\n"
    "  --n N,...            activation rows, default 1,64\n"
    "  --threads T,...      default 1,2 (products); the FFN runs one thread\n"
    "  --levels all|L,...   SIMD levels (scalar, avx2, avx512, avx512_vnni, neon, neon_dotprod); default all\n"
    "  --ops int8,float,fprep   default all three\n"
    "  --min-ms MS          time each case for at least MS ms of wall time (default 300)\n"
    "  --cold-mib MIB       size of the cold stack (default twice the last-level cache); 0: warm only\n"
    "  --json PATH          also write every row as JSON\n"
    "\n"
    "Columns: median_us (wall), min_us (fastest call), cpu_us (median thread CPU time, one-thread runs\n"
    "only: immune to time slicing on a loaded machine), cold_us (median wall of the cold stack),\n"
    "GOPS (2*M*K*N / median_us), GB/s (packed weight bytes / median_us), x_scalar (scalar median /\n"
    "median, N <= 8 only: the scalar level is not timed beyond).\n";
}  // namespace trix_bench

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::fputs(trix_bench::kUsage, stdout);
        return 0;
      }
    }
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--memory") == 0) return trix_bench::run_memory(argc, argv);
      if (std::strcmp(argv[i], "--ffn") == 0) return trix_bench::run_ffn(argc, argv);
      if (std::strcmp(argv[i], "--limits") == 0) return trix_bench::run_limits(argc, argv);
    }
    return trix_bench::run_kernels(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "trix_bench: " << e.what() << " (trix_bench --help lists the options)\n";
    return 2;
  }
}
