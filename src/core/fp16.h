// IEEE half and bfloat16 conversions (round to nearest even), and reading caller tensors of any
// supported dtype as float.
#pragma once

#include <cstddef>
#include <cstdint>

#include "starkv/starkv.h"

namespace starkv {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);          // round to nearest even, overflow -> +-inf
uint16_t float_to_half_round_up(float f);  // the smallest half >= f (for f >= 0, finite)
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

// Reads element i of a tensor of the given dtype as float.
float load_as_float(const void* data, starkv_dtype dtype, size_t i);
// Writes element i.
void store_from_float(void* data, starkv_dtype dtype, size_t i, float value);
// Converts n elements to a float array.
void convert_to_float(const void* data, starkv_dtype dtype, size_t n, float* out);
bool is_valid_dtype(starkv_dtype dtype);

}  // namespace starkv
