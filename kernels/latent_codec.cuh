// The quantizer of core/quantizer.h and the row layout of core/row_layout.h, on the device.
// Every formula here is the CPU's, operation for operation, so that both backends write the same
// bytes for the same latents and decode the same values:
//   scale = fp16_round_up(absmax / (2^(b-1) - 0.5))      (division correctly rounded: __fdiv_rn)
//   code  = clamp(floor(x / scale + 2^(b-1)), 0, 2^b - 1)
//   x^    = (code - 2^(b-1) + 0.5) * scale
// Codes of a block form a little-endian bit stream of storage_bits per code.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/kernel_api.h"

namespace starkv {
namespace kernels {

// The stored fp16 scale of a block whose largest magnitude is absmax.
// (absmax 0 or NaN: scale 0, which decodes to zeros; a scale past the fp16 range saturates.)
__device__ __forceinline__ uint16_t quant_scale_bits(float absmax, int bits) {
  if (!(absmax > 0.0f)) return 0;
  const float levels = static_cast<float>(1 << (bits - 1)) - 0.5f;
  return __half_as_ushort(__float2half_ru(fminf(__fdiv_rn(absmax, levels), 65504.0f)));
}

// An fp16 latent as stored: saturated to the finite fp16 range, rounded to nearest even.
__device__ __forceinline__ uint16_t fp16_latent_bits(float x) {
  return __half_as_ushort(__float2half_rn(fminf(65504.0f, fmaxf(-65504.0f, x))));
}

__device__ __forceinline__ uint32_t quant_code(float x, float scale, int bits) {
  if (scale == 0.0f) return static_cast<uint32_t>(1 << (bits - 1));  // zero block: mid code
  const float half_levels = static_cast<float>(1 << (bits - 1));
  const float t = __fadd_rn(__fdiv_rn(x, scale), half_levels);
  const uint32_t top = (1u << bits) - 1u;
  if (!(t >= 0.0f)) return 0u;  // also NaN
  if (t >= static_cast<float>(top)) return top;
  return static_cast<uint32_t>(t);
}

__device__ __forceinline__ float quant_value(uint32_t code, float scale, int bits) {
  return (static_cast<float>(code) - (static_cast<float>(1 << (bits - 1)) - 0.5f)) * scale;
}

// Byte k of a block's bit stream, assembled from its codes (one writer per byte: no races).
__device__ __forceinline__ uint8_t pack_byte(const uint8_t* __restrict__ codes, int n_codes, int sb,
                                             int k) {
  const int first_bit = 8 * k;
  int j = first_bit / sb;
  uint32_t byte = 0;
  for (; j < n_codes && j * sb < first_bit + 8; ++j) {
    const int shift = j * sb - first_bit;
    const uint32_t c = codes[j];
    byte |= shift >= 0 ? (c << shift) : (c >> (-shift));
  }
  return static_cast<uint8_t>(byte & 0xffu);
}

}  // namespace kernels
}  // namespace starkv
