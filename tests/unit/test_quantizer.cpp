// The latent quantizer (core/quantizer.h). Two kinds of check:
//  - exactness: encode_row and decode_row against a deliberately naive scalar reference written
//    here from the header comments alone (its own walk over the row, its own fp16 rounding by
//    search, one bit written at a time), byte for byte;
//  - accuracy: |x - x̂| <= scale/2 for every bit width, outlier channels at their own width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "core/model_config.h"
#include "core/profile.h"
#include "core/quantizer.h"
#include "core/row_layout.h"

namespace starkv {
namespace {

// ---- a naive reference, from the header comments -----------------------------------------------

// The value of a finite half pattern, from the definition.
double half_value(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

// The smallest finite half >= s, for 0 <= s <= 65504, by bisection over the ordered positive
// patterns 0x0000..0x7bff.
uint16_t naive_half_round_up(float s) {
  uint32_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (half_value(static_cast<uint16_t>(mid)) >= s) hi = mid; else lo = mid + 1;
  }
  return static_cast<uint16_t>(lo);
}

// The nearest half to x, ties to the even pattern, after saturating x to +-65504.
uint16_t naive_fp16_latent(float x) {
  const double a = std::min(std::fabs(static_cast<double>(x)), 65504.0);
  const uint16_t up = naive_half_round_up(static_cast<float>(a));
  uint16_t pick = up;
  if (up > 0 && half_value(up) != a) {
    const double d_down = a - half_value(static_cast<uint16_t>(up - 1)), d_up = half_value(up) - a;
    if (d_down < d_up || (d_down == d_up && ((up - 1) & 1) == 0)) pick = static_cast<uint16_t>(up - 1);
  }
  return static_cast<uint16_t>(pick | (std::signbit(x) ? 0x8000 : 0));
}

// scale = fp16_round_up(absmax / (2^(b-1) - 0.5)), saturated at the largest finite half; a block
// of zeros has scale 0.
uint16_t naive_scale(const float* x, int32_t n, int32_t bits) {
  float absmax = 0.0f;
  for (int32_t j = 0; j < n; ++j) absmax = std::max(absmax, std::fabs(x[j]));
  if (absmax == 0.0f) return 0;
  const float levels = static_cast<float>(1 << (bits - 1)) - 0.5f;
  const float s = absmax / levels;  // one correctly rounded float division
  return s >= 65504.0f ? 0x7bff : naive_half_round_up(s);
}

// code = clamp(floor(x / scale + 2^(b-1)), 0, 2^b - 1); a zero scale gives the middle code.
uint32_t naive_code(float x, float scale, int32_t bits) {
  const float mid = static_cast<float>(1 << (bits - 1));
  if (scale == 0.0f) return static_cast<uint32_t>(mid);
  const float q = x / scale;  // correctly rounded
  const float t = q + mid;    // correctly rounded
  const double f = std::floor(static_cast<double>(t));
  return static_cast<uint32_t>(std::clamp(f, 0.0, static_cast<double>((1 << bits) - 1)));
}

float naive_value(uint32_t code, float scale, int32_t bits) {
  return (static_cast<float>(code) - static_cast<float>(1 << (bits - 1)) + 0.5f) * scale;
}

// A byte buffer that only ever grows, written one bit at a time.
struct NaiveRow {
  std::vector<uint8_t> bytes;
  void set_bit(int64_t bit, bool value) {
    const size_t byte = static_cast<size_t>(bit / 8);
    if (bytes.size() <= byte) bytes.resize(byte + 1, 0);
    if (value) bytes[byte] = static_cast<uint8_t>(bytes[byte] | (1u << (bit % 8)));
  }
  void put_u16(int32_t offset, uint16_t v) {
    for (int k = 0; k < 16; ++k) set_bit(int64_t{offset} * 8 + k, (v >> k) & 1);
  }
  void put_u32(int32_t offset, uint32_t v) {
    for (int k = 0; k < 32; ++k) set_bit(int64_t{offset} * 8 + k, (v >> k) & 1);
  }
};

// Encodes one token's latents by reading the row_layout.h comment literally.
std::vector<uint8_t> naive_encode(const LayerProfile& layer, const QuantConfig& quant,
                                  const std::vector<float>& latents) {
  NaiveRow row;
  const bool quantized = layer.inlier_bits < 16;
  int32_t offset = 0, channel = 0;
  std::vector<uint16_t> scales;  // two per group, in order
  std::vector<const FactorGroup*> groups;
  for (const FactorGroup& g : layer.keys) groups.push_back(&g);
  for (const FactorGroup& g : layer.values) groups.push_back(&g);
  for (const FactorGroup* g : groups) {
    const int32_t n_out = quantized ? g->n_outlier : 0;
    const int32_t sizes[2] = {n_out, g->rank - n_out};
    const int32_t widths[2] = {quantized ? layer.outlier_bits : layer.inlier_bits, layer.inlier_bits};
    for (int block = 0; block < 2; ++block) {
      const int32_t n = sizes[block], bits = widths[block];
      const float* x = latents.data() + channel;
      if (bits == 16 || bits == 32) {
        offset = (offset + bits / 8 - 1) / (bits / 8) * (bits / 8);  // natural alignment
        for (int32_t j = 0; j < n; ++j) {
          if (bits == 16) {
            row.put_u16(offset + 2 * j, naive_fp16_latent(x[j]));
          } else {
            uint32_t u;
            std::memcpy(&u, &x[j], 4);
            row.put_u32(offset + 4 * j, u);
          }
        }
        offset += n * bits / 8;
        scales.push_back(0);
      } else {
        const int32_t sb = bits == 3 && quant.pack_3bit_in_nibbles ? 4 : bits;
        const uint16_t scale = n > 0 ? naive_scale(x, n, bits) : 0;
        const float s = static_cast<float>(half_value(scale));
        for (int32_t j = 0; j < n; ++j) {
          const uint32_t code = naive_code(x[j], s, bits);
          for (int32_t k = 0; k < sb; ++k) {
            row.set_bit(int64_t{offset} * 8 + int64_t{j} * sb + k, (code >> k) & 1);
          }
        }
        offset += (n * sb + 7) / 8;
        scales.push_back(scale);
      }
      channel += n;
    }
  }
  if (quantized) {
    offset = (offset + 1) / 2 * 2;
    for (uint16_t s : scales) {
      row.put_u16(offset, s);
      offset += 2;
    }
  }
  row.bytes.resize(static_cast<size_t>((offset + 15) / 16 * 16), 0);
  return row.bytes;
}

// ---- test data ------------------------------------------------------------------------------------

FactorGroup group(int32_t rank, int32_t n_outlier) {
  FactorGroup g;
  g.rank = rank;
  g.n_outlier = n_outlier;
  return g;
}

struct LayerCase {
  int32_t inlier_bits, outlier_bits;
  bool nibbles;
};

const LayerCase kLayerCases[] = {
    {2, 4, false}, {2, 8, false}, {3, 4, false}, {3, 4, true}, {3, 8, false}, {3, 8, true},
    {4, 4, false}, {4, 8, false}, {2, 16, false}, {3, 16, true}, {4, 16, false},
    {16, 16, false}, {32, 16, false}};

// Head-wise keys of assorted ranks (odd, even, rank 1, empty outlier blocks) and joint values.
LayerProfile make_layer(const LayerCase& c) {
  LayerProfile layer;
  layer.keys = {group(13, 2), group(8, 0), group(1, 1), group(21, 4), group(16, 3)};
  layer.values = {group(37, 7)};
  layer.inlier_bits = c.inlier_bits;
  layer.outlier_bits = c.outlier_bits;
  return layer;
}

QuantConfig quant_for(const LayerCase& c) {
  QuantConfig q;
  q.inlier_bits = c.inlier_bits;
  q.outlier_bits = c.outlier_bits;
  q.pack_3bit_in_nibbles = c.nibbles;
  return q;
}

// Latents the way they look after projection and rotation, plus the awkward cases: blocks of
// zeros, a lone non-zero, magnitudes from tiny to past the fp16 range, exact ties.
std::vector<float> random_latents(int32_t width, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  const float magnitudes[] = {1e-4f, 1e-2f, 1.0f, 30.0f, 3e3f, 2e5f};
  std::vector<float> x(static_cast<size_t>(width));
  const float magnitude = magnitudes[rng() % 6];
  for (float& v : x) v = normal(rng) * magnitude;
  switch (rng() % 6) {
    case 0: std::fill(x.begin(), x.begin() + width / 3, 0.0f); break;  // zero blocks
    case 1: std::fill(x.begin(), x.end(), 0.0f); x[rng() % width] = magnitude; break;
    case 2: for (float& v : x) v = std::round(v * 4.0f) / 4.0f; break;  // many exact values
    case 3: x[rng() % width] = 1e7f; x[rng() % width] = -1e9f; break;   // saturation
    default: break;
  }
  return x;
}

// ---- the scalar functions -----------------------------------------------------------------------

TEST(Quantizer, ScaleIsAbsmaxOverLevelsRoundedUpToFp16) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (int32_t bits : {2, 3, 4, 8}) {
    const float levels = static_cast<float>(1 << (bits - 1)) - 0.5f;
    for (int i = 0; i < 3000; ++i) {
      std::vector<float> x(1 + rng() % 40);
      const float magnitude = std::ldexp(1.0f, static_cast<int>(rng() % 30) - 15);
      for (float& v : x) v = normal(rng) * magnitude;
      const uint16_t s = quant_scale_fp16(x.data(), static_cast<int32_t>(x.size()), bits);
      ASSERT_EQ(s, naive_scale(x.data(), static_cast<int32_t>(x.size()), bits));
      // Stored rounded up: every value lies inside the quantizer's range.
      float absmax = 0.0f;
      for (float v : x) absmax = std::max(absmax, std::fabs(v));
      ASSERT_GE(half_to_float(s) * levels, absmax * (1.0f - 1e-7f));
      ASSERT_GE(half_to_float(s), absmax / levels);
    }
  }
  // Zeros, the empty block, and -0 all store scale 0.
  const float zeros[4] = {0.0f, -0.0f, 0.0f, 0.0f};
  EXPECT_EQ(quant_scale_fp16(zeros, 4, 4), 0);
  EXPECT_EQ(quant_scale_fp16(zeros, 0, 4), 0);
  // A scale past the fp16 range saturates at 65504 rather than becoming inf.
  const float huge[1] = {1e30f};
  EXPECT_EQ(quant_scale_fp16(huge, 1, 2), 0x7bff);
}

TEST(Quantizer, CodesAndValuesFollowTheFormula) {
  // 2 bits, scale 1: the four levels are -1.5, -0.5, 0.5, 1.5 and the boundaries -1, 0, 1.
  EXPECT_EQ(quant_value(0, 1.0f, 2), -1.5f);
  EXPECT_EQ(quant_value(1, 1.0f, 2), -0.5f);
  EXPECT_EQ(quant_value(2, 1.0f, 2), 0.5f);
  EXPECT_EQ(quant_value(3, 1.0f, 2), 1.5f);
  EXPECT_EQ(quant_code(-1.5f, 1.0f, 2), 0u);
  EXPECT_EQ(quant_code(-1.0f, 1.0f, 2), 1u);  // floor(-1 + 2) = 1
  EXPECT_EQ(quant_code(-0.01f, 1.0f, 2), 1u);
  EXPECT_EQ(quant_code(0.0f, 1.0f, 2), 2u);
  EXPECT_EQ(quant_code(0.99f, 1.0f, 2), 2u);
  EXPECT_EQ(quant_code(1.0f, 1.0f, 2), 3u);
  EXPECT_EQ(quant_code(1.5f, 1.0f, 2), 3u);
  // Out of range values clamp to the end codes.
  for (int32_t bits : {2, 3, 4, 8}) {
    const uint32_t top = (1u << bits) - 1u;
    EXPECT_EQ(quant_code(1e9f, 0.5f, bits), top);
    EXPECT_EQ(quant_code(-1e9f, 0.5f, bits), 0u);
    EXPECT_EQ(quant_code(std::numeric_limits<float>::infinity(), 0.5f, bits), top);
    EXPECT_EQ(quant_code(0.0f, 0.0f, bits), 1u << (bits - 1));  // zero block: decodes to 0
    EXPECT_EQ(quant_value(quant_code(0.0f, 0.0f, bits), 0.0f, bits), 0.0f);
  }
  // Random values against the naive formula.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 200000; ++i) {
    const int32_t bits = std::vector<int32_t>{2, 3, 4, 8}[rng() % 4];
    const float scale = half_to_float(static_cast<uint16_t>(0x0400 + rng() % 0x7000));
    const float x = normal(rng) * scale * static_cast<float>(1 << (bits - 1));
    const uint32_t code = quant_code(x, scale, bits);
    ASSERT_EQ(code, naive_code(x, scale, bits)) << x << " " << scale << " " << bits;
    ASSERT_LT(code, 1u << bits);
    ASSERT_EQ(quant_value(code, scale, bits), naive_value(code, scale, bits));
  }
}

// |x - x̂| <= scale/2 plus float rounding. The rounding: x/scale is correctly rounded, relative
// error 2^-24 on a value below 2^(b-1) <= 128, so at most 2^-17; adding 2^(b-1) rounds by at most
// half an ulp of a value below 256, another 2^-17: together 2^-16 in units of the scale. The
// decoded product rounds once: 2^-24·|x̂|. Tolerance: scale·(1/2 + 2^-15) + 2^-23·|x|.
float error_bound(float x, float scale) {
  return scale * (0.5f + std::ldexp(1.0f, -15)) + std::ldexp(std::fabs(x), -23);
}

TEST(Quantizer, RoundTripErrorIsAtMostHalfAScale) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int32_t bits : {2, 3, 4, 8}) {
    int64_t values = 0;
    for (int block = 0; block < 4000; ++block) {
      std::vector<float> x(1 + rng() % 64);
      const float magnitude = std::ldexp(1.0f, static_cast<int>(rng() % 36) - 20);
      for (float& v : x) v = (block % 2 ? normal(rng) : uniform(rng)) * magnitude;
      const uint16_t s_bits = quant_scale_fp16(x.data(), static_cast<int32_t>(x.size()), bits);
      const float scale = half_to_float(s_bits);
      for (float v : x) {
        const uint32_t code = quant_code(v, scale, bits);
        ASSERT_LE(code, (1u << bits) - 1u);
        const float back = quant_value(code, scale, bits);
        ASSERT_LE(std::fabs(back - v), error_bound(v, scale))
            << "bits " << bits << " x " << v << " scale " << scale << " code " << code;
        ++values;
      }
    }
    EXPECT_GT(values, 100000);
  }
}

// ---- bit packing ----------------------------------------------------------------------------------

TEST(Quantizer, PackedCodesRoundTripForEveryStorageWidth) {
  std::mt19937 rng(5);
  for (int32_t sb : {2, 3, 4, 8}) {
    for (int32_t n : {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 100}) {
      const size_t bytes = static_cast<size_t>((n * sb + 7) / 8);
      std::vector<uint8_t> block(bytes + 2, 0xa5);  // dirty, with guard bytes
      std::vector<uint32_t> codes(static_cast<size_t>(n));
      for (uint32_t& c : codes) c = rng() & ((1u << sb) - 1u);
      for (int32_t j = 0; j < n; ++j) pack_code(block.data(), j, sb, codes[j]);
      for (int32_t j = 0; j < n; ++j) ASSERT_EQ(unpack_code(block.data(), j, sb), codes[j]) << sb << " " << j;
      // Packing overwrites whatever was there but never touches a byte past the block...
      EXPECT_EQ(block[bytes], 0xa5);
      EXPECT_EQ(block[bytes + 1], 0xa5);
      // ...nor the bits of the last byte past the last code.
      const int32_t used_bits = n * sb % 8;
      if (used_bits != 0) {
        EXPECT_EQ(block[bytes - 1] >> used_bits, 0xa5 >> used_bits);
      }
    }
  }
}

TEST(Quantizer, BitStreamIsLittleEndian) {
  // Code j occupies bits [sb·j, sb·j + sb) with bit k = bit (k % 8) of byte (k / 8).
  uint8_t b[3] = {0, 0, 0};
  pack_code(b, 0, 3, 0b101);
  pack_code(b, 2, 3, 0b111);  // bits 6, 7 of byte 0 and bit 0 of byte 1: straddles
  EXPECT_EQ(b[0], 0b11000101);
  EXPECT_EQ(b[1], 0b00000001);
  pack_code(b, 7, 3, 0b110);  // bits 21..23
  EXPECT_EQ(b[2], 0b11000000);
  uint8_t n[2] = {0, 0};
  pack_code(n, 0, 4, 0x3);
  pack_code(n, 1, 4, 0xc);
  pack_code(n, 3, 4, 0x9);
  EXPECT_EQ(n[0], 0xc3);
  EXPECT_EQ(n[1], 0x90);
  uint8_t t[1] = {0};
  pack_code(t, 3, 2, 0b10);
  EXPECT_EQ(t[0], 0b10000000);
}

// ---- whole rows -----------------------------------------------------------------------------------

TEST(Quantizer, EncodeRowIsBitExactAgainstTheNaiveReference) {
  std::mt19937 rng(2718);
  for (const LayerCase& c : kLayerCases) {
    const LayerProfile layer = make_layer(c);
    const QuantConfig quant = quant_for(c);
    const RowLayout layout = make_row_layout(layer, quant);
    SCOPED_TRACE("inlier " + std::to_string(c.inlier_bits) + " outlier " +
                 std::to_string(c.outlier_bits) + (c.nibbles ? " nibbles" : ""));
    for (int token = 0; token < 400; ++token) {
      const std::vector<float> x = random_latents(layout.latent_width, rng);
      const std::vector<uint8_t> expected = naive_encode(layer, quant, x);
      ASSERT_EQ(static_cast<int32_t>(expected.size()), layout.row_bytes);
      std::vector<uint8_t> row(static_cast<size_t>(layout.row_bytes), 0xee);  // padding must be zeroed
      encode_row(layout, x.data(), row.data());
      ASSERT_EQ(row, expected) << "token " << token;
    }
  }
}

TEST(Quantizer, DecodeRowInvertsTheNaiveEncoding) {
  std::mt19937 rng(31);
  for (const LayerCase& c : kLayerCases) {
    const LayerProfile layer = make_layer(c);
    const RowLayout layout = make_row_layout(layer, quant_for(c));
    SCOPED_TRACE("inlier " + std::to_string(c.inlier_bits) + " outlier " + std::to_string(c.outlier_bits));
    for (int token = 0; token < 200; ++token) {
      const std::vector<float> x = random_latents(layout.latent_width, rng);
      const std::vector<uint8_t> row = naive_encode(layer, quant_for(c), x);
      std::vector<float> back(x.size());
      decode_row(layout, row.data(), back.data());
      // Reference decode: each channel from its block's bits and scale, read one bit at a time.
      auto bit = [&](int64_t k) { return (row[static_cast<size_t>(k / 8)] >> (k % 8)) & 1; };
      for (const std::vector<GroupLayout>* groups : {&layout.key_groups, &layout.value_groups}) {
        for (const GroupLayout& g : *groups) {
          for (const BlockLayout* b : {&g.outlier, &g.inlier}) {
            for (int32_t j = 0; j < b->n_channels; ++j) {
              const float got = back[static_cast<size_t>(b->first_channel + j)];
              const float x_j = x[static_cast<size_t>(b->first_channel + j)];
              if (b->bits == 32) {
                ASSERT_EQ(got, x_j);
              } else if (b->bits == 16) {
                ASSERT_EQ(got, static_cast<float>(half_value(naive_fp16_latent(x_j))));
              } else {
                uint32_t code = 0;
                for (int32_t k = 0; k < b->storage_bits; ++k) {
                  code |= static_cast<uint32_t>(bit(int64_t{b->byte_offset} * 8 + int64_t{j} * b->storage_bits + k)) << k;
                }
                const uint16_t s = static_cast<uint16_t>(row[b->scale_offset] | (row[b->scale_offset + 1] << 8));
                ASSERT_EQ(got, naive_value(code, static_cast<float>(half_value(s)), b->bits));
              }
            }
          }
        }
      }
    }
  }
}

// A block with no values and a block of zeros both store scale 0; zeros decode to exactly zero.
TEST(Quantizer, EmptyAndZeroBlocksStoreScaleZero) {
  LayerProfile layer;
  layer.keys = {group(6, 0), group(6, 2)};
  layer.values = {group(10, 3)};
  layer.inlier_bits = 3;
  layer.outlier_bits = 8;
  const RowLayout layout = make_row_layout(layer, QuantConfig{});
  std::vector<float> x(22, 1.0f);
  std::fill(x.begin() + 6, x.begin() + 8, 0.0f);  // the second key group's outliers: zeros
  std::vector<uint8_t> row(static_cast<size_t>(layout.row_bytes), 0xff);
  encode_row(layout, x.data(), row.data());
  auto scale_at = [&](int32_t offset) { return static_cast<uint16_t>(row[offset] | (row[offset + 1] << 8)); };
  EXPECT_EQ(scale_at(layout.key_groups[0].outlier.scale_offset), 0);  // empty block
  EXPECT_EQ(scale_at(layout.key_groups[1].outlier.scale_offset), 0);  // zeros
  EXPECT_NE(scale_at(layout.key_groups[1].inlier.scale_offset), 0);
  std::vector<float> back(x.size(), -1.0f);
  decode_row(layout, row.data(), back.data());
  EXPECT_EQ(back[6], 0.0f);
  EXPECT_EQ(back[7], 0.0f);
  // Every byte past the last scale is padding, zeroed although the buffer held 0xff.
  const int32_t used = layout.value_groups[0].inlier.scale_offset + 2;
  for (int32_t b = used; b < layout.row_bytes; ++b) EXPECT_EQ(row[b], 0) << "byte " << b;
}

// Outlier channels keep their configured width: the layout says so, the stored scale is the
// outlier width's, and the decoded error obeys that width's bound (far tighter than the inliers').
TEST(Quantizer, OutlierChannelsKeepTheirOwnWidth) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  for (const LayerCase& c : {LayerCase{2, 8, false}, LayerCase{3, 8, true}, LayerCase{2, 4, false},
                             LayerCase{3, 4, false}, LayerCase{4, 8, false}}) {
    LayerProfile layer;
    layer.keys = {group(20, 4), group(12, 2)};
    layer.values = {group(40, 8)};
    layer.inlier_bits = c.inlier_bits;
    layer.outlier_bits = c.outlier_bits;
    const RowLayout layout = make_row_layout(layer, quant_for(c));
    const float out_levels = static_cast<float>(1 << (c.outlier_bits - 1)) - 0.5f;
    const float in_levels = static_cast<float>(1 << (c.inlier_bits - 1)) - 0.5f;
    double worst_out = 0.0, worst_in = 0.0;  // error relative to the block's absmax
    for (int token = 0; token < 500; ++token) {
      std::vector<float> x(static_cast<size_t>(layout.latent_width));
      std::vector<uint8_t> row(static_cast<size_t>(layout.row_bytes));
      std::vector<float> back(x.size());
      for (const std::vector<GroupLayout>* groups : {&layout.key_groups, &layout.value_groups}) {
        for (const GroupLayout& g : *groups) {
          ASSERT_EQ(g.outlier.bits, c.outlier_bits);
          ASSERT_EQ(g.inlier.bits, c.inlier_bits);
          ASSERT_EQ(g.outlier.byte_count, (g.outlier.n_channels * c.outlier_bits + 7) / 8);
          // Leading channels carry the range, as singular-value ordering makes them.
          for (int32_t j = 0; j < g.outlier.n_channels; ++j) x[g.outlier.first_channel + j] = 40.0f * normal(rng);
          for (int32_t j = 0; j < g.inlier.n_channels; ++j) x[g.inlier.first_channel + j] = normal(rng);
        }
      }
      encode_row(layout, x.data(), row.data());
      decode_row(layout, row.data(), back.data());
      for (const std::vector<GroupLayout>* groups : {&layout.key_groups, &layout.value_groups}) {
        for (const GroupLayout& g : *groups) {
          for (const BlockLayout* b : {&g.outlier, &g.inlier}) {
            const float levels = b == &g.outlier ? out_levels : in_levels;
            float absmax = 0.0f;
            for (int32_t j = 0; j < b->n_channels; ++j) absmax = std::max(absmax, std::fabs(x[b->first_channel + j]));
            const float scale = half_to_float(static_cast<uint16_t>(row[b->scale_offset] | (row[b->scale_offset + 1] << 8)));
            // The stored scale is this width's: absmax/levels rounded up to fp16 (at most 2^-10
            // relative above it, one fp16 ulp).
            ASSERT_GE(scale, absmax / levels);
            ASSERT_LE(scale, absmax / levels * (1.0f + std::ldexp(1.0f, -10)) + 1e-30f);
            for (int32_t j = 0; j < b->n_channels; ++j) {
              const float v = x[b->first_channel + j];
              const float err = std::fabs(back[b->first_channel + j] - v);
              ASSERT_LE(err, error_bound(v, scale));
              double& worst = b == &g.outlier ? worst_out : worst_in;
              worst = std::max(worst, static_cast<double>(err / absmax));
            }
          }
        }
      }
    }
    // Relative to its block's absmax, the error is at most 1/(2·levels) of its own width.
    EXPECT_LE(worst_out, 0.5 / out_levels * (1 + 1e-3)) << c.outlier_bits;
    EXPECT_LE(worst_in, 0.5 / in_levels * (1 + 1e-3)) << c.inlier_bits;
    if (c.outlier_bits > c.inlier_bits) {
      EXPECT_LT(worst_out, 0.5 / in_levels);  // an inlier-width quantizer could not do this well
    }
  }
}

TEST(Quantizer, ThreeBitCodesRoundTripDenseAndInNibbles) {
  std::mt19937 rng(77);
  LayerProfile layer;
  layer.keys = {group(19, 3), group(5, 1)};
  layer.values = {group(27, 5)};
  layer.inlier_bits = 3;
  layer.outlier_bits = 4;
  QuantConfig dense, nibbles;
  nibbles.pack_3bit_in_nibbles = true;
  const RowLayout a = make_row_layout(layer, dense), b = make_row_layout(layer, nibbles);
  EXPECT_EQ(a.key_groups[0].inlier.byte_count, (16 * 3 + 7) / 8);  // 6 bytes
  EXPECT_EQ(b.key_groups[0].inlier.byte_count, 16 * 4 / 8);        // 8 bytes
  EXPECT_LE(a.row_bytes, b.row_bytes);
  for (int token = 0; token < 300; ++token) {
    const std::vector<float> x = random_latents(a.latent_width, rng);
    std::vector<uint8_t> ra(static_cast<size_t>(a.row_bytes)), rb(static_cast<size_t>(b.row_bytes));
    encode_row(a, x.data(), ra.data());
    encode_row(b, x.data(), rb.data());
    std::vector<float> xa(x.size()), xb(x.size());
    decode_row(a, ra.data(), xa.data());
    decode_row(b, rb.data(), xb.data());
    ASSERT_EQ(xa, xb);  // same values...
    // ...because the codes are the same, only stored 3 or 4 bits apart.
    for (size_t gi = 0; gi < a.key_groups.size(); ++gi) {
      const BlockLayout& da = a.key_groups[gi].inlier;
      const BlockLayout& db = b.key_groups[gi].inlier;
      for (int32_t j = 0; j < da.n_channels; ++j) {
        ASSERT_EQ(unpack_code(ra.data() + da.byte_offset, j, 3), unpack_code(rb.data() + db.byte_offset, j, 4));
      }
    }
  }
}

TEST(Quantizer, Fp16LatentsSaturateInsteadOfOverflowing) {
  LayerProfile layer;
  layer.keys = {group(4, 0)};
  layer.values = {group(4, 0)};
  const RowLayout layout = make_row_layout(layer, QuantConfig{});  // 16-bit
  const std::vector<float> x = {1e6f, -1e6f, 65519.0f, 65520.0f, 1.0f + std::ldexp(1.0f, -11),
                                -std::numeric_limits<float>::infinity(), 3.0e-8f, 0.1f};
  std::vector<uint8_t> row(static_cast<size_t>(layout.row_bytes));
  encode_row(layout, x.data(), row.data());
  std::vector<float> back(x.size());
  decode_row(layout, row.data(), back.data());
  EXPECT_EQ(back[0], 65504.0f);
  EXPECT_EQ(back[1], -65504.0f);
  EXPECT_EQ(back[2], 65504.0f);
  EXPECT_EQ(back[3], 65504.0f);  // would round to inf unsaturated
  EXPECT_EQ(back[4], 1.0f);      // a tie, to even
  EXPECT_EQ(back[5], -65504.0f);
  EXPECT_EQ(back[6], std::ldexp(1.0f, -25) * 2.0f);  // nearest subnormal 2^-24
  EXPECT_EQ(back[7], half_to_float(float_to_half(0.1f)));
}

TEST(Quantizer, Fp32LatentsAreExact) {
  LayerProfile layer;
  layer.keys = {group(3, 1), group(5, 0)};
  layer.values = {group(7, 2)};
  layer.inlier_bits = 32;
  const RowLayout layout = make_row_layout(layer, QuantConfig{});
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(15);
  for (float& v : x) v = normal(rng) * 1e6f;
  std::vector<uint8_t> row(static_cast<size_t>(layout.row_bytes));
  encode_row(layout, x.data(), row.data());
  std::vector<float> back(x.size());
  decode_row(layout, row.data(), back.data());
  EXPECT_EQ(back, x);
}

}  // namespace
}  // namespace starkv
