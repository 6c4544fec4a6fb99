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
#include "train_common.h"
#include "trix/cpu.h"
#include "trix/threads.h"
#include "trix/train_ops.h"

namespace trix {
namespace kernels {
namespace {

constexpr int64_t kScalarMR = 6, kScalarNR = 16;

void micro_scalar(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool load) {
  float acc[kScalarMR][kScalarNR];
  for (int64_t i = 0; i < kScalarMR; ++i)
    for (int64_t j = 0; j < kScalarNR; ++j) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
  for (int64_t p = 0; p < kc; ++p, ap += kScalarMR, bp += kScalarNR)
    for (int64_t i = 0; i < kScalarMR; ++i)
      for (int64_t j = 0; j < kScalarNR; ++j) acc[i][j] = std::fma(ap[i], bp[j], acc[i][j]);
  for (int64_t i = 0; i < kScalarMR; ++i)
    for (int64_t j = 0; j < kScalarNR; ++j) c[i * ldc + j] = acc[i][j];
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
  static const TrainKernels k{"scalar", kScalarMR, kScalarNR, micro_scalar, activation_scalar};
  return k;
}

const TrainKernels& train_active() {
#if defined(TRIX_HAVE_X86_KERNELS)
  const SimdLevel l = simd_level();
  if (l == SimdLevel::avx512 || l == SimdLevel::avx512_vnni) return train_avx512();
  if (l != SimdLevel::scalar) return train_avx2();
#endif
  return train_scalar();
}

}  // namespace kernels

namespace {
constexpr int64_t kKC = 256;  // depth of a packed block
constexpr int64_t kMC = 72;   // rows of A per packed block (a multiple of every level's mr)
constexpr int64_t kNC = 512;  // columns of B per packed block

// Packs A(ic.., pc..) rows [0, mc) x depth [0, kc) as micro-panels: ap[(i/MR)*kc*MR + p*MR + i%MR].
void pack_a(const float* a, int64_t rsa, int64_t csa, int64_t mc, int64_t kc, int64_t MR, float* ap) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR, ap += kc * MR) {
    const int64_t mr = std::min(MR, mc - i0);
    if (csa == 1) {
      for (int64_t i = 0; i < mr; ++i) {
        const float* src = a + (i0 + i) * rsa;
        for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = 0; i < mr; ++i) ap[p * MR + i] = a[(i0 + i) * rsa + p * csa];
    }
    for (int64_t i = mr; i < MR; ++i)
      for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = 0.0f;
  }
}

// Packs B(pc.., jc..) depth [0, kc) x columns [0, nc) as micro-panels: bp[(j/NR)*kc*NR + p*NR + j%NR].
void pack_b(const float* b, int64_t rsb, int64_t csb, int64_t kc, int64_t nc, int64_t NR, float* bp) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, bp += kc * NR) {
    const int64_t nr = std::min(NR, nc - j0);
    for (int64_t p = 0; p < kc; ++p) {
      float* dst = bp + p * NR;
      if (csb == 1) {
        const float* src = b + p * rsb + j0;
        for (int64_t j = 0; j < nr; ++j) dst[j] = src[j];
      } else {
        for (int64_t j = 0; j < nr; ++j) dst[j] = b[p * rsb + (j0 + j) * csb];
      }
      for (int64_t j = nr; j < NR; ++j) dst[j] = 0.0f;
    }
  }
}

// Floats of one packed block of B: kKC deep, min(n, kNC) columns rounded up to whole panels.
size_t packed_b_floats(int64_t n, int64_t NR) {
  return static_cast<size_t>(kKC * ((std::min(n, kNC) + NR - 1) / NR * NR));
}

// One packed (jc, pc) block of C: rows [ic0, ic1) of A (packed here in kMC blocks) against the packed
// panels [j0a, j0b) of B (bp: the whole packed block of nc columns).
void run_block(const kernels::TrainKernels& kern, const float* a, int64_t rsa, int64_t csa, int64_t ic0, int64_t ic1,
               int64_t pc, int64_t kc, const float* bp0, int64_t j0a, int64_t j0b, int64_t nc, float* c, int64_t ldc,
               int64_t jc, bool load) {
  const int64_t MR = kern.mr, NR = kern.nr;
  thread_local std::vector<float> abuf;
  abuf.resize(static_cast<size_t>(kKC * ((std::min(ic1 - ic0, kMC) + MR - 1) / MR * MR)));
  float edge[kernels::kTrainMaxMR * kernels::kTrainMaxNR];
  for (int64_t ic = ic0; ic < ic1; ic += kMC) {
    const int64_t mc = std::min(kMC, ic1 - ic);
    pack_a(a + ic * rsa + pc * csa, rsa, csa, mc, kc, MR, abuf.data());
    for (int64_t j0 = j0a; j0 < j0b; j0 += NR) {
      const int64_t nr = std::min(NR, nc - j0);
      const float* bp = bp0 + (j0 / NR) * kc * NR;
      for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        const int64_t mr = std::min(MR, mc - i0);
        const float* ap = abuf.data() + (i0 / MR) * kc * MR;
        float* cb = c + (ic + i0) * ldc + jc + j0;
        if (mr == MR && nr == NR) {
          kern.micro(kc, ap, bp, cb, ldc, load);
          continue;
        }
        // A partial block runs through a full-size buffer: the same chain per element.
        if (load)
          for (int64_t i = 0; i < mr; ++i)
            for (int64_t j = 0; j < nr; ++j) edge[i * NR + j] = cb[i * ldc + j];
        kern.micro(kc, ap, bp, edge, NR, load);
        for (int64_t i = 0; i < mr; ++i)
          for (int64_t j = 0; j < nr; ++j) cb[i * ldc + j] = edge[i * NR + j];
      }
    }
  }
}

bool trivial_gemm(int64_t m, int64_t n, int64_t k, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return true;
  if (k > 0) return false;
  if (!accumulate)
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
  return true;
}

}  // namespace

void train_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
                int64_t rsb, int64_t csb, float* c, int64_t ldc, bool accumulate) {
  if (trivial_gemm(m, n, k, c, ldc, accumulate)) return;
  const kernels::TrainKernels& kern = kernels::train_active();
  const int64_t NR = kern.nr;
  thread_local std::vector<float> bbuf;
  bbuf.resize(packed_b_floats(n, NR));
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      pack_b(b + pc * rsb + jc * csb, rsb, csb, kc, nc, NR, bbuf.data());
      run_block(kern, a, rsa, csa, 0, m, pc, kc, bbuf.data(), 0, nc, nc, c, ldc, jc, accumulate || pc > 0);
    }
  }
}

void train_gemm_parallel(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
                         int64_t rsb, int64_t csb, float* c, int64_t ldc, bool accumulate) {
  if (trivial_gemm(m, n, k, c, ldc, accumulate)) return;
  const int threads = get_num_threads();
  if (threads <= 1 || m * n * k < train_detail::kParallelMacs) {
    train_gemm(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, accumulate);
    return;
  }
  const kernels::TrainKernels& kern = kernels::train_active();
  const int64_t NR = kern.nr;
  // The caller's buffer, shared through a pointer (inside the lambdas the name would be each worker's own).
  thread_local std::vector<float> bbuf_owner;
  bbuf_owner.resize(packed_b_floats(n, NR));
  float* const bbuf = bbuf_owner.data();
  const int64_t row_blocks = (m + kMC - 1) / kMC;
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc), panels = (nc + NR - 1) / NR;
    // Work items: row blocks times groups of B panels, enough of them to keep every thread busy.
    const int64_t groups = std::min(panels, std::max<int64_t>(1, (4 * threads + row_blocks - 1) / row_blocks));
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const bool load = accumulate || pc > 0;
      parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
        pack_b(b + pc * rsb + (jc + p0 * NR) * csb, rsb, csb, kc, std::min(nc, p1 * NR) - p0 * NR, NR,
               bbuf + p0 * kc * NR);
      });
      parallel_for(row_blocks * groups, 1, [&](int64_t w0, int64_t w1) {
        for (int64_t w = w0; w < w1; ++w) {
          const int64_t rb = w / groups, gi = w % groups;
          const int64_t j0a = panels * gi / groups * NR, j0b = std::min(nc, panels * (gi + 1) / groups * NR);
          run_block(kern, a, rsa, csa, rb * kMC, std::min(m, (rb + 1) * kMC), pc, kc, bbuf, j0a, j0b, nc, c,
                    ldc, jc, load);
        }
      });
    }
  }
}

}  // namespace trix
