// The parts of a profile that describe the model and the storage format, independent of ranks:
// the attention shape, RoPE, and the quantization settings.
#pragma once

#include <cstdint>

#include "starkv/starkv.h"

namespace starkv {

struct ModelShape {
  int32_t n_layers = 0;
  int32_t n_heads = 0;     // H, query heads
  int32_t n_kv_heads = 0;  // G
  int32_t head_dim = 0;    // D
  int32_t hidden_dim = 0;  // d (0 when built from K/V samples alone)

  int32_t kv_width() const { return n_kv_heads * head_dim; }          // G*D
  int32_t queries_per_kv() const { return n_heads / n_kv_heads; }     // H/G
};

struct RopeConfig {
  starkv_rope_style style = STARKV_ROPE_NEOX;
  int32_t rotary_dim = 0;  // resolved: never 0 once a profile exists (head_dim when not given)
  float theta = 10000.0f;
  starkv_rope_scaling scaling = STARKV_ROPE_SCALING_NONE;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int32_t original_max_position = 8192;
};

struct QuantConfig {
  int32_t inlier_bits = 16;   // 16 (fp16 latents), 4, 3, 2
  int32_t outlier_bits = 16;  // 16, 8, 4
  float outlier_fraction = 0.2f;
  bool hadamard = true;
  bool pack_3bit_in_nibbles = false;

  bool quantized() const { return inlier_bits < 16; }
};

}  // namespace starkv
