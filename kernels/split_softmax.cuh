// Online-softmax pieces shared by the split-K attention kernels and their combines.
#pragma once

#include <cmath>

#include "kernels/kernel_api.h"

namespace starkv {
namespace kernels {

// e^x as one ex2.approx.ftz (x * log2 e): __expf without its denormal-range fix-ups. Results
// below 2^-126 flush to zero (they scale accumulators that are then negligible anyway).
__device__ __forceinline__ float exp_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x * 1.4426950408889634f));
  return y;
}

// Merges the online-softmax statistics (running max, sum of exponentials) that the splits of one
// query wrote for head h: *m is the overall max, *inv_total the reciprocal of the overall sum, so
// split s's partial output weighs __expf(max_s - *m) * *inv_total.
__device__ __forceinline__ void merge_split_stats(const AttendBatch& batch, const ModelView& model,
                                                  int2 range, int h, float* m, float* inv_total) {
  float max = -INFINITY;
  for (int s = 0; s < range.y; ++s)
    max = fmaxf(max, batch.stats[((range.x + s) * model.n_heads + h) * 2]);
  float total = 0.0f;
  for (int s = 0; s < range.y; ++s) {
    const float* st = batch.stats + ((range.x + s) * model.n_heads + h) * 2;
    total += __expf(st[0] - max) * st[1];
  }
  *m = max;
  *inv_total = total > 0.0f ? 1.0f / total : 0.0f;
}

// One channel of a query's merged split outputs for head h: sum over its splits s of
// __expf(max_s - m) * acc[(range.x + s) * item_stride + off], times inv_total (m and inv_total
// from merge_split_stats).
__device__ __forceinline__ float merge_split_channel(const AttendBatch& batch,
                                                     const ModelView& model, int2 range, int h,
                                                     float m, float inv_total,
                                                     const float* __restrict__ acc,
                                                     int64_t item_stride, int64_t off) {
  float v = 0.0f;
  for (int s = 0; s < range.y; ++s) {
    const float w = __expf(batch.stats[((range.x + s) * model.n_heads + h) * 2] - m);
    v += w * acc[(range.x + s) * item_stride + off];
  }
  return v * inv_total;
}

}  // namespace kernels
}  // namespace starkv
