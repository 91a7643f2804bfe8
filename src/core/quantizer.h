// Low-rank-aware mixed-precision quantization of latent blocks (DESIGN §2.3).
//
// Symmetric mid-rise quantizer with one scale per token per block and 2^b levels:
//   scale  = fp16_round_up(absmax / (2^(b-1) - 0.5))     (stored as fp16; rounded up so that
//                                                          every value is inside the range)
//   code   = clamp(floor(x / scale + 2^(b-1)), 0, 2^b - 1)   (x / scale correctly rounded fp32)
//   x̂     = (code - 2^(b-1) + 0.5) * scale
// so |x - x̂| <= scale / 2 for every x. A zero block (or one with no channels) stores scale 0, its
// codes are 2^(b-1), and it decodes to zeros. A scale past the fp16 range saturates at 65504 (the
// values beyond it then clamp to the end codes), and fp16 latents saturate at +-65504: a stored
// row never holds inf. The same arithmetic runs in the CUDA kernels, so CPU and GPU produce
// identical codes from identical latents.
#pragma once

#include <cstdint>

#include "core/row_layout.h"

namespace starkv {

// The scale of a block as the fp16 bit pattern that is stored.
uint16_t quant_scale_fp16(const float* x, int32_t n, int32_t bits);
// The code of one value given the stored scale (as float).
uint32_t quant_code(float x, float scale, int32_t bits);
// The value a code stands for.
float quant_value(uint32_t code, float scale, int32_t bits);

// Writes code j of a block's bit stream (storage width sb bits) / reads it back.
void pack_code(uint8_t* block, int32_t j, int32_t storage_bits, uint32_t code);
uint32_t unpack_code(const uint8_t* block, int32_t j, int32_t storage_bits);

// Encodes one token's latent row (latent_width floats, already rotated) into row_bytes bytes at
// `row` following `layout`; padding bytes are zeroed.
void encode_row(const RowLayout& layout, const float* latents, uint8_t* row);
// Decodes a stored row back into latent_width floats.
void decode_row(const RowLayout& layout, const uint8_t* row, float* latents);

}  // namespace starkv
