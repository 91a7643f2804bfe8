// The model's weights in fp32, loaded from model.safetensors (Hugging Face Llama names).
// Projections keep the Hugging Face [out × in] row-major layout, so y = x · Wᵀ is one
// cblas_sgemm with the weight transposed. q/k/v are stacked into one matrix and gate/up into
// another, so each takes a single GEMM per layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model_config.h"

namespace llama_runner {

struct LayerWeights {
  std::vector<float> attn_norm;  // [d]
  std::vector<float> wqkv;       // [(H + 2G)·D × d]: q rows, then k rows, then v rows
  std::vector<float> wo;         // [d × H·D]
  std::vector<float> mlp_norm;   // [d]
  std::vector<float> w_gate_up;  // [2F × d]: gate rows, then up rows
  std::vector<float> w_down;     // [d × F]
};

struct ModelWeights {
  std::vector<float> embed;        // [vocab × d]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;   // [d]
  std::vector<float> lm_head;      // [vocab × d]; empty when tied to embed
  const float* output_matrix() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

// Loads and checks every tensor's shape against cfg; throws std::runtime_error.
ModelWeights load_model_weights(const std::string& safetensors_path, const ModelConfig& cfg);

// Random weights of cfg's shape (uniform, standard deviation 0.02 like a Llama initialization,
// rounded to fp16 as a checkpoint would be; norms 1). For runs where only the
// shape matters — speed on a machine without the checkpoint — and for CPU/GPU agreement checks.
ModelWeights synthetic_model_weights(const ModelConfig& cfg, uint64_t seed);

}  // namespace llama_runner
