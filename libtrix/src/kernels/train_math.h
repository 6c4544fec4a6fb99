// Activation functions of the training kernels, written once over a vector-ops type V (scalar float
// or an AVX2 register) so that every level computes the same operations in the same order: the
// results are bit-identical across levels (the files using this are compiled with
// -ffp-contract=off, so no multiply-add is fused behind our back).
//   exp: Cephes expf (range reduction by ln 2, degree-5 polynomial), |rel err| < 2e-7
//   erf: Abramowitz & Stegun 7.1.26, |abs err| < 1.5e-7 (gelu's Phi then within 1e-7 of the erf form)
// Internal linkage: each including file gets its own copy compiled with its own flags.
#pragma once
#include <cstdint>

namespace trix::kernels {
namespace {

enum ActCode : int { kActIdentity = 0, kActRelu = 1, kActGelu = 2, kActSilu = 3 };

template <class V>
struct TrainMath {
  using T = typename V::T;

  static T exp(T x) {
    x = V::min(V::max(x, V::set(-87.3f)), V::set(88.3f));
    const T n = V::floor(V::fma(x, V::set(1.44269504088896341f), V::set(0.5f)));
    T r = V::fma(n, V::set(-0.693359375f), x);
    r = V::fma(n, V::set(2.12194440e-4f), r);
    T p = V::set(1.9875691500e-4f);
    p = V::fma(p, r, V::set(1.3981999507e-3f));
    p = V::fma(p, r, V::set(8.3334519073e-3f));
    p = V::fma(p, r, V::set(4.1665795894e-2f));
    p = V::fma(p, r, V::set(1.6666665459e-1f));
    p = V::fma(p, r, V::set(5.0000001201e-1f));
    p = V::fma(p, V::mul(r, r), V::add(r, V::set(1.0f)));
    return V::mul(p, V::pow2(n));
  }

  // erf(x) for x >= 0 given e = exp(-x * x).
  static T erf_pos(T x, T e) {
    const T t = V::div(V::set(1.0f), V::fma(x, V::set(0.3275911f), V::set(1.0f)));
    T p = V::set(1.061405429f);
    p = V::fma(p, t, V::set(-1.453152027f));
    p = V::fma(p, t, V::set(1.421413741f));
    p = V::fma(p, t, V::set(-0.284496736f));
    p = V::fma(p, t, V::set(0.254829592f));
    return V::sub(V::set(1.0f), V::mul(V::mul(p, t), e));
  }

  // a = act(v), g = act'(v) (either may be skipped by the caller ignoring it).
  static void eval(int act, T v, T& a, T& g) {
    switch (act) {
      case kActRelu: {
        const T pos = V::gt0(v);
        a = V::select(pos, v, V::set(0.0f));
        g = V::select(pos, V::set(1.0f), V::set(0.0f));
        return;
      }
      case kActGelu: {
        const T x = V::mul(V::abs(v), V::set(0.70710678118654752f));
        const T e = exp(V::mul(V::sub(V::set(0.0f), x), x));  // exp(-v^2 / 2)
        const T half_erf = V::mul(V::set(0.5f), V::copysign(erf_pos(x, e), v));
        const T phi_cdf = V::add(V::set(0.5f), half_erf);     // Phi(v)
        a = V::mul(v, phi_cdf);
        g = V::fma(V::mul(v, e), V::set(0.39894228040143268f), phi_cdf);
        return;
      }
      case kActSilu: {
        const T s = V::div(V::set(1.0f), V::add(V::set(1.0f), exp(V::sub(V::set(0.0f), v))));
        a = V::mul(v, s);
        g = V::mul(s, V::fma(v, V::sub(V::set(1.0f), s), V::set(1.0f)));
        return;
      }
      default:
        a = v;
        g = V::set(1.0f);
    }
  }
};

}  // namespace
}  // namespace trix::kernels
