// Rotary position embedding (RoPE), in either of the two dimension orders Llama checkpoints
// use. The angle for pair i at position p is p · theta^(-2i / rope_dim); cos/sin tables are
// precomputed (in double, rounded to float) for positions below the table size.
#pragma once

#include <cstdint>
#include <vector>

#include "model_config.h"

namespace llama_runner {

class Rope {
 public:
  Rope(const ModelConfig& cfg, RopeStyle style, int table_positions);

  // Rotates, in place, n_heads head vectors of each of n tokens. Token t's heads start at
  // x + t·row_stride, head h at + h·head_dim; positions[t] is its absolute position.
  void apply(float* x, int n_tokens, int64_t row_stride, int n_heads,
             const int32_t* positions) const;

  // cos and sin of the rope_dim/2 angles at a position (the CUDA runner uploads these tables).
  void angles(int32_t position, float* cos_out, float* sin_out) const;

  RopeStyle style() const { return style_; }
  int head_dim() const { return head_dim_; }
  int rope_dim() const { return rope_dim_; }

 private:

  RopeStyle style_;
  int head_dim_, rope_dim_;
  std::vector<double> inv_freq_;     // [rope_dim/2]
  int table_positions_;
  std::vector<float> cos_, sin_;     // [table_positions × rope_dim/2]
};

}  // namespace llama_runner
