// The tiled FFN's training forward and backward, each one call. Slots (row * k + slot) are grouped
// by tile once (a counting sort, in increasing slot order); per-slot intermediates are kept in that
// grouped order so each tile's rows are one contiguous range, and sums over a row's slots are taken
// in slot order afterwards, so no result depends on how the work was split.
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

std::vector<Block> token_blocks(const Grouping& g, int64_t tiles) {
  std::vector<Block> blocks;
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t p = g.offset[t]; p < g.offset[t + 1]; p += kTokenBlock)
      blocks.push_back({t, p, std::min(g.offset[t + 1], p + kTokenBlock)});
  return blocks;
}

// Effective weights of the routed tiles (others left undefined, never read).
void decode_tiles(const TernaryCodes& w, const Grouping& g, int64_t tiles, bool transposed, std::vector<float>& out) {
  const int64_t rows = w.rows / tiles, per = rows * w.cols;
  out.resize(static_cast<size_t>(w.rows * w.cols));
  parallel_for(tiles, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      if (g.offset[t + 1] == g.offset[t]) continue;
      if (transposed)
        decode_rows_t(w, t * rows, (t + 1) * rows, out.data() + t * per);
      else
        decode_rows(w, t * rows, (t + 1) * rows, out.data() + t * per);
    }
  });
}

void gather_rows(const float* src, int64_t d, const Grouping& g, int64_t k, int64_t p0, int64_t p1, float* dst) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* r = src + (g.slot[p] / k) * d;
    std::copy(r, r + d, dst + (p - p0) * d);
  }
}

// out[i] = sum over used slots j in order of (gates ? gates[s] : 1) * v[pos(s)], i < n, width w.
void reduce_slots(const std::vector<float>& v, int64_t w, const Grouping& g, const float* gates, int64_t n, int64_t k,
                  float* out) {
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* o = out + i * w;
      std::fill(o, o + w, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t p = g.pos[i * k + j];
        if (p < 0) continue;
        const float* src = v.data() + p * w;
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
  std::vector<float> up_t, down_t;  // per tile: up^T [d, h], down^T [h, d]
  decode_tiles(f.up, g, T, true, up_t);
  decode_tiles(f.down, g, T, true, down_t);
  std::vector<float> out(static_cast<size_t>(g.offset[T] * d));
  if (hidden_pre) std::fill(hidden_pre, hidden_pre + n * k * h, 0.0f);
  const std::vector<Block> blocks = token_blocks(g, T);
  const kernels::TrainKernels& kern = kernels::train_active();
  parallel_for(static_cast<int64_t>(blocks.size()), 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xt(static_cast<size_t>(kTokenBlock * d)), ht(static_cast<size_t>(kTokenBlock * h));
    for (int64_t bi = b0; bi < b1; ++bi) {
      const Block& B = blocks[bi];
      const int64_t c = B.p1 - B.p0;
      gather_rows(x, d, g, k, B.p0, B.p1, xt.data());
      train_gemm(c, h, d, xt.data(), d, 1, up_t.data() + B.tile * d * h, h, 1, ht.data(), h, false);
      if (hidden_pre)
        for (int64_t j = 0; j < c; ++j) std::copy(ht.data() + j * h, ht.data() + (j + 1) * h, hidden_pre + g.slot[B.p0 + j] * h);
      kern.activation(static_cast<int>(act), ht.data(), c * h, ht.data(), nullptr);
      train_gemm(c, d, h, ht.data(), h, 1, down_t.data() + B.tile * h * d, d, 1, out.data() + B.p0 * d, d, false);
    }
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
  std::vector<float> up_w, down_w;  // per tile as stored: up [h, d], down [d, h]
  decode_tiles(f.down, g, T, false, down_w);
  if (dx) decode_tiles(f.up, g, T, false, up_w);
  const bool wgrad = dup != nullptr || ddown != nullptr;
  // Grouped per-slot intermediates: gated output gradient, activation, pre-activation gradient, input.
  std::vector<float> gs(static_cast<size_t>(m * d)), av, dpre(static_cast<size_t>(m * h)), dxs, xs;
  if (ddown) av.resize(static_cast<size_t>(m * h));
  if (dx) dxs.resize(static_cast<size_t>(m * d));
  if (dup) xs.resize(static_cast<size_t>(m * d));
  if (dgates) std::fill(dgates, dgates + n * k, 0.0f);
  const std::vector<Block> blocks = token_blocks(g, T);
  const kernels::TrainKernels& kern = kernels::train_active();
  parallel_for(static_cast<int64_t>(blocks.size()), 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> da(static_cast<size_t>(kTokenBlock * h)), ar(static_cast<size_t>(h)),
        gr(static_cast<size_t>(h));
    for (int64_t bi = b0; bi < b1; ++bi) {
      const Block& B = blocks[bi];
      const int64_t c = B.p1 - B.p0;
      float* gsb = gs.data() + B.p0 * d;
      gather_rows(gy, d, g, k, B.p0, B.p1, gsb);
      if (dup) gather_rows(x, d, g, k, B.p0, B.p1, xs.data() + B.p0 * d);
      train_gemm(c, h, d, gsb, d, 1, down_w.data() + B.tile * d * h, h, 1, da.data(), h, false);
      for (int64_t j = 0; j < c; ++j) {
        const int64_t s = g.slot[B.p0 + j];
        float* a = ddown ? av.data() + (B.p0 + j) * h : ar.data();
        kern.activation(static_cast<int>(act), hidden_pre + s * h, h, a, gr.data());  // act and act' at once
        float* dar = da.data() + j * h;
        float* dp = dpre.data() + (B.p0 + j) * h;
        if (gates) {
          const float gv = gates[s];
          if (dgates) {
            float acc = 0.0f;
            for (int64_t r = 0; r < h; ++r) acc += dar[r] * a[r];
            dgates[s] = acc;
          }
          for (int64_t r = 0; r < h; ++r) dar[r] *= gv;
          float* gsr = gsb + j * d;
          for (int64_t cc = 0; cc < d; ++cc) gsr[cc] *= gv;
        }
        for (int64_t r = 0; r < h; ++r) dp[r] = dar[r] * gr[r];
      }
      if (dx)
        train_gemm(c, d, h, dpre.data() + B.p0 * h, h, 1, up_w.data() + B.tile * h * d, d, 1, dxs.data() + B.p0 * d,
                   d, false);
    }
  });
  if (dx) reduce_slots(dxs, d, g, nullptr, n, k, dx);
  if (!wgrad) return;
  // Weight gradients: blocks of output rows, each summed over the tile's slots in grouped order.
  struct GradBlock {
    int64_t tile, r0, r1;
    bool is_up;
  };
  std::vector<GradBlock> gb;
  for (int64_t t = 0; t < T; ++t) {
    const bool routed = g.offset[t + 1] > g.offset[t];
    if (dup) {
      if (!routed) std::fill(dup + t * h * d, dup + (t + 1) * h * d, 0.0f);
      for (int64_t r = 0; routed && r < h; r += kGradBlock) gb.push_back({t, r, std::min(h, r + kGradBlock), true});
    }
    if (ddown) {
      if (!routed) std::fill(ddown + t * d * h, ddown + (t + 1) * d * h, 0.0f);
      for (int64_t r = 0; routed && r < d; r += kGradBlock) gb.push_back({t, r, std::min(d, r + kGradBlock), false});
    }
  }
  parallel_for(static_cast<int64_t>(gb.size()), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      const GradBlock& G = gb[bi];
      const int64_t p0 = g.offset[G.tile], cnt = g.offset[G.tile + 1] - p0, rows = G.r1 - G.r0;
      if (G.is_up)  // dup[t*h + r, c] = sum_p dpre[p, r] * x[p, c]
        train_gemm(rows, d, cnt, dpre.data() + p0 * h + G.r0, 1, h, xs.data() + p0 * d, d, 1,
                   dup + (G.tile * h + G.r0) * d, d, false);
      else  // ddown[t*d + c, r] = sum_p gs[p, c] * act[p, r]
        train_gemm(rows, h, cnt, gs.data() + p0 * d + G.r0, 1, d, av.data() + p0 * h, h, 1,
                   ddown + (G.tile * d + G.r0) * h, h, false);
    }
  });
}

}  // namespace trix
