// The parts of trix_bench. Each returns a process exit code.
#pragma once

namespace trix_bench {
int run_kernels(int argc, char** argv);  // bench_kernels.cpp
int run_memory(int argc, char** argv);   // bench_memory.cpp
}  // namespace trix_bench
