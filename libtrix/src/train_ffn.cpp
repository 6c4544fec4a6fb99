// The tiled FFN's training forward and backward, each one call. Slots (row * k + slot) are grouped
// by tile once (a counting sort, in increasing slot order); per-slot intermediates are kept in that
// grouped order so each tile's rows are one contiguous range, each product is one GEMM per tile over
// all of the tile's rows, and sums over a row's slots are taken in slot order afterwards, so no
// result depends on how the work was split.
#include <algorithm>
#include <vector>

#include "kernels/train_kernels.h"
#include "train_common.h"
#include "trix/error.h"
#include "trix/threads.h"

namespace trix {
namespace {

using namespace train_detail;

struct Grouping {
  std::vector<int64_t> offset;  // [T + 1]: tile t's grouped positions are offset[t] .. offset[t+1)
  std::vector<int64_t> slot;    // grouped position -> slot
  std::vector<int64_t> pos;     // slot -> grouped position, or -1 (unused slot)
};

struct Block {
  int64_t tile, p0, p1;  // grouped positions [p0, p1) of one tile
};

void check_ffn_codes(const TiledCodes& f, const char* func) {
  TRIX_CHECK_ARG(f.tiles > 0, func, "tiles", "must be positive, got ", f.tiles);
  TRIX_CHECK_ARG(f.up.rows % f.tiles == 0, func, "up", "must have a multiple of tiles (", f.tiles, ") rows, got ",
                 f.up.rows);
  const int64_t d = f.up.cols, h = f.up.rows / f.tiles;
  check_codes(f.up, func, "up", -1, -1);
  check_codes(f.down, func, "down", f.tiles * d, h);
}

Grouping group_slots(const int32_t* tile_idx, int64_t slots, int64_t tiles, const char* func, int64_t k) {
  Grouping g;
  g.offset.assign(static_cast<size_t>(tiles + 1), 0);
  for (int64_t s = 0; s < slots; ++s) {
    TRIX_CHECK_ARG(tile_idx[s] >= -1 && tile_idx[s] < tiles, func, "tile_idx", "must hold tile ids in [0, ", tiles,
                   ") or -1, got ", tile_idx[s], " at [", s / k, ", ", s % k, "]");
    if (tile_idx[s] >= 0) ++g.offset[tile_idx[s] + 1];
  }
  for (int64_t t = 0; t < tiles; ++t) g.offset[t + 1] += g.offset[t];
  g.slot.resize(static_cast<size_t>(g.offset[tiles]));
  g.pos.assign(static_cast<size_t>(slots), -1);
  std::vector<int64_t> fill(g.offset.begin(), g.offset.end() - 1);
  for (int64_t s = 0; s < slots; ++s)
    if (tile_idx[s] >= 0) {
      const int64_t p = fill[tile_idx[s]]++;
      g.slot[p] = s;
      g.pos[s] = p;
    }
  return g;
}

// Runs gemm(t, threaded) for every routed tile: a tile large enough to gain from threads runs its
// product split over them, one tile after another; the small tiles are shared out whole. Either way
// each element is the same chain, so the choice never changes a result.
template <class Gemm>
void each_routed_tile(const Grouping& g, int64_t tiles, int64_t macs_per_row, const Gemm& gemm) {
  std::vector<int64_t> small;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t cnt = g.offset[t + 1] - g.offset[t];
    if (cnt == 0) continue;
    if (cnt * macs_per_row >= kParallelMacs)
      gemm(t, true);
    else
      small.push_back(t);
  }
  parallel_for(static_cast<int64_t>(small.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) gemm(small[i], false);
  });
}

void gemm_any(bool threaded, int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b,
              int64_t rsb, int64_t csb, float* c, int64_t ldc) {
  (threaded ? train_gemm_parallel : train_gemm)(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, false);
}

// Effective weights of the routed tiles (others left undefined, never read).
float* decode_tiles(const TernaryCodes& w, const Grouping& g, int64_t tiles, bool transposed, ScratchSlot slot) {
  const int64_t rows = w.rows / tiles, per = rows * w.cols;
  float* out = scratch(slot, w.rows * w.cols);
  parallel_for(tiles, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      if (g.offset[t + 1] == g.offset[t]) continue;
      if (transposed)
        decode_rows_t(w, t * rows, (t + 1) * rows, out + t * per);
      else
        decode_rows(w, t * rows, (t + 1) * rows, out + t * per);
    }
  });
  return out;
}

// dst[p] = src row of slot p's token, for every grouped position p.
void gather_rows(const float* src, int64_t d, const Grouping& g, int64_t k, float* dst) {
  parallel_for(static_cast<int64_t>(g.slot.size()), 256, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* r = src + (g.slot[p] / k) * d;
      std::copy(r, r + d, dst + p * d);
    }
  });
}

// out[i] = sum over used slots j in order of (gates ? gates[s] : 1) * v[pos(s)], i < n, width w.
void reduce_slots(const float* v, int64_t w, const Grouping& g, const float* gates, int64_t n, int64_t k,
                  float* out) {
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* o = out + i * w;
      std::fill(o, o + w, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t p = g.pos[i * k + j];
        if (p < 0) continue;
        const float* src = v + p * w;
        if (gates == nullptr) {
          for (int64_t c = 0; c < w; ++c) o[c] += src[c];
        } else {
          const float gv = gates[i * k + j];
          for (int64_t c = 0; c < w; ++c) o[c] += gv * src[c];
        }
      }
    }
  });
}

}  // namespace

void ffn_train_forward(const float* x, int64_t n, const TiledCodes& f, Activation act, const int32_t* tile_idx,
                       const float* gates, int64_t k, float* y, float* hidden_pre) {
  const char* fn = "ffn_train_forward";
  check_ffn_codes(f, fn);
  TRIX_CHECK_ARG(n >= 0, fn, "x", "must have a non-negative row count, got ", n);
  TRIX_CHECK_ARG(k >= 1, fn, "tile_idx", "must have at least one slot per row, got ", k);
  const int64_t T = f.tiles, d = f.up.cols, h = f.up.rows / T;
  const Grouping g = group_slots(tile_idx, n * k, T, fn, k);
  const int64_t m = g.offset[T];
  // Per tile: up^T [d, h], down^T [h, d].
  const float* up_t = decode_tiles(f.up, g, T, true, kScratchUp);
  const float* down_t = decode_tiles(f.down, g, T, true, kScratchDown);
  // Grouped per-slot rows: input, hidden (pre-activation, then activation), output.
  float* xs = scratch(kScratchX, m * d);
  float* hs = scratch(kScratchHidden, m * h);
  float* out = scratch(kScratchOut, m * d);
  gather_rows(x, d, g, k, xs);
  each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
    const int64_t p0 = g.offset[t];
    gemm_any(threaded, g.offset[t + 1] - p0, h, d, xs + p0 * d, d, 1, up_t + t * d * h, h, 1, hs + p0 * h, h);
  });
  if (hidden_pre) std::fill(hidden_pre, hidden_pre + n * k * h, 0.0f);
  const kernels::TrainKernels& kern = kernels::train_active();
  parallel_for(m, 64, [&](int64_t b, int64_t e) {
    if (hidden_pre)
      for (int64_t p = b; p < e; ++p) std::copy(hs + p * h, hs + (p + 1) * h, hidden_pre + g.slot[p] * h);
    kern.activation(static_cast<int>(act), hs + b * h, (e - b) * h, hs + b * h, nullptr);
  });
  each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
    const int64_t p0 = g.offset[t];
    gemm_any(threaded, g.offset[t + 1] - p0, d, h, hs + p0 * h, h, 1, down_t + t * h * d, d, 1, out + p0 * d, d);
  });
  reduce_slots(out, d, g, gates, n, k, y);
}

void ffn_train_backward(const float* gy, const float* x, int64_t n, const TiledCodes& f, Activation act,
                        const int32_t* tile_idx, const float* gates, int64_t k, const float* hidden_pre,
                        float* dx, float* dup, float* ddown, float* dgates) {
  const char* fn = "ffn_train_backward";
  check_ffn_codes(f, fn);
  TRIX_CHECK_ARG(n >= 0, fn, "gy", "must have a non-negative row count, got ", n);
  TRIX_CHECK_ARG(k >= 1, fn, "tile_idx", "must have at least one slot per row, got ", k);
  TRIX_CHECK_ARG(dgates == nullptr || gates != nullptr, fn, "dgates", "needs gates (the forward had none)");
  const int64_t T = f.tiles, d = f.up.cols, h = f.up.rows / T;
  const Grouping g = group_slots(tile_idx, n * k, T, fn, k);
  const int64_t m = g.offset[T];
  // Per tile as stored: up [h, d], down [d, h].
  const float* down_w = decode_tiles(f.down, g, T, false, kScratchDown);
  const float* up_w = dx ? decode_tiles(f.up, g, T, false, kScratchUp) : nullptr;
  // Grouped per-slot rows: gated output gradient, activation, pre-activation gradient, input.
  float* gs = scratch(kScratchGrad, m * d);
  float* dpre = scratch(kScratchDpre, m * h);
  float* av = ddown ? scratch(kScratchAct, m * h) : nullptr;
  float* dxs = dx ? scratch(kScratchDx, m * d) : nullptr;
  float* xs = dup ? scratch(kScratchX, m * d) : nullptr;
  if (dup) gather_rows(x, d, g, k, xs);
  if (dgates) std::fill(dgates, dgates + n * k, 0.0f);
  gather_rows(gy, d, g, k, gs);
  // The activation's gradient, ungated: da = gy_slot @ down_t, into dpre.
  each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
    const int64_t p0 = g.offset[t];
    gemm_any(threaded, g.offset[t + 1] - p0, h, d, gs + p0 * d, d, 1, down_w + t * d * h, h, 1, dpre + p0 * h, h);
  });
  const kernels::TrainKernels& kern = kernels::train_active();
  parallel_for(m, 16, [&](int64_t b, int64_t e) {
    std::vector<float> ar(static_cast<size_t>(h)), gr(static_cast<size_t>(h));
    for (int64_t p = b; p < e; ++p) {
      const int64_t s = g.slot[p];
      float* a = ddown ? av + p * h : ar.data();
      kern.activation(static_cast<int>(act), hidden_pre + s * h, h, a, gr.data());  // act and act' at once
      float* dp = dpre + p * h;
      if (gates) {
        const float gv = gates[s];
        if (dgates) {
          float acc = 0.0f;
          for (int64_t r = 0; r < h; ++r) acc += dp[r] * a[r];
          dgates[s] = acc;
        }
        for (int64_t r = 0; r < h; ++r) dp[r] *= gv;
        float* gsr = gs + p * d;
        for (int64_t c = 0; c < d; ++c) gsr[c] *= gv;
      }
      for (int64_t r = 0; r < h; ++r) dp[r] *= gr[r];
    }
  });
  if (dx) {
    each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
      const int64_t p0 = g.offset[t];
      gemm_any(threaded, g.offset[t + 1] - p0, d, h, dpre + p0 * h, h, 1, up_w + t * h * d, d, 1, dxs + p0 * d, d);
    });
    reduce_slots(dxs, d, g, nullptr, n, k, dx);
  }
  // Weight gradients, each summed over the tile's slots in grouped order; unrouted tiles get zeros.
  for (int64_t t = 0; t < T; ++t)
    if (g.offset[t + 1] == g.offset[t]) {
      if (dup) std::fill(dup + t * h * d, dup + (t + 1) * h * d, 0.0f);
      if (ddown) std::fill(ddown + t * d * h, ddown + (t + 1) * d * h, 0.0f);
    }
  if (dup)  // dup[t*h + r, c] = sum_p dpre[p, r] * x[p, c]
    each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
      const int64_t p0 = g.offset[t];
      gemm_any(threaded, h, d, g.offset[t + 1] - p0, dpre + p0 * h, 1, h, xs + p0 * d, d, 1, dup + t * h * d, d);
    });
  if (ddown)  // ddown[t*d + c, r] = sum_p gs[p, c] * act[p, r]
    each_routed_tile(g, T, h * d, [&](int64_t t, bool threaded) {
      const int64_t p0 = g.offset[t];
      gemm_any(threaded, d, h, g.offset[t + 1] - p0, gs + p0 * d, 1, d, av + p0 * h, h, 1, ddown + t * d * h, h);
    });
}

}  // namespace trix
