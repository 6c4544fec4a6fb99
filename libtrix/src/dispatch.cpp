// The active kernel table: chosen once (TRIX_SIMD or the best level), switchable at run time.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"
#include "trix/cpu.h"
#include "trix/error.h"

namespace trix {
namespace {

SimdLevel initial_level() {
  const char* env = std::getenv("TRIX_SIMD");
  if (env == nullptr || *env == '\0') return best_simd_level();
  try {
    const SimdLevel l = parse_simd_level(env);
    if (simd_level_supported(l)) return l;
    std::fprintf(stderr, "trix: TRIX_SIMD=%s is not supported on this CPU or build; using %s\n", env,
                 simd_level_name(best_simd_level()));
  } catch (const std::invalid_argument&) {
    std::fprintf(stderr, "trix: TRIX_SIMD=%s is not a known level; using %s\n", env,
                 simd_level_name(best_simd_level()));
  }
  return best_simd_level();
}

std::atomic<int>& level_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_level())};
  return slot;
}

}  // namespace

SimdLevel simd_level() { return static_cast<SimdLevel>(level_slot().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  TRIX_CHECK_ARG(simd_level_supported(level), "set_simd_level", "level", "must be one of the levels this CPU and build support, got '",
                 simd_level_name(level), "'");
  level_slot().store(static_cast<int>(level), std::memory_order_relaxed);
}

namespace kernels {

const Kernels* for_level(SimdLevel level) {
  switch (level) {
    case SimdLevel::scalar: return &scalar();
#if defined(TRIX_HAVE_X86_KERNELS)
    case SimdLevel::avx2: return &avx2();
    case SimdLevel::avx512: return &avx512();
    case SimdLevel::avx512_vnni: return &avx512_vnni();
#endif
#if defined(TRIX_HAVE_NEON_KERNELS)
    case SimdLevel::neon: return &neon();
    case SimdLevel::neon_dotprod: return &neon_dotprod();
#endif
    default: return nullptr;
  }
}

const Kernels& active() { return *for_level(simd_level()); }

void* scratch(int slot, size_t bytes) {
  // One growing buffer per slot and thread, 64-byte aligned; kernels must not use std:: templates
  // (they would be instantiated with the kernel's ISA flags and might leak into baseline code).
  struct Buf {
    std::unique_ptr<unsigned char[]> mem;
    size_t size = 0;
  };
  thread_local Buf bufs[kScratchSlots];
  Buf& b = bufs[slot];
  if (b.size < bytes) {
    b.mem.reset(new unsigned char[bytes + 64]);
    b.size = bytes;
  }
  const auto p = reinterpret_cast<uintptr_t>(b.mem.get());
  return reinterpret_cast<void*>((p + 63) & ~static_cast<uintptr_t>(63));
}

}  // namespace kernels
}  // namespace trix
