// The Llama decoder's forward pass on the CPU, fp32: embedding, per layer RMSNorm → fused
// q/k/v projection → RoPE on q → KvAttention (append k, v; attend q) → o_proj → residual →
// RMSNorm → SwiGLU MLP → residual; then the final RMSNorm and the (tied or separate) lm_head.
// A call processes n tokens at once (a prefill window, or one decode token), so each
// projection is a single [n × in]·[out × in]ᵀ cblas_sgemm.
#pragma once

#include <cstdint>
#include <vector>

#include "kv_attention.h"
#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace llama_runner {

class LlamaForward {
 public:
  // cfg, weights and rope must outlive this object.
  LlamaForward(const ModelConfig& cfg, const ModelWeights& weights, const Rope& rope);

  // Runs n tokens (at the given absolute positions, following whatever kv already holds) through
  // every layer, appending their keys and values to kv. Returns the final-normed hidden states
  // [n × d]; valid until the next call.
  const float* forward(const int32_t* tokens, const int32_t* positions, int n, KvAttention& kv);

  // logits [m × vocab] = hidden [m × d] · lm_headᵀ.
  void logits(const float* hidden, int m, float* out) const;

  const ModelConfig& config() const { return cfg_; }

 private:
  void rms_norm(const float* x, const float* w, int n, float* y) const;

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  const Rope& rope_;
  // Activations, resized per call: x residual stream, h normed input, qkv projections,
  // q/k/v split out, attention output, MLP gate|up and its activation.
  std::vector<float> x_, h_, qkv_, q_, k_, v_, attn_, gate_up_, act_;
};

}  // namespace llama_runner
