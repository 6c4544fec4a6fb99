#include <iostream>

#include "bench.h"

namespace trix_bench {
int run_memory(int, char**) {
  std::cerr << "trix_bench: the memory benchmark is not built yet (issue 6)\n";
  return 1;
}
}  // namespace trix_bench
