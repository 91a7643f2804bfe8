// The two small linear maps every CPU path shares: a token's K and V onto the layer's latents
// (down-projections), and latents back to keys (up-projections). fp32 throughout.
#pragma once

#include "core/profile.h"

namespace starkv {

// k, v: one token's pre-RoPE key and value, [G*D] each. latent: [latent_width] (key groups, then
// value groups).
void project_to_latents(const LayerProfile& layer, const float* k, const float* v, float* latent);

// Reconstructs one token's full pre-RoPE key [G*D] from the key part of its latent row.
void reconstruct_key(const LayerProfile& layer, int32_t kv_width, const float* latent, float* key);

}  // namespace starkv
