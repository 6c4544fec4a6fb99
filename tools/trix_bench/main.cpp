// trix_bench: kernel benchmarks (default) and the memory benchmark (--memory).
#include <cstring>
#include <exception>
#include <iostream>

#include "bench.h"

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i)
      if (std::strcmp(argv[i], "--memory") == 0) return trix_bench::run_memory(argc, argv);
    return trix_bench::run_kernels(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "trix_bench: " << e.what() << "\n";
    return 2;
  }
}
