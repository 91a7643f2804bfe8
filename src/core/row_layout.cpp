// Row layouts (row_layout.h): the byte map of one token's row, shared by the CPU codec
// (quantizer.cpp) and the CUDA kernels, so it is computed in exactly one place.
#include "core/row_layout.h"

#include <string>

#include "core/error.h"
#include "core/profile.h"

namespace starkv {
namespace {

int32_t storage_bits_for(int32_t bits, bool nibbles) { return bits == 3 && nibbles ? 4 : bits; }

int32_t align_up(int32_t x, int32_t a) { return (x + a - 1) / a * a; }

// Places a block's values at the next suitably aligned offset (floats need their natural
// alignment; packed codes start on any byte) and advances `offset` past them.
void place(BlockLayout& b, int32_t& offset) {
  const int32_t alignment = b.storage_bits >= 16 ? b.storage_bits / 8 : 1;
  offset = align_up(offset, alignment);
  b.byte_offset = offset;
  b.byte_count = (b.n_channels * b.storage_bits + 7) / 8;
  offset += b.byte_count;
}

}  // namespace

RowLayout make_row_layout(const LayerProfile& layer, const QuantConfig& quant) {
  RowLayout layout;
  const int32_t ib = layer.inlier_bits;
  require(ib == 2 || ib == 3 || ib == 4 || ib == 16 || ib == 32, STARKV_ERR_INVALID_ARGUMENT,
          "inlier bits must be 2, 3, 4, 16 or 32, got " + std::to_string(ib));
  layout.quantized = ib < 16;
  const int32_t ob = layout.quantized ? layer.outlier_bits : ib;
  require(!layout.quantized || ob == 4 || ob == 8 || ob == 16, STARKV_ERR_INVALID_ARGUMENT,
          "outlier bits must be 4, 8 or 16, got " + std::to_string(ob));

  int32_t offset = 0, channel = 0;
  auto add_groups = [&](const std::vector<FactorGroup>& groups, std::vector<GroupLayout>& out) {
    for (const FactorGroup& g : groups) {
      GroupLayout gl;
      const int32_t n_outlier = layout.quantized ? g.n_outlier : 0;
      require(g.rank >= 0 && n_outlier >= 0 && n_outlier <= g.rank, STARKV_ERR_INVALID_ARGUMENT,
              "a factor group has " + std::to_string(g.n_outlier) + " outlier channels but rank " +
                  std::to_string(g.rank));
      gl.outlier.first_channel = channel;
      gl.outlier.n_channels = n_outlier;
      gl.outlier.bits = ob;
      gl.outlier.storage_bits = storage_bits_for(ob, quant.pack_3bit_in_nibbles);
      place(gl.outlier, offset);
      gl.inlier.first_channel = channel + n_outlier;
      gl.inlier.n_channels = g.rank - n_outlier;
      gl.inlier.bits = ib;
      gl.inlier.storage_bits = storage_bits_for(ib, quant.pack_3bit_in_nibbles);
      place(gl.inlier, offset);
      channel += g.rank;
      out.push_back(gl);
    }
  };
  add_groups(layer.keys, layout.key_groups);
  add_groups(layer.values, layout.value_groups);
  layout.latent_width = channel;

  if (layout.quantized) {
    // Two fp16 scale slots per group (outlier, inlier), after the codes, at an even offset.
    offset = align_up(offset, 2);
    auto add_scales = [&](std::vector<GroupLayout>& groups) {
      for (GroupLayout& gl : groups) {
        if (gl.outlier.bits < 16) gl.outlier.scale_offset = offset;
        offset += 2;
        gl.inlier.scale_offset = offset;
        offset += 2;
      }
    };
    add_scales(layout.key_groups);
    add_scales(layout.value_groups);
  }
  layout.row_bytes = align_up(offset, 16);
  return layout;
}

}  // namespace starkv
