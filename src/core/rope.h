// Rotary position embedding (RoPE) of one head vector, as Hugging Face transformers applies it.
//
// Keys are cached pre-RoPE and rotated only after reconstruction (DESIGN §2.1), so the library
// needs RoPE in two places: the attention backends (rotate reconstructed keys) and the profile
// builder (rotate calibration queries, and carry gradients back through the rotation in the
// distillation loss).
//
// Pairing: neox rotates (i, i + rotary_dim/2), gptj rotates (2i, 2i + 1), for i < rotary_dim/2;
// channels at and beyond rotary_dim pass through (partial rotary). Pair i turns by the angle
// position * inv_freq[i], formed in double: in fp32 it would lose ~1e-4 rad by position 1000,
// more than the fp32 tolerance the backends are tested to against a double reference.
#pragma once

#include <cstdint>

#include "core/model_config.h"
#include "starkv/starkv.h"

namespace starkv {

// Fills inv_freq[0 .. rotary_dim/2) with theta^(-2i/rotary_dim), then applies the scaling:
// linear divides every frequency by `factor`; llama3 follows transformers'
// `_compute_llama3_parameters` (wavelengths above original_max_position/low_freq_factor divided
// by `factor`, those below original_max_position/high_freq_factor kept, a linear blend in
// between). rope.rotary_dim 0 means head_dim. Writes nothing when rotary_dim < 2.
void rope_inverse_frequencies(const RopeConfig& rope, int32_t head_dim, float* inv_freq);

// Rotates one head vector x[0 .. head_dim) in place for `position`, using the frequencies from
// rope_inverse_frequencies. A no-op for STARKV_ROPE_NONE.
void apply_rope(const RopeConfig& rope, int32_t head_dim, int32_t position, const float* inv_freq,
                float* x);

// The inverse rotation (the transpose: RoPE is orthogonal), so apply_inverse_rope after apply_rope
// at the same position returns x up to rounding. The distillation loss uses it to carry gradients
// with respect to post-RoPE keys back to pre-RoPE keys.
void apply_inverse_rope(const RopeConfig& rope, int32_t head_dim, int32_t position,
                        const float* inv_freq, float* x);

// The RoPE settings of a params struct, rotary_dim resolved (0 -> head_dim). It does not
// validate: the profile builder checks the params before calling it.
RopeConfig rope_config_from_params(const starkv_profile_params& params);

}  // namespace starkv
