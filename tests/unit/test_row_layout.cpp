// Row layouts (core/row_layout.h): a hand-computed example, then the invariants the header states,
// checked over many random layer configurations: channels in order, blocks packed back to back
// with the documented byte counts, scales after the codes at an even offset, rows padded to 16.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "core/model_config.h"
#include "core/profile.h"
#include "core/row_layout.h"

namespace starkv {
namespace {

FactorGroup group(int32_t rank, int32_t n_outlier) {
  FactorGroup g;
  g.rank = rank;
  g.n_outlier = n_outlier;
  return g;
}

LayerProfile layer_with(std::vector<FactorGroup> keys, std::vector<FactorGroup> values,
                        int32_t inlier_bits, int32_t outlier_bits) {
  LayerProfile layer;
  layer.keys = std::move(keys);
  layer.values = std::move(values);
  layer.inlier_bits = inlier_bits;
  layer.outlier_bits = outlier_bits;
  return layer;
}

void expect_block(const BlockLayout& b, int32_t first, int32_t n, int32_t bits, int32_t sb,
                  int32_t offset, int32_t count, int32_t scale) {
  EXPECT_EQ(b.first_channel, first);
  EXPECT_EQ(b.n_channels, n);
  EXPECT_EQ(b.bits, bits);
  EXPECT_EQ(b.storage_bits, sb);
  EXPECT_EQ(b.byte_offset, offset);
  EXPECT_EQ(b.byte_count, count);
  EXPECT_EQ(b.scale_offset, scale);
}

TEST(RowLayout, HandComputedMixedPrecisionRow) {
  // One key group of rank 10 (2 outliers) and one value group of rank 5 (1 outlier), 4-bit
  // outliers, 3-bit inliers packed densely:
  //   key outliers   2 x 4 bits =  8 bits -> 1 byte  at 0
  //   key inliers    8 x 3 bits = 24 bits -> 3 bytes at 1
  //   value outlier  1 x 4 bits =  4 bits -> 1 byte  at 4
  //   value inliers  4 x 3 bits = 12 bits -> 2 bytes at 5
  //   scales at 8 (even): key out 8, key in 10, value out 12, value in 14; 16 bytes, no padding.
  const LayerProfile layer = layer_with({group(10, 2)}, {group(5, 1)}, 3, 4);
  QuantConfig quant;
  const RowLayout r = make_row_layout(layer, quant);
  EXPECT_TRUE(r.quantized);
  EXPECT_EQ(r.latent_width, 15);
  EXPECT_EQ(r.row_bytes, 16);
  ASSERT_EQ(r.key_groups.size(), 1u);
  ASSERT_EQ(r.value_groups.size(), 1u);
  expect_block(r.key_groups[0].outlier, 0, 2, 4, 4, 0, 1, 8);
  expect_block(r.key_groups[0].inlier, 2, 8, 3, 3, 1, 3, 10);
  expect_block(r.value_groups[0].outlier, 10, 1, 4, 4, 4, 1, 12);
  expect_block(r.value_groups[0].inlier, 11, 4, 3, 3, 5, 2, 14);

  // The same layer with 3-bit codes in nibbles: key inliers 8 x 4 bits = 4 bytes, value inliers
  // 2 bytes; codes end at 1+4+1+2 = 8, scales 8..15, still 16 bytes.
  quant.pack_3bit_in_nibbles = true;
  const RowLayout n = make_row_layout(layer, quant);
  expect_block(n.key_groups[0].inlier, 2, 8, 3, 4, 1, 4, 10);
  expect_block(n.value_groups[0].outlier, 10, 1, 4, 4, 5, 1, 12);
  expect_block(n.value_groups[0].inlier, 11, 4, 3, 4, 6, 2, 14);
  EXPECT_EQ(n.row_bytes, 16);
}

TEST(RowLayout, SixteenBitLayersStoreFp16LatentsWithoutScales) {
  // The layer's own widths decide: quant says 3-bit, the layer says 16 (an uncompressed layer).
  QuantConfig quant;
  quant.inlier_bits = 3;
  quant.outlier_bits = 8;
  const LayerProfile layer = layer_with({group(4, 1), group(3, 0)}, {group(9, 2)}, 16, 16);
  const RowLayout r = make_row_layout(layer, quant);
  EXPECT_FALSE(r.quantized);
  EXPECT_EQ(r.latent_width, 16);
  EXPECT_EQ(r.row_bytes, 32);  // 16 channels x 2 bytes
  // Outlier blocks are empty; the inlier block is the whole group, channel order kept.
  expect_block(r.key_groups[0].outlier, 0, 0, 16, 16, 0, 0, -1);
  expect_block(r.key_groups[0].inlier, 0, 4, 16, 16, 0, 8, -1);
  expect_block(r.key_groups[1].inlier, 4, 3, 16, 16, 8, 6, -1);
  expect_block(r.value_groups[0].inlier, 7, 9, 16, 16, 14, 18, -1);
  // 16 channels of 2 bytes would be 32 already; 17 channels pad 34 up to 48.
  const RowLayout odd = make_row_layout(layer_with({group(8, 0)}, {group(9, 0)}, 16, 16), quant);
  EXPECT_EQ(odd.row_bytes, 48);
}

TEST(RowLayout, EachLayerUsesItsOwnBitWidths) {
  QuantConfig quant;  // says 16 bits: the layers below override it
  const RowLayout r = make_row_layout(layer_with({group(8, 2)}, {group(8, 2)}, 2, 8), quant);
  EXPECT_TRUE(r.quantized);
  EXPECT_EQ(r.key_groups[0].outlier.bits, 8);
  EXPECT_EQ(r.key_groups[0].outlier.byte_count, 2);  // 2 x 8 bits
  EXPECT_EQ(r.key_groups[0].inlier.bits, 2);
  EXPECT_EQ(r.key_groups[0].inlier.byte_count, 2);  // 6 x 2 bits = 12 bits
  // 16-bit outliers in a quantized layer: fp16 values (2-byte aligned), their scale slot kept at 0.
  const RowLayout f = make_row_layout(layer_with({group(5, 2)}, {group(3, 1)}, 4, 16), quant);
  expect_block(f.key_groups[0].outlier, 0, 2, 16, 16, 0, 4, -1);
  expect_block(f.key_groups[0].inlier, 2, 3, 4, 4, 4, 2, 12);
  expect_block(f.value_groups[0].outlier, 5, 1, 16, 16, 6, 2, -1);
  expect_block(f.value_groups[0].inlier, 6, 2, 4, 4, 8, 1, 16);
  EXPECT_EQ(f.row_bytes, 32);  // codes 0..8, scales 10..17, padded
}

TEST(RowLayout, RejectsUnsupportedWidthsAndOutlierCounts) {
  QuantConfig quant;
  for (int32_t bad : {0, 1, 5, 7, 8, 12, 64}) {
    try {
      make_row_layout(layer_with({group(4, 1)}, {group(4, 1)}, bad, 4), quant);
      FAIL() << "inlier bits " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), STARKV_ERR_INVALID_ARGUMENT);
      EXPECT_NE(std::string(e.what()).find("bits"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(make_row_layout(layer_with({group(4, 1)}, {group(4, 1)}, 3, 3), quant), Error);
  EXPECT_THROW(make_row_layout(layer_with({group(4, 5)}, {group(4, 1)}, 3, 4), quant), Error);
}

// The invariants, over random layers: every width combination, both 3-bit packings, ranks from 1
// up, outlier blocks empty or not.
TEST(RowLayout, InvariantsHoldForRandomLayers) {
  std::mt19937 rng(2024);
  const int32_t inlier_widths[] = {2, 3, 4, 16, 32};
  const int32_t outlier_widths[] = {4, 8, 16};
  for (int iteration = 0; iteration < 3000; ++iteration) {
    const int32_t ib = inlier_widths[rng() % 5];
    const int32_t ob = outlier_widths[rng() % 3];
    QuantConfig quant;
    quant.pack_3bit_in_nibbles = rng() % 2;
    std::vector<FactorGroup> keys, values;
    const int32_t n_keys = 1 + static_cast<int32_t>(rng() % 8), n_values = 1 + static_cast<int32_t>(rng() % 3);
    for (int32_t i = 0; i < n_keys + n_values; ++i) {
      const int32_t rank = 1 + static_cast<int32_t>(rng() % 70);
      const int32_t n_out = static_cast<int32_t>(rng() % (rank + 1)) / (rng() % 2 ? 1 : 4);
      (i < n_keys ? keys : values).push_back(group(rank, n_out));
    }
    const LayerProfile layer = layer_with(keys, values, ib, ob);
    const RowLayout r = make_row_layout(layer, quant);
    SCOPED_TRACE("ib " + std::to_string(ib) + " ob " + std::to_string(ob) + " iteration " +
                 std::to_string(iteration));
    ASSERT_EQ(r.quantized, ib < 16);
    ASSERT_EQ(r.row_bytes % 16, 0);
    ASSERT_EQ(r.latent_width, layer.latent_width());
    ASSERT_EQ(r.key_groups.size(), keys.size());
    ASSERT_EQ(r.value_groups.size(), values.size());

    std::vector<int> owner(static_cast<size_t>(r.row_bytes), 0);  // bytes claimed by blocks/scales
    auto claim = [&](int32_t offset, int32_t count) {
      ASSERT_GE(offset, 0);
      ASSERT_LE(offset + count, r.row_bytes);
      for (int32_t b = offset; b < offset + count; ++b) ASSERT_EQ(owner[b]++, 0) << "byte " << b;
    };
    int32_t channel = 0, code_end = 0;
    std::vector<GroupLayout> all = r.key_groups;
    all.insert(all.end(), r.value_groups.begin(), r.value_groups.end());
    std::vector<FactorGroup> groups = keys;
    groups.insert(groups.end(), values.begin(), values.end());
    for (size_t gi = 0; gi < all.size(); ++gi) {
      const GroupLayout& gl = all[gi];
      const int32_t n_out = r.quantized ? groups[gi].n_outlier : 0;
      ASSERT_EQ(gl.outlier.first_channel, channel);
      ASSERT_EQ(gl.outlier.n_channels, n_out);
      ASSERT_EQ(gl.inlier.first_channel, channel + n_out);
      ASSERT_EQ(gl.inlier.n_channels, groups[gi].rank - n_out);
      channel += groups[gi].rank;
      for (const BlockLayout* b : {&gl.outlier, &gl.inlier}) {
        const bool is_outlier = b == &gl.outlier;
        const int32_t bits = r.quantized ? (is_outlier ? ob : ib) : ib;
        ASSERT_EQ(b->bits, bits);
        ASSERT_EQ(b->storage_bits, bits == 3 && quant.pack_3bit_in_nibbles ? 4 : bits);
        ASSERT_EQ(b->byte_count, (b->n_channels * b->storage_bits + 7) / 8);
        if (b->bits >= 16) {
          ASSERT_EQ(b->byte_offset % (b->bits / 8), 0);  // fp16/fp32 values are aligned
        }
        // Blocks follow one another in order: each starts at or just after (alignment) the end of
        // the previous one.
        ASSERT_GE(b->byte_offset, code_end);
        ASSERT_LT(b->byte_offset, code_end + (b->bits >= 16 ? b->bits / 8 : 1));
        code_end = b->byte_offset + b->byte_count;
        claim(b->byte_offset, b->byte_count);
        if (b->bits >= 16) {
          ASSERT_EQ(b->scale_offset, -1);
        }
      }
    }
    int32_t used_end = code_end;
    if (r.quantized) {
      // Scales start at the first even offset after every code: two slots per group, outlier then
      // inlier, groups in order; the slot of a block without a scale (fp16 outliers) is reserved.
      const int32_t scale_base = (code_end + 1) / 2 * 2;
      for (size_t gi = 0; gi < all.size(); ++gi) {
        const int32_t slot = scale_base + 4 * static_cast<int32_t>(gi);
        if (all[gi].outlier.bits < 16) {
          ASSERT_EQ(all[gi].outlier.scale_offset, slot);
          claim(slot, 2);
        }
        ASSERT_EQ(all[gi].inlier.scale_offset, slot + 2);
        claim(slot + 2, 2);
      }
      used_end = scale_base + 4 * static_cast<int32_t>(all.size());
    }
    ASSERT_EQ(r.row_bytes, (used_end + 15) / 16 * 16);  // padded to 16, and no more
  }
}

}  // namespace
}  // namespace starkv
