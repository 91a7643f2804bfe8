// The model's shape, read from the config.json that prepare_model.py writes (Hugging Face
// Llama field names, plus "rope_style").
#pragma once

#include <string>

namespace llama_runner {

enum class RopeStyle {
  kNeox,  // Hugging Face "rotate_half": dimension i pairs with i + rope_dim/2
  kGptj,  // interleaved: dimension 2i pairs with 2i + 1 (llama.cpp's GGUF row order)
};

RopeStyle parse_rope_style(const std::string& s);  // "neox" | "gptj"; throws otherwise
const char* rope_style_name(RopeStyle s);

struct ModelConfig {
  int hidden_size = 0;        // d
  int intermediate_size = 0;  // MLP width
  int n_layers = 0;
  int n_heads = 0;     // query heads H
  int n_kv_heads = 0;  // key/value heads G (H is a multiple of G)
  int head_dim = 0;    // D
  int rope_dim = 0;    // leading dimensions of each head that RoPE rotates (<= D)
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::kNeox;
  float rms_norm_eps = 1e-5f;
  int vocab_size = 0;
  int max_positions = 0;
  int bos_token_id = -1;
  int eos_token_id = -1;
  bool tie_word_embeddings = false;

  int q_per_kv() const { return n_heads / n_kv_heads; }
};

ModelConfig load_model_config(const std::string& path);  // throws std::runtime_error

}  // namespace llama_runner
