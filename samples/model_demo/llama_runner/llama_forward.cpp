#include "llama_forward.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace llama_runner {

namespace {

// y[n × out] (+)= x[n × in] · W[out × in]ᵀ
void linear(const float* x, int n, int in, const float* W, int out, float* y, bool accumulate) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, W, in,
              accumulate ? 1.0f : 0.0f, y, out);
}

}  // namespace

LlamaForward::LlamaForward(const ModelConfig& cfg, const ModelWeights& weights, const Rope& rope)
    : cfg_(cfg), w_(weights), rope_(rope) {}

void LlamaForward::rms_norm(const float* x, const float* w, int n, float* y) const {
  const int d = cfg_.hidden_size;
  for (int t = 0; t < n; ++t) {
    const float* xt = x + int64_t(t) * d;
    float* yt = y + int64_t(t) * d;
    double ss = 0.0;
    for (int i = 0; i < d; ++i) ss += double(xt[i]) * xt[i];
    const float inv = float(1.0 / std::sqrt(ss / d + cfg_.rms_norm_eps));
    for (int i = 0; i < d; ++i) yt[i] = xt[i] * inv * w[i];
  }
}

const float* LlamaForward::forward(const int32_t* tokens, const int32_t* positions, int n,
                                   KvAttention& kv) {
  const int d = cfg_.hidden_size, F = cfg_.intermediate_size, D = cfg_.head_dim;
  const int qd = cfg_.n_heads * D, kvd = cfg_.n_kv_heads * D, qkvd = qd + 2 * kvd;
  const size_t nd = size_t(n) * size_t(d);
  x_.resize(nd);
  h_.resize(nd);
  qkv_.resize(size_t(n) * qkvd);
  q_.resize(size_t(n) * qd);
  k_.resize(size_t(n) * kvd);
  v_.resize(size_t(n) * kvd);
  attn_.resize(size_t(n) * qd);
  gate_up_.resize(size_t(n) * 2 * F);
  act_.resize(size_t(n) * F);

  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= cfg_.vocab_size)
      throw std::out_of_range("token id " + std::to_string(tokens[t]) + " outside the vocabulary");
    std::memcpy(x_.data() + size_t(t) * d, w_.embed.data() + size_t(tokens[t]) * d,
                sizeof(float) * size_t(d));
  }

  for (int l = 0; l < cfg_.n_layers; ++l) {
    const LayerWeights& L = w_.layers[size_t(l)];
    // Attention block.
    rms_norm(x_.data(), L.attn_norm.data(), n, h_.data());
    linear(h_.data(), n, d, L.wqkv.data(), qkvd, qkv_.data(), false);
    for (int t = 0; t < n; ++t) {
      const float* row = qkv_.data() + size_t(t) * qkvd;
      std::memcpy(q_.data() + size_t(t) * qd, row, sizeof(float) * size_t(qd));
      std::memcpy(k_.data() + size_t(t) * kvd, row + qd, sizeof(float) * size_t(kvd));
      std::memcpy(v_.data() + size_t(t) * kvd, row + qd + kvd, sizeof(float) * size_t(kvd));
    }
    rope_.apply(q_.data(), n, qd, cfg_.n_heads, positions);
    kv.append(l, n, k_.data(), v_.data(), positions);
    kv.attend(l, n, q_.data(), attn_.data());
    linear(attn_.data(), n, qd, L.wo.data(), d, x_.data(), true);

    // MLP block: down(silu(gate(h)) * up(h)).
    rms_norm(x_.data(), L.mlp_norm.data(), n, h_.data());
    linear(h_.data(), n, d, L.w_gate_up.data(), 2 * F, gate_up_.data(), false);
    for (int t = 0; t < n; ++t) {
      const float* g = gate_up_.data() + size_t(t) * 2 * F;
      const float* u = g + F;
      float* a = act_.data() + size_t(t) * F;
      for (int i = 0; i < F; ++i) a[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
    linear(act_.data(), n, F, L.w_down.data(), d, x_.data(), true);
  }
  rms_norm(x_.data(), w_.final_norm.data(), n, h_.data());
  return h_.data();
}

void LlamaForward::logits(const float* hidden, int m, float* out) const {
  linear(hidden, m, cfg_.hidden_size, w_.output_matrix(), cfg_.vocab_size, out, false);
}

}  // namespace llama_runner
