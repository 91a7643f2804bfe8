#include "core/rope.h"

#include <cmath>

namespace starkv {
namespace {

constexpr double kPi = 3.14159265358979323846;

int32_t resolved_rotary_dim(const RopeConfig& rope, int32_t head_dim) {
  return rope.rotary_dim > 0 ? rope.rotary_dim : head_dim;
}

// transformers' `_compute_llama3_parameters`: low frequencies (long wavelengths) are stretched by
// `factor`, high ones kept, and the band in between blends the two linearly in 1/wavelength.
double llama3_scaled(const RopeConfig& rope, double inv_freq) {
  const double old_context = static_cast<double>(rope.original_max_position);
  const double low_freq_wavelen = old_context / rope.low_freq_factor;
  const double high_freq_wavelen = old_context / rope.high_freq_factor;
  const double wavelen = 2.0 * kPi / inv_freq;
  if (wavelen > low_freq_wavelen) return inv_freq / rope.factor;
  if (wavelen < high_freq_wavelen) return inv_freq;
  const double smooth = (old_context / wavelen - rope.low_freq_factor) /
                        (rope.high_freq_factor - rope.low_freq_factor);
  return (1.0 - smooth) * inv_freq / rope.factor + smooth * inv_freq;
}

// Rotates every pair by +angle (sign = 1) or -angle (sign = -1).
void rotate_pairs(const RopeConfig& rope, int32_t head_dim, int32_t position, const float* inv_freq,
                  double sign, float* x) {
  if (rope.style == STARKV_ROPE_NONE) return;
  const int32_t half = resolved_rotary_dim(rope, head_dim) / 2;
  const bool neox = rope.style == STARKV_ROPE_NEOX;
  for (int32_t i = 0; i < half; ++i) {
    const double angle = sign * static_cast<double>(position) * static_cast<double>(inv_freq[i]);
    const double c = std::cos(angle), s = std::sin(angle);
    const int32_t a = neox ? i : 2 * i;
    const int32_t b = neox ? i + half : 2 * i + 1;
    const double xa = x[a], xb = x[b];
    x[a] = static_cast<float>(xa * c - xb * s);
    x[b] = static_cast<float>(xb * c + xa * s);
  }
}

}  // namespace

void rope_inverse_frequencies(const RopeConfig& rope, int32_t head_dim, float* inv_freq) {
  const int32_t rotary = resolved_rotary_dim(rope, head_dim);
  for (int32_t i = 0; i < rotary / 2; ++i) {
    double f = std::pow(static_cast<double>(rope.theta), -2.0 * i / rotary);
    if (rope.scaling == STARKV_ROPE_SCALING_LINEAR) {
      f /= rope.factor;
    } else if (rope.scaling == STARKV_ROPE_SCALING_LLAMA3) {
      f = llama3_scaled(rope, f);
    }
    inv_freq[i] = static_cast<float>(f);
  }
}

void apply_rope(const RopeConfig& rope, int32_t head_dim, int32_t position, const float* inv_freq,
                float* x) {
  rotate_pairs(rope, head_dim, position, inv_freq, 1.0, x);
}

void apply_inverse_rope(const RopeConfig& rope, int32_t head_dim, int32_t position,
                        const float* inv_freq, float* x) {
  rotate_pairs(rope, head_dim, position, inv_freq, -1.0, x);
}

RopeConfig rope_config_from_params(const starkv_profile_params& params) {
  RopeConfig rope;
  rope.style = params.rope_style;
  rope.rotary_dim = params.rope_dim > 0 ? params.rope_dim : params.head_dim;
  rope.theta = params.rope_theta;
  rope.scaling = params.rope_scaling;
  rope.factor = params.rope_scaling_factor;
  rope.low_freq_factor = params.rope_low_freq_factor;
  rope.high_freq_factor = params.rope_high_freq_factor;
  rope.original_max_position = params.rope_original_max_position;
  return rope;
}

}  // namespace starkv
