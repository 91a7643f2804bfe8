// RoPE on the device from the tables in RopeTables (cuda_model_ops.h); shared by the model's
// query rotation and the dense cache's key rotation so both rotate exactly as rope.cpp does.
#pragma once

#include "cuda_model_ops.h"

namespace llama_runner {

// Element i of head vector v rotated to table row pos: pair (a, b) -> (a c - b s, b c + a s).
__device__ inline float rope_element(const float* v, int i, int pos, const RopeTables& r) {
  if (i >= r.rope_dim) return v[i];
  const int half = r.rope_dim / 2;
  bool first;
  int pair, partner;
  if (r.neox) {
    first = i < half;
    pair = first ? i : i - half;
    partner = first ? i + half : i - half;
  } else {
    first = (i & 1) == 0;
    pair = i >> 1;
    partner = first ? i + 1 : i - 1;
  }
  const float c = r.cos[int64_t(pos) * half + pair], s = r.sin[int64_t(pos) * half + pair];
  return first ? v[i] * c - v[partner] * s : v[i] * c + v[partner] * s;
}

}  // namespace llama_runner
