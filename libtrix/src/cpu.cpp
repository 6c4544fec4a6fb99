// CPU feature detection. Compiled for the baseline ISA: it only asks questions.
#include "trix/cpu.h"

#include <cstdint>

#include "kernels/kernels.h"
#include "trix/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define TRIX_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define TRIX_ARM64 1
#endif

namespace trix {
namespace {

struct Features {
  bool avx2 = false, avx512 = false, vnni = false, neon = false, dotprod = false;
};

#if defined(TRIX_X86)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

Features probe() {
  Features f;
#if defined(TRIX_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE and AVX state saved by the OS
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;   // plus opmask and both halves of zmm0-31
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = os_ymm && fma && (b & (1u << 5));
  const bool avx512f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31);
  f.avx512 = f.avx2 && os_zmm && avx512f && bw && vl;
  f.vnni = f.avx512 && (c & (1u << 11));
#elif defined(TRIX_ARM64)
  const unsigned long hw = getauxval(AT_HWCAP);
  f.neon = hw & HWCAP_ASIMD;
  f.dotprod = f.neon && (hw & HWCAP_ASIMDDP);
#elif defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64; no way to ask for dotprod here
#endif
  return f;
}

const Features& features() {
  static const Features f = probe();
  return f;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::scalar: return "scalar";
    case SimdLevel::avx2: return "avx2";
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx512_vnni: return "avx512_vnni";
    case SimdLevel::neon: return "neon";
    case SimdLevel::neon_dotprod: return "neon_dotprod";
  }
  return "unknown";
}

SimdLevel parse_simd_level(const std::string& name) {
  for (SimdLevel l : {SimdLevel::scalar, SimdLevel::avx2, SimdLevel::avx512, SimdLevel::avx512_vnni,
                      SimdLevel::neon, SimdLevel::neon_dotprod})
    if (name == simd_level_name(l)) return l;
  throw_invalid("parse_simd_level", "name",
                "must be one of scalar, avx2, avx512, avx512_vnni, neon, neon_dotprod; got '" + name + "'");
}

bool simd_level_supported(SimdLevel level) {
  if (kernels::for_level(level) == nullptr) return false;
  const Features& f = features();
  switch (level) {
    case SimdLevel::scalar: return true;
    case SimdLevel::avx2: return f.avx2;
    case SimdLevel::avx512: return f.avx512;
    case SimdLevel::avx512_vnni: return f.vnni;
    case SimdLevel::neon: return f.neon;
    case SimdLevel::neon_dotprod: return f.dotprod;
  }
  return false;
}

std::vector<SimdLevel> available_simd_levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : {SimdLevel::scalar, SimdLevel::avx2, SimdLevel::avx512, SimdLevel::avx512_vnni,
                      SimdLevel::neon, SimdLevel::neon_dotprod})
    if (simd_level_supported(l)) out.push_back(l);
  return out;
}

SimdLevel best_simd_level() { return available_simd_levels().back(); }

}  // namespace trix
