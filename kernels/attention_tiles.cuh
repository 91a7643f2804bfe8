// Tile geometry and small helpers shared by the low-rank attention kernels (decode_attention.cu,
// fold_scores.cu, split_values.cu): 256-thread CTAs, 32-token tiles, staged rows.
#pragma once

#include <cstddef>

#include "kernels/kernel_api.h"

namespace starkv {
namespace kernels {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int T = kAttnTileTokens;
constexpr int kHeads = kAttnHeadsPerCta;
constexpr int kTileStride = T + 8;  // halves per LvT / P row: 20 words, conflict-free fragments
constexpr int kCombineQueries = 4;
static_assert(T == 32, "the softmax maps one token to one lane");
static_assert(kWarps == kHeads, "the fused softmax maps one query head to one warp");

__host__ __device__ inline size_t align16(size_t x) { return (x + 15) & ~size_t{15}; }

__host__ __device__ inline int raw_stride(const LayerView& l) {
  return l.raw_key_bytes + l.raw_value_bytes + l.raw_scale_bytes;
}

}  // namespace kernels
}  // namespace starkv
