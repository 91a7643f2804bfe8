#include "cpu/latent_projection.h"

#include <algorithm>

// The `omp simd` loops compute independent outputs (no reduction is split across lanes), so
// vectorizing them changes no result bit; GCC's -O2 cost model would leave them scalar.

namespace starkv {
namespace {

// latent[r] = sum_i x[in_offset + i] * down[i, r] for one group.
float* project_group(const FactorGroup& g, const float* x, float* latent) {
  std::fill(latent, latent + g.rank, 0.0f);
  for (int32_t i = 0; i < g.in_dim; ++i) {
    const float xi = x[g.in_offset + i];
    const float* row = g.down.data() + static_cast<size_t>(i) * static_cast<size_t>(g.rank);
#pragma omp simd
    for (int32_t r = 0; r < g.rank; ++r) latent[r] += xi * row[r];
  }
  return latent + g.rank;
}

}  // namespace

void project_to_latents(const LayerProfile& layer, const float* k, const float* v, float* latent) {
  for (const FactorGroup& g : layer.keys) latent = project_group(g, k, latent);
  for (const FactorGroup& g : layer.values) latent = project_group(g, v, latent);
}

void reconstruct_key(const LayerProfile& layer, int32_t kv_width, const float* latent, float* key) {
  std::fill(key, key + kv_width, 0.0f);
  for (const FactorGroup& g : layer.keys) {
    for (int32_t r = 0; r < g.rank; ++r) {
      const float l = latent[r];
      const float* row = g.up.data() + static_cast<size_t>(r) * static_cast<size_t>(g.in_dim);
      float* dst = key + g.in_offset;
#pragma omp simd
      for (int32_t c = 0; c < g.in_dim; ++c) dst[c] += l * row[c];
    }
    latent += g.rank;
  }
}

}  // namespace starkv
