// trix::Model forward: embeddings, blocks (attention with a KV cache, the FFN with its routing),
// final norm and head. Ternary products, routing scores, top-k, the tiled FFN and the hierarchical
// lookup are libtrix's own functions; this file only wires them as trix.nn.TriXLM does.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "lut_gemm.h"
#include "model_internal.h"
#include "trix/error.h"
#include "trix/matmul.h"
#include "trix/quantize.h"
#include "trix/route.h"
#include "trix/threads.h"

namespace trix {

namespace {

// Dot product with eight partial sums (the compiler keeps them in vector registers).
float dot(const float* a, const float* b, int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= k; c += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[c + j] * b[c + j];
  float tail = 0;
  for (; c < k; ++c) tail += a[c] * b[c];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// y[n, m] = x[n, :] . w[m, :] (+ bias[m]); split over m, each output summed by one thread.
void gemm_nt(const float* x, int64_t n, int64_t k, const float* w, int64_t m, const float* bias, float* y) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, n * k));
  parallel_for(m, grain, [&](int64_t b, int64_t e) {
    constexpr int64_t kRowBlock = 16;  // rows of x kept in cache while the weight rows stream by
    for (int64_t i0 = 0; i0 < n; i0 += kRowBlock) {
      const int64_t i1 = std::min(n, i0 + kRowBlock);
      for (int64_t r = b; r < e; ++r)
        for (int64_t i = i0; i < i1; ++i) y[i * m + r] = dot(x + i * k, w + r * k, k) + (bias ? bias[r] : 0.0f);
    }
  });
}

void normalize_rows(const float* x, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += static_cast<double>(x[i * d + c]) * x[i * d + c];
    const float nrm = std::max(static_cast<float>(std::sqrt(s)), 1e-12f);
    for (int64_t c = 0; c < d; ++c) out[i * d + c] = x[i * d + c] / nrm;
  }
}

void add_bias_rows(float* s, int64_t n, int64_t t, const float* bias) {
  if (!bias) return;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < t; ++j) s[i * t + j] += bias[j];
}

// Autonomy-of-Experts scores: ||act(up_t x)||_2 of every tile's own hidden activation [n, T] (the
// module computes them from the same packed up product; the winner then runs through tiled_ffn).
void autonomy_scores(const ModelLayer& L, const ModelConfig& c, const float* x, int64_t n, float* norms) {
  const int64_t T = c.tiles, h = c.hidden;
  std::vector<float> hid(static_cast<size_t>(n * T * h));
  if (L.up_lut.empty())
    matmul(x, n, L.tiles.up, hid.data());
  else
    detail::lut_matmul(x, n, L.tiles.up, L.up_lut.data(), hid.data());
  for (int64_t i = 0; i < n * T; ++i) {
    double s = 0;
    for (int64_t r = 0; r < h; ++r) {
      const double v = activate(c.activation, hid[i * h + r]);
      s += v * v;
    }
    norms[i] = static_cast<float>(std::sqrt(s));
  }
}

// The tiled FFN on x [n, d] (the FFN's input), routed by the layer's method; y [n, d].
void tiled_forward(const ModelLayer& L, const ModelConfig& c, const float* x, int64_t n, const int32_t* tokens,
                   uint64_t& rng, float* y) {
  const int64_t T = c.tiles, d = c.d_model;
  int64_t k = c.top_k;
  std::vector<int32_t> idx;
  std::vector<float> scores, val, xn;
  auto pick = [&](int64_t slots) {  // top-k of scores [n, T] into idx
    k = slots;
    idx.resize(static_cast<size_t>(n * k));
    val.resize(static_cast<size_t>(n * k));
    top_k(scores.data(), n, T, k, idx.data(), val.data());
  };
  auto normalized = [&] {
    xn.resize(static_cast<size_t>(n * d));
    normalize_rows(x, n, d, xn.data());
  };
  switch (c.routing) {
    case Routing::autonomy:
      scores.resize(static_cast<size_t>(n * T));
      autonomy_scores(L, c, x, n, scores.data());
      add_bias_rows(scores.data(), n, T, L.select_bias);
      pick(c.top_k);
      break;
    case Routing::dense:
      k = T;
      idx.resize(static_cast<size_t>(n * T));
      for (int64_t i = 0; i < n * T; ++i) idx[i] = static_cast<int32_t>(i % T);
      break;
    case Routing::random:
      idx.resize(static_cast<size_t>(n * k));
      for (auto& t : idx) t = static_cast<int32_t>(next_random(rng) % static_cast<uint64_t>(T));
      break;
    case Routing::hash:
      k = 1;
      idx.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) idx[i] = L.hash[tokens[i]];
      break;
    case Routing::learned: {
      scores.resize(static_cast<size_t>(n * T));
      linear_forward(L.gate, x, n, scores.data());
      for (int64_t i = 0; i < n; ++i) {  // softmax, as the module ranks probabilities (+ bias)
        float* s = scores.data() + i * T;
        const float mx = *std::max_element(s, s + T);
        float sum = 0;
        for (int64_t j = 0; j < T; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = 0; j < T; ++j) s[j] /= sum;
      }
      add_bias_rows(scores.data(), n, T, L.select_bias);
      pick(c.top_k);
      break;
    }
    case Routing::mean_signature:
      normalized();
      scores.resize(static_cast<size_t>(n * T));
      gemm_nt(xn.data(), n, d, L.sig_f, T, nullptr, scores.data());
      add_bias_rows(scores.data(), n, T, L.select_bias);
      pick(c.top_k);
      break;
    case Routing::emergent:
    case Routing::random_signatures:
      normalized();
      if (L.memory && !L.select_bias) {  // (L.memory: hierarchical emergent only)  // the hierarchical tree, as the packed Python path
        SearchOptions opt;
        opt.k = c.top_k, opt.probes = c.top_p;
        const SearchResult r = L.memory->search(xn.data(), n, opt);
        idx.resize(static_cast<size_t>(n * k));
        for (int64_t i = 0; i < n * k; ++i) idx[i] = static_cast<int32_t>(r.ids[i]);
        break;
      }
      scores.resize(static_cast<size_t>(n * T));
      route_scores(xn.data(), n, L.sig, scores.data());
      if (L.memory) {  // hierarchical with a select bias: mask tiles outside the top_p clusters
        const int64_t C = c.clusters;
        const TernaryView csig{L.cluster_sig.data(), C, d, nullptr, 0};
        std::vector<float> cs(static_cast<size_t>(n * C)), cv(static_cast<size_t>(n * c.top_p));
        std::vector<int32_t> best(static_cast<size_t>(n * c.top_p));
        route_scores(xn.data(), n, csig, cs.data());
        top_k(cs.data(), n, C, c.top_p, best.data(), cv.data());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t t = 0; t < T; ++t) {
            const int32_t* b = best.data() + i * c.top_p;
            if (std::find(b, b + c.top_p, L.cluster_of[t]) == b + c.top_p)
              scores[i * T + t] = -std::numeric_limits<float>::infinity();
          }
        std::vector<float> masked = scores;
        add_bias_rows(scores.data(), n, T, L.select_bias);
        pick(c.top_k);
        for (int64_t s = 0; s < n * k; ++s)  // fewer members than top_k in the searched clusters
          if (std::isinf(masked[(s / k) * T + idx[s]])) idx[s] = -1;
        break;
      }
      add_bias_rows(scores.data(), n, T, L.select_bias);
      pick(c.top_k);
      break;
  }
  detail::tiled_ffn_lut(x, n, L.tiles, c.activation, idx.data(), nullptr, k, y, nullptr,
                        L.up_lut.empty() ? nullptr : L.up_lut.data(), L.down_lut.empty() ? nullptr : L.down_lut.data());
}

// Causal attention of new positions [pos0, pos0 + len) over the cache, for every (sequence, head).
void attention(const float* qkv, int64_t B, int64_t len, int64_t pos0, int64_t d, int64_t H, const float* kc,
               const float* vc, int64_t cap, float* out) {
  const int64_t hd = d / H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  parallel_for(B * H, 1, [&](int64_t b0, int64_t e0) {
    std::vector<float> p(static_cast<size_t>(pos0 + len));
    for (int64_t bh = b0; bh < e0; ++bh) {
      const int64_t b = bh / H, hh = bh % H;
      for (int64_t t = 0; t < len; ++t) {
        const float* q = qkv + (b * len + t) * 3 * d + hh * hd;
        const int64_t keys = pos0 + t + 1;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < keys; ++j) {
          p[j] = dot(q, kc + (b * cap + j) * d + hh * hd, hd) * scale;
          mx = std::max(mx, p[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < keys; ++j) sum += (p[j] = std::exp(p[j] - mx));
        const float inv = 1.0f / sum;
        float* o = out + (b * len + t) * d + hh * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j < keys; ++j) {
          const float w = p[j] * inv;
          const float* v = vc + (b * cap + j) * d + hh * hd;
          for (int64_t c = 0; c < hd; ++c) o[c] += w * v[c];
        }
      }
    }
  });
}

}  // namespace

void linear_forward(const ModelLinear& l, const float* x, int64_t n, float* y) {
  if (!l.ternary) {
    gemm_nt(x, n, l.in, l.wf, l.out, l.bias, y);
    return;
  }
  if (l.int8) {
    std::vector<int8_t> xq(static_cast<size_t>(n * l.in));
    std::vector<float> xs(static_cast<size_t>(n));
    quantize_activations(x, n, l.in, xq.data(), xs.data());
    matmul_i8(xq.data(), xs.data(), n, l.w, y);
  } else if (!l.lut.empty()) {
    detail::lut_matmul(x, n, l.w, l.lut.data(), y);
  } else {
    matmul(x, n, l.w, y);
  }
  if (l.bias)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t m = 0; m < l.out; ++m) y[i * l.out + m] += l.bias[m];
}

void layer_norm(const float* x, int64_t n, int64_t d, const float* w, const float* b, float eps, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * d;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < d; ++c) mean += r[c];
    mean /= static_cast<double>(d);
    for (int64_t c = 0; c < d; ++c) var += (r[c] - mean) * (r[c] - mean);
    var /= static_cast<double>(d);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    for (int64_t c = 0; c < d; ++c) y[i * d + c] = (r[c] - static_cast<float>(mean)) * inv * w[c] + b[c];
  }
}

Model::Model() : impl_(std::make_unique<ModelImpl>()) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelConfig& Model::config() const { return impl_->cfg; }
const std::vector<uint32_t>& Model::vocab() const { return impl_->vocab; }
int64_t Model::nbytes() const { return static_cast<int64_t>(impl_->size) + impl_->extra_bytes; }
bool Model::mapped() const { return impl_->map != nullptr; }

State::State(const Model& m, int64_t batch, uint64_t seed) {
  const ModelConfig& c = m.config();
  TRIX_CHECK_ARG(batch >= 1 && batch <= (int64_t(1) << 20), "State", "batch", "must be in [1, 2^20], got ", batch);
  batch_ = batch, cap_ = c.block_size, layers_ = c.n_layer, dim_ = c.d_model;
  const size_t cells = static_cast<size_t>(layers_ * batch_ * cap_ * dim_);
  k_.assign(cells, 0.0f);
  v_.assign(cells, 0.0f);
  reset(seed);
}

void State::reset(uint64_t seed) {
  len_ = 0;
  rng_ = seed ^ 0x5452495852414E44ull;  // "TRIXRAND": routing draws differ from sampling draws
}

void Model::forward(const int32_t* tokens, int64_t len, State& st, float* logits, bool last_only) const {
  const ModelImpl& m = *impl_;
  const ModelConfig& c = m.cfg;
  const char* f = "Model.forward";
  TRIX_CHECK_ARG(st.layers_ == c.n_layer && st.dim_ == c.d_model && st.cap_ == c.block_size, f, "state",
                 "was made for another model");
  TRIX_CHECK_ARG(len >= 1 && st.len_ + len <= c.block_size, f, "tokens", "must add 1 to block_size - cached = ",
                 c.block_size - st.len_, " positions, got ", len);
  const int64_t B = st.batch_, N = B * len, d = c.d_model, V = c.vocab_size, pos0 = st.len_;
  for (int64_t i = 0; i < N; ++i)
    TRIX_CHECK_ARG(tokens[i] >= 0 && tokens[i] < V, f, "tokens", "must be ids in [0, ", V, "), got ", tokens[i], " at ", i);
  std::vector<float> x(static_cast<size_t>(N * d)), hbuf(static_cast<size_t>(N * d)), qkv(static_cast<size_t>(N * 3 * d)),
      att(static_cast<size_t>(N * d)), y(static_cast<size_t>(N * d)), mlp;
  for (int64_t i = 0; i < N; ++i) {
    const float* te = m.tok_emb + static_cast<int64_t>(tokens[i]) * d;
    const float* pe = m.pos_emb + (pos0 + i % len) * d;
    for (int64_t col = 0; col < d; ++col) x[i * d + col] = te[col] + pe[col];
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const ModelLayer& L = m.layers[static_cast<size_t>(l)];
    layer_norm(x.data(), N, d, L.ln1_w, L.ln1_b, c.norm_eps, hbuf.data());
    linear_forward(L.qkv, hbuf.data(), N, qkv.data());
    float* kc = st.k_.data() + l * B * st.cap_ * d;
    float* vc = st.v_.data() + l * B * st.cap_ * d;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t b = i / len, pos = pos0 + i % len;
      std::memcpy(kc + (b * st.cap_ + pos) * d, qkv.data() + i * 3 * d + d, sizeof(float) * d);
      std::memcpy(vc + (b * st.cap_ + pos) * d, qkv.data() + i * 3 * d + 2 * d, sizeof(float) * d);
    }
    attention(qkv.data(), B, len, pos0, d, c.n_head, kc, vc, st.cap_, att.data());
    linear_forward(L.proj, att.data(), N, y.data());
    for (int64_t i = 0; i < N * d; ++i) x[i] += y[i];
    // FFN: x + out_scale * ffn(norm(ln2(x))), each part present as the model has it.
    const float* in = x.data();
    if (L.ln2_w) {
      layer_norm(in, N, d, L.ln2_w, L.ln2_b, c.norm_eps, hbuf.data());
      in = hbuf.data();
    }
    if (c.ffn == FfnKind::mlp) {
      mlp.resize(static_cast<size_t>(N * c.hidden));
      linear_forward(L.fc1, in, N, mlp.data());
      for (float& v : mlp) v = activate(Activation::gelu, v);
      linear_forward(L.fc2, mlp.data(), N, y.data());
    } else {
      if (L.norm_w) {
        layer_norm(in, N, d, L.norm_w, L.norm_b, c.norm_eps, att.data());
        in = att.data();
      }
      tiled_forward(L, c, in, N, tokens, st.rng_, y.data());
      if (L.out_scale)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t col = 0; col < d; ++col) y[i * d + col] *= L.out_scale[col];
    }
    for (int64_t i = 0; i < N * d; ++i) x[i] += y[i];
  }
  st.len_ += len;
  // Final norm and head, on every position or only the last of each sequence.
  const int64_t rows = last_only ? B : N;
  std::vector<float> last;
  const float* src = x.data();
  if (last_only) {
    last.resize(static_cast<size_t>(B * d));
    for (int64_t b = 0; b < B; ++b) std::memcpy(last.data() + b * d, x.data() + ((b + 1) * len - 1) * d, sizeof(float) * d);
    src = last.data();
  }
  layer_norm(src, rows, d, m.lnf_w, m.lnf_b, c.norm_eps, hbuf.data());
  linear_forward(m.head, hbuf.data(), rows, logits);
  (void)V;
}

}  // namespace trix
