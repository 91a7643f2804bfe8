#include "model_weights.h"

#include <cmath>
#include <random>
#include <stdexcept>

#include "half_float.h"
#include "safetensors_reader.h"

namespace llama_runner {

namespace {

void append(std::vector<float>& dst, const std::vector<float>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

}  // namespace

ModelWeights load_model_weights(const std::string& safetensors_path, const ModelConfig& cfg) {
  const SafetensorsReader st(safetensors_path);
  const int64_t d = cfg.hidden_size, f = cfg.intermediate_size, dh = cfg.head_dim;
  const int64_t q_rows = cfg.n_heads * dh, kv_rows = cfg.n_kv_heads * dh;

  ModelWeights w;
  w.embed = st.to_float("model.embed_tokens.weight", {cfg.vocab_size, d});
  w.final_norm = st.to_float("model.norm.weight", {d});
  // A checkpoint with its own lm_head uses it even if the config says tied.
  if (st.has("lm_head.weight")) {
    w.lm_head = st.to_float("lm_head.weight", {cfg.vocab_size, d});
  } else if (!cfg.tie_word_embeddings) {
    throw std::runtime_error(safetensors_path + ": no lm_head.weight and embeddings not tied");
  }

  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& L = w.layers[size_t(i)];
    L.attn_norm = st.to_float(p + "input_layernorm.weight", {d});
    L.mlp_norm = st.to_float(p + "post_attention_layernorm.weight", {d});
    L.wqkv.reserve(size_t((q_rows + 2 * kv_rows) * d));
    append(L.wqkv, st.to_float(p + "self_attn.q_proj.weight", {q_rows, d}));
    append(L.wqkv, st.to_float(p + "self_attn.k_proj.weight", {kv_rows, d}));
    append(L.wqkv, st.to_float(p + "self_attn.v_proj.weight", {kv_rows, d}));
    L.wo = st.to_float(p + "self_attn.o_proj.weight", {d, q_rows});
    L.w_gate_up.reserve(size_t(2 * f * d));
    append(L.w_gate_up, st.to_float(p + "mlp.gate_proj.weight", {f, d}));
    append(L.w_gate_up, st.to_float(p + "mlp.up_proj.weight", {f, d}));
    L.w_down = st.to_float(p + "mlp.down_proj.weight", {d, f});
  }
  return w;
}

ModelWeights synthetic_model_weights(const ModelConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  std::uniform_real_distribution<float> uniform(-0.02f * std::sqrt(3.0f), 0.02f * std::sqrt(3.0f));
  auto random = [&](int64_t rows, int64_t cols) {
    std::vector<float> w(size_t(rows * cols));
    for (float& x : w) x = half_to_float(float_to_half(uniform(rng)));
    return w;
  };
  const int64_t d = cfg.hidden_size, f = cfg.intermediate_size, dh = cfg.head_dim;
  const int64_t q_rows = cfg.n_heads * dh, kv_rows = cfg.n_kv_heads * dh;
  ModelWeights w;
  w.embed = random(cfg.vocab_size, d);
  w.final_norm.assign(size_t(d), 1.0f);
  if (!cfg.tie_word_embeddings) w.lm_head = random(cfg.vocab_size, d);
  w.layers.resize(size_t(cfg.n_layers));
  for (LayerWeights& L : w.layers) {
    L.attn_norm.assign(size_t(d), 1.0f);
    L.mlp_norm.assign(size_t(d), 1.0f);
    L.wqkv = random(q_rows + 2 * kv_rows, d);
    L.wo = random(d, q_rows);
    L.w_gate_up = random(2 * f, d);
    L.w_down = random(d, f);
  }
  return w;
}

}  // namespace llama_runner
