// The CPU side of the latent codec (quantizer.h). kernels/latent_codec.cuh repeats every formula
// operation for operation; a change here must be made there too.
#include "core/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"

namespace starkv {
namespace {

// 2^(b-1): the code that stands for the middle of the range.
float half_range(int32_t bits) { return static_cast<float>(1u << (bits - 1)); }

void store_float_block(const BlockLayout& b, const float* x, uint8_t* row) {
  uint8_t* dst = row + b.byte_offset;
  for (int32_t j = 0; j < b.n_channels; ++j) {
    if (b.bits == 32) {
      std::memcpy(dst + 4 * j, &x[j], 4);
    } else {
      // Saturate instead of producing inf: a latent beyond fp16 range is an outlier, not a fault.
      const float v = std::min(65504.0f, std::max(-65504.0f, x[j]));
      const uint16_t h = float_to_half(v);
      std::memcpy(dst + 2 * j, &h, 2);
    }
  }
}

void load_float_block(const BlockLayout& b, const uint8_t* row, float* x) {
  const uint8_t* src = row + b.byte_offset;
  for (int32_t j = 0; j < b.n_channels; ++j) {
    if (b.bits == 32) {
      std::memcpy(&x[j], src + 4 * j, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, src + 2 * j, 2);
      x[j] = half_to_float(h);
    }
  }
}

}  // namespace

uint16_t quant_scale_fp16(const float* x, int32_t n, int32_t bits) {
  float absmax = 0.0f;
  for (int32_t j = 0; j < n; ++j) absmax = std::max(absmax, std::fabs(x[j]));
  if (!(absmax > 0.0f)) return 0;  // all zeros (or NaN): scale 0 decodes to zeros
  const float scale = absmax / (half_range(bits) - 0.5f);
  return float_to_half_round_up(std::min(scale, 65504.0f));
}

uint32_t quant_code(float x, float scale, int32_t bits) {
  const uint32_t max_code = (1u << bits) - 1u;
  if (scale == 0.0f) return 1u << (bits - 1);
  const float t = x / scale + half_range(bits);  // two correctly rounded fp32 operations
  if (!(t >= 0.0f)) return 0u;                   // also catches NaN
  if (t >= static_cast<float>(max_code)) return max_code;
  return static_cast<uint32_t>(t);  // floor, t >= 0
}

float quant_value(uint32_t code, float scale, int32_t bits) {
  return (static_cast<float>(code) - (half_range(bits) - 0.5f)) * scale;
}

void pack_code(uint8_t* block, int32_t j, int32_t storage_bits, uint32_t code) {
  const int64_t bit = static_cast<int64_t>(j) * storage_bits;
  const int64_t byte = bit / 8;
  const int32_t shift = static_cast<int32_t>(bit % 8);
  const uint32_t mask = (1u << storage_bits) - 1u;
  const uint32_t window = (mask & code) << shift;
  const uint32_t window_mask = mask << shift;
  block[byte] = static_cast<uint8_t>((block[byte] & ~window_mask) | window);
  if (shift + storage_bits > 8) {
    block[byte + 1] = static_cast<uint8_t>((block[byte + 1] & ~(window_mask >> 8)) | (window >> 8));
  }
}

uint32_t unpack_code(const uint8_t* block, int32_t j, int32_t storage_bits) {
  const int64_t bit = static_cast<int64_t>(j) * storage_bits;
  const int64_t byte = bit / 8;
  const int32_t shift = static_cast<int32_t>(bit % 8);
  uint32_t window = block[byte];
  if (shift + storage_bits > 8) window |= static_cast<uint32_t>(block[byte + 1]) << 8;
  return (window >> shift) & ((1u << storage_bits) - 1u);
}

void encode_row(const RowLayout& layout, const float* latents, uint8_t* row) {
  std::memset(row, 0, static_cast<size_t>(layout.row_bytes));
  auto encode_block = [&](const BlockLayout& b) {
    if (b.n_channels == 0) return;
    const float* x = latents + b.first_channel;
    if (b.bits >= 16) {
      store_float_block(b, x, row);
      return;
    }
    const uint16_t scale_bits = quant_scale_fp16(x, b.n_channels, b.bits);
    std::memcpy(row + b.scale_offset, &scale_bits, 2);
    const float scale = half_to_float(scale_bits);
    for (int32_t j = 0; j < b.n_channels; ++j) {
      pack_code(row + b.byte_offset, j, b.storage_bits, quant_code(x[j], scale, b.bits));
    }
  };
  for (const GroupLayout& g : layout.key_groups) { encode_block(g.outlier); encode_block(g.inlier); }
  for (const GroupLayout& g : layout.value_groups) { encode_block(g.outlier); encode_block(g.inlier); }
}

void decode_row(const RowLayout& layout, const uint8_t* row, float* latents) {
  auto decode_block = [&](const BlockLayout& b) {
    if (b.n_channels == 0) return;
    float* x = latents + b.first_channel;
    if (b.bits >= 16) {
      load_float_block(b, row, x);
      return;
    }
    uint16_t scale_bits;
    std::memcpy(&scale_bits, row + b.scale_offset, 2);
    const float scale = half_to_float(scale_bits);
    for (int32_t j = 0; j < b.n_channels; ++j) {
      x[j] = quant_value(unpack_code(row + b.byte_offset, j, b.storage_bits), scale, b.bits);
    }
  };
  for (const GroupLayout& g : layout.key_groups) { decode_block(g.outlier); decode_block(g.inlier); }
  for (const GroupLayout& g : layout.value_groups) { decode_block(g.outlier); decode_block(g.inlier); }
}

}  // namespace starkv
