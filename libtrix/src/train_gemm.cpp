// The training GEMM driver (BLIS-style): pack B in [KC x NR] panels and A in [MR x KC] panels,
// zero-padded, then run the micro-kernel over the blocks. The blocking is fixed (never derived from
// the thread count), and K blocks are visited in order, so each C element is the same FMA chain
// whatever the caller's split and at every SIMD level.
#include <algorithm>
#include <cmath>
#include <vector>

#include <cstring>

#include "kernels/train_kernels.h"
#include "kernels/train_math.h"
#include "trix/cpu.h"
#include "trix/train_ops.h"

namespace trix {
namespace kernels {
namespace {

void micro_scalar(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load) {
  float acc[kTrainMR][kTrainNR];
  for (int64_t i = 0; i < kTrainMR; ++i)
    for (int64_t j = 0; j < kTrainNR; ++j) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
  for (int64_t p = 0; p < kc; ++p, ap += kTrainMR, bp += kTrainNR)
    for (int64_t i = 0; i < kTrainMR; ++i)
      for (int64_t j = 0; j < kTrainNR; ++j) acc[i][j] = std::fma(ap[i], bp[j], acc[i][j]);
  for (int64_t i = 0; i < kTrainMR; ++i)
    for (int64_t j = 0; j < kTrainNR; ++j) c[i * ldc + j] = acc[i][j];
}

struct ScalarV {
  using T = float;
  static T set(float v) { return v; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T fma(T a, T b, T c) { return std::fma(a, b, c); }
  static T min(T a, T b) { return a < b ? a : b; }
  static T max(T a, T b) { return a > b ? a : b; }
  static T floor(T a) { return std::floor(a); }
  static T abs(T a) { return std::fabs(a); }
  static T copysign(T m, T s) { return std::copysign(m, s); }
  static T gt0(T a) { return a > 0.0f ? 1.0f : 0.0f; }
  static T select(T mask, T a, T b) { return mask != 0.0f ? a : b; }
  static T pow2(T n) {  // 2^n for integral n in [-126, 127]
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

void activation_scalar(int act, const float* v, int64_t n, float* a, float* g) {
  for (int64_t i = 0; i < n; ++i) {
    float ai, gi;
    TrainMath<ScalarV>::eval(act, v[i], ai, gi);
    a[i] = ai;
    if (g) g[i] = gi;
  }
}

}  // namespace

const TrainKernels& train_scalar() {
  static const TrainKernels k{"scalar", micro_scalar, activation_scalar};
  return k;
}

const TrainKernels& train_active() {
#if defined(TRIX_HAVE_X86_KERNELS)
  if (simd_level() != SimdLevel::scalar) return train_avx2();
#endif
  return train_scalar();
}

}  // namespace kernels

namespace {
constexpr int64_t kKC = 256;  // depth of a packed block
constexpr int64_t kMC = 72;   // rows of A per packed block (12 micro-panels)
constexpr int64_t kNC = 512;  // columns of B per packed block
using kernels::kTrainMR;
using kernels::kTrainNR;

// Packs A(ic.., pc..) rows [0, mc) x depth [0, kc) as micro-panels: ap[(i/MR)*kc*MR + p*MR + i%MR].
void pack_a(const float* a, int64_t rsa, int64_t csa, int64_t mc, int64_t kc, float* ap) {
  for (int64_t i0 = 0; i0 < mc; i0 += kTrainMR, ap += kc * kTrainMR) {
    const int64_t mr = std::min(kTrainMR, mc - i0);
    if (csa == 1) {
      for (int64_t i = 0; i < mr; ++i) {
        const float* src = a + (i0 + i) * rsa;
        for (int64_t p = 0; p < kc; ++p) ap[p * kTrainMR + i] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = 0; i < mr; ++i) ap[p * kTrainMR + i] = a[(i0 + i) * rsa + p * csa];
    }
    for (int64_t i = mr; i < kTrainMR; ++i)
      for (int64_t p = 0; p < kc; ++p) ap[p * kTrainMR + i] = 0.0f;
  }
}

// Packs B(pc.., jc..) depth [0, kc) x columns [0, nc) as micro-panels: bp[(j/NR)*kc*NR + p*NR + j%NR].
void pack_b(const float* b, int64_t rsb, int64_t csb, int64_t kc, int64_t nc, float* bp) {
  for (int64_t j0 = 0; j0 < nc; j0 += kTrainNR, bp += kc * kTrainNR) {
    const int64_t nr = std::min(kTrainNR, nc - j0);
    for (int64_t p = 0; p < kc; ++p) {
      float* dst = bp + p * kTrainNR;
      if (csb == 1) {
        const float* src = b + p * rsb + j0;
        for (int64_t j = 0; j < nr; ++j) dst[j] = src[j];
      } else {
        for (int64_t j = 0; j < nr; ++j) dst[j] = b[p * rsb + (j0 + j) * csb];
      }
      for (int64_t j = nr; j < kTrainNR; ++j) dst[j] = 0.0f;
    }
  }
}
}  // namespace

void train_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
                int64_t rsb, int64_t csb, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const kernels::TrainKernels& kern = kernels::train_active();
  thread_local std::vector<float> abuf, bbuf;
  bbuf.resize(static_cast<size_t>(kKC * ((std::min(n, kNC) + kTrainNR - 1) / kTrainNR * kTrainNR)));
  abuf.resize(static_cast<size_t>(kKC * ((std::min(m, kMC) + kTrainMR - 1) / kTrainMR * kTrainMR)));
  float edge[kTrainMR * kTrainNR];
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const bool load = accumulate || pc > 0;
      pack_b(b + pc * rsb + jc * csb, rsb, csb, kc, nc, bbuf.data());
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        pack_a(a + ic * rsa + pc * csa, rsa, csa, mc, kc, abuf.data());
        for (int64_t j0 = 0; j0 < nc; j0 += kTrainNR) {
          const int64_t nr = std::min(kTrainNR, nc - j0);
          const float* bp = bbuf.data() + (j0 / kTrainNR) * kc * kTrainNR;
          for (int64_t i0 = 0; i0 < mc; i0 += kTrainMR) {
            const int64_t mr = std::min(kTrainMR, mc - i0);
            const float* ap = abuf.data() + (i0 / kTrainMR) * kc * kTrainMR;
            float* cb = c + (ic + i0) * ldc + jc + j0;
            if (mr == kTrainMR && nr == kTrainNR) {
              kern.micro(kc, ap, bp, cb, ldc, load);
              continue;
            }
            // A partial block runs through a full-size buffer: the same chain per element.
            if (load)
              for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j) edge[i * kTrainNR + j] = cb[i * ldc + j];
            kern.micro(kc, ap, bp, edge, kTrainNR, load);
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t j = 0; j < nr; ++j) cb[i * ldc + j] = edge[i * kTrainNR + j];
          }
        }
      }
    }
  }
}

}  // namespace trix
