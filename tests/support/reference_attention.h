// An independent dense attention in double precision: the oracle for every compressed path.
// It shares no code with the library (its RoPE is written here again, on purpose).
#pragma once

#include <cstdint>
#include <vector>

#include "starkv/starkv.h"

namespace starkv_test {

struct AttentionShape {
  int32_t n_heads = 4;
  int32_t n_kv_heads = 2;
  int32_t head_dim = 32;
  starkv_rope_style rope_style = STARKV_ROPE_NEOX;
  float rope_theta = 10000.0f;
  float scale = 0.0f;  // 0: 1/sqrt(head_dim)
};

// Applies RoPE to one head vector at `position` (neox: pairs (i, i+D/2); gptj: (2i, 2i+1)).
void reference_rope(const AttentionShape& s, int32_t position, double* x);

// keys, values: pre-RoPE [T, G, D] for positions 0..T-1; query: post-RoPE [H, D]; attends the
// first kv_length tokens. Returns [H, D].
std::vector<double> reference_attention(const AttentionShape& s, const std::vector<float>& keys,
                                        const std::vector<float>& values,
                                        const std::vector<float>& query, int32_t kv_length);

// ||a - b|| / ||b||
double relative_error(const std::vector<float>& a, const std::vector<double>& b);

// Random values that are exactly representable in fp16 (so fp16 storage is lossless).
std::vector<float> random_half_exact(size_t n, uint32_t seed, float amplitude = 1.0f);

}  // namespace starkv_test
