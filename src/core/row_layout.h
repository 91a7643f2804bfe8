// Where each latent of one token lives inside the token's row of a page (DESIGN §2.3, §5).
//
// A layer's token row is:
//   16/32-bit layers: fp16 (or fp32) latents, key groups then value groups, channel order kept;
//   quantized:        for each group (key groups, then value groups):
//                       outlier block codes (ceil(n_outlier*ob/8) bytes)
//                       inlier block codes  (ceil(n_inlier*ib/8) bytes)
//                     then (at an even offset) the fp16 scales, two per group: outlier, inlier
//                     (a block with no channels, or stored as fp16, keeps its slot, as 0);
//   and the row is padded with zeros to a multiple of 16 bytes. A block of fp16/fp32 values
//   starts at a multiple of 2/4 bytes; packed codes start on any byte.
// Codes of a block form a little-endian bit stream: code j occupies bits [sb*j, sb*j + sb), where
// bit k is bit (k % 8) of byte (k / 8) and sb is the storage width: the code width, except that
// 3-bit codes stored "in nibbles" use sb = 4.
#pragma once

#include <cstdint>
#include <vector>

namespace starkv {

struct LayerProfile;
struct QuantConfig;

struct BlockLayout {
  int32_t first_channel = 0;  // channel index within the layer's latent row
  int32_t n_channels = 0;
  int32_t bits = 16;          // code width: 2, 3, 4, 8, or 16 / 32 (fp16 / fp32 values)
  int32_t storage_bits = 16;  // bits per code in memory (4 for 3-bit nibble packing)
  int32_t byte_offset = 0;    // of the first code within the row
  int32_t byte_count = 0;
  int32_t scale_offset = -1;  // byte offset of this block's fp16 scale, -1 for fp16 latents
};

struct GroupLayout {
  BlockLayout outlier;
  BlockLayout inlier;
};

struct RowLayout {
  bool quantized = false;
  int32_t latent_width = 0;  // channels
  int32_t row_bytes = 0;     // padded to 16
  std::vector<GroupLayout> key_groups;
  std::vector<GroupLayout> value_groups;
};

// Computes the row layout of one layer. For an unquantized layer the outlier blocks are empty and
// the inlier blocks hold the whole group as fp16.
RowLayout make_row_layout(const LayerProfile& layer, const QuantConfig& quant);

}  // namespace starkv
