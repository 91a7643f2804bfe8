// The exact rotary angle of a position, shared by the attention kernels.
#pragma once

#include <cstdint>

namespace starkv {
namespace kernels {

// cos and sin of position * inv_freq. The CPU forms the angle in double; reducing it mod 2*pi in
// double and then taking sincosf (accurate to an ulp on the reduced range) gives the same floats
// up to an ulp at any position.
__device__ __forceinline__ float2 exact_rotation(int64_t position, float inv_freq) {
  const double two_pi = 6.283185307179586476925, inv_two_pi = 0.15915494309189533577;
  const double angle = static_cast<double>(position) * static_cast<double>(inv_freq);
  float s, c;
  sincosf(static_cast<float>(angle - rint(angle * inv_two_pi) * two_pi), &s, &c);
  return make_float2(c, s);
}

}  // namespace kernels
}  // namespace starkv
