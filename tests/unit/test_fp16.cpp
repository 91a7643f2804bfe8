// IEEE half and bfloat16 conversions (core/fp16.h), checked against references built here from
// the definitions: every half and bf16 bit pattern, every rounding tie between adjacent halves,
// and random floats against a brute-force nearest-half search. All comparisons are exact: these
// conversions are correctly rounded, so there is no tolerance to state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/fp16.h"

namespace starkv {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The value of a finite half pattern from the definition (sign, 5-bit exponent, 10-bit mantissa).
double half_value_reference(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -24)
                                         : std::ldexp(1024 + mantissa, exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

// All non-negative finite halves in increasing order: index i is the pattern i (0 .. 0x7bff).
const std::vector<double>& positive_halves() {
  static const std::vector<double> values = [] {
    std::vector<double> v;
    for (uint32_t h = 0; h <= 0x7bff; ++h) v.push_back(half_value_reference(static_cast<uint16_t>(h)));
    return v;
  }();
  return values;
}

// The nearest half to a finite float by search, ties to the even pattern, overflow to inf where
// IEEE says so (at or beyond 65520, the midpoint between 65504 and the next power of two).
uint16_t nearest_half_reference(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  const std::vector<double>& v = positive_halves();
  const size_t hi = static_cast<size_t>(std::lower_bound(v.begin(), v.end(), a) - v.begin());
  if (hi < v.size() && v[hi] == a) return static_cast<uint16_t>(sign | hi);
  const size_t lo = hi - 1;  // a > v[0] = 0, so hi >= 1
  if (hi == v.size()) return static_cast<uint16_t>(sign | lo);  // (65504, 65520): rounds down
  const double below = a - v[lo], above = v[hi] - a;
  size_t pick = below < above ? lo : (above < below ? hi : ((lo & 1) == 0 ? lo : hi));
  return static_cast<uint16_t>(sign | pick);
}

TEST(Fp16, HalfToFloatMatchesTheDefinitionForEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    const uint32_t exponent = (h >> 10) & 0x1f;
    if (exponent == 0x1f) {
      if ((h & 0x3ff) == 0) {
        EXPECT_TRUE(std::isinf(f)) << h;
      } else {
        EXPECT_TRUE(std::isnan(f)) << h;
      }
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), half_value_reference(static_cast<uint16_t>(h))) << h;
    EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;  // -0 stays -0
  }
}

TEST(Fp16, EveryHalfPatternRoundTripsThroughFloat) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    EXPECT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(Fp16, TiesBetweenAdjacentHalvesRoundToEven) {
  // The midpoint of two adjacent halves needs 12 significant bits, so it is exact in float, and so
  // are the floats one ulp either side of it.
  const std::vector<double>& v = positive_halves();
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    const float mid = static_cast<float>((v[i] + v[i + 1]) / 2);
    ASSERT_EQ(static_cast<double>(mid), (v[i] + v[i + 1]) / 2);
    const uint16_t even = static_cast<uint16_t>((i & 1) == 0 ? i : i + 1);
    EXPECT_EQ(float_to_half(mid), even) << "tie between patterns " << i << " and " << i + 1;
    EXPECT_EQ(float_to_half(-mid), even | 0x8000);
    EXPECT_EQ(float_to_half(std::nextafter(mid, 0.0f)), i);
    EXPECT_EQ(float_to_half(std::nextafter(mid, 1e9f)), i + 1);
  }
  // Around the top: 65504 is the largest half; the tie with 65536 rounds to "even", i.e. to inf.
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_half(-65520.0f), 0xfc00);
  EXPECT_EQ(float_to_half(1e30f), 0x7c00);
  // Below the smallest subnormal 2^-24: half of it is a tie with zero (even), above rounds up.
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half(-std::ldexp(1.0f, -26)), 0x8000);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Fp16, RandomFloatsRoundToTheNearestHalf) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  int checked = 0;
  for (int i = 0; i < 400000; ++i) {
    // Random bit patterns cover every exponent; most are far outside the half range, so also
    // draw exponents inside it.
    uint32_t u = any_bits(rng);
    if (i % 2 == 0) u = (u & 0x807fffffu) | ((100u + u % 45u) << 23);  // 2^-27 .. 2^17
    const float f = float_of(u);
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(float_to_half(f), nearest_half_reference(f)) << std::hexfloat << f;
    ++checked;
  }
  EXPECT_GT(checked, 300000);
}

TEST(Fp16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(float_to_half(inf), 0x7c00);
  EXPECT_EQ(float_to_half(-inf), 0xfc00);
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  const uint16_t qnan = float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(qnan & 0x7c00, 0x7c00);
  EXPECT_NE(qnan & 0x3ff, 0);
  // A float nan whose payload lives only in the low 13 bits must not become inf.
  const uint16_t low_payload_nan = float_to_half(float_of(0x7f800001u));
  EXPECT_EQ(low_payload_nan & 0x7c00, 0x7c00);
  EXPECT_NE(low_payload_nan & 0x3ff, 0);
}

TEST(Fp16, RoundUpGivesTheSmallestHalfNotBelow) {
  const std::vector<double>& v = positive_halves();
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-30, 15);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::ldexp(mantissa(rng), exponent(rng));
    const uint16_t h = float_to_half_round_up(f);
    if (f > 65504.0f) {
      EXPECT_EQ(h, 0x7c00) << f;  // nothing finite is >= f
      continue;
    }
    ASSERT_LE(h, 0x7bff);
    EXPECT_GE(v[h], static_cast<double>(f)) << f;
    if (h > 0) {
      EXPECT_LT(v[h - 1], static_cast<double>(f)) << f;
    }
  }
  // Exact halves are returned unchanged, including zero and the largest finite half.
  for (uint16_t h = 0; h <= 0x7bff; ++h) {
    ASSERT_EQ(float_to_half_round_up(half_to_float(h)), h);
  }
}

TEST(Bf16, EveryPatternRoundTripsAndMatchesTheDefinition) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    EXPECT_EQ(bits_of(f), b << 16);  // bf16 is the top half of a float, by definition
    EXPECT_EQ(float_to_bf16(f), b) << std::hex << b;
  }
}

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 1.0 (0x3f80) and 1 + 2^-7 (0x3f81): ties go to even.
  EXPECT_EQ(float_to_bf16(float_of(0x3f808000u)), 0x3f80);
  EXPECT_EQ(float_to_bf16(float_of(0x3f818000u)), 0x3f82);
  EXPECT_EQ(float_to_bf16(float_of(0x3f808001u)), 0x3f81);
  EXPECT_EQ(float_to_bf16(float_of(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(float_to_bf16(float_of(0xbf808000u)), 0xbf80);
  // Rounding past the largest finite bf16 gives inf; inf and nan stay what they are.
  EXPECT_EQ(float_to_bf16(float_of(0x7f7f8000u)), 0x7f80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  const uint16_t low_payload_nan = float_to_bf16(float_of(0x7f800001u));
  EXPECT_TRUE(std::isnan(bf16_to_float(low_payload_nan)));
  // Random floats against the definition: the nearer of the two neighbours, ties to even.
  std::mt19937 rng(5);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    const float f = float_of(any_bits(rng));
    if (!std::isfinite(f)) continue;
    // Work with magnitudes: the candidates are |f| truncated to bf16 and the next bf16 up, one
    // bf16 ulp further (2^(e-134) for biased exponent e; a subnormal's ulp is 2^-133), which past
    // the largest finite bf16 is the pattern of inf.
    const uint32_t u = bits_of(f);
    const uint16_t down = static_cast<uint16_t>(u >> 16);
    const double a = std::fabs(static_cast<double>(f));
    const double lo = std::fabs(static_cast<double>(bf16_to_float(down)));
    const int e = static_cast<int>((u >> 23) & 0xff);
    const double hi = lo + std::ldexp(1.0, (e == 0 ? 1 : e) - 134);
    const uint16_t up = static_cast<uint16_t>(down + 1);
    const uint16_t expected =
        a - lo < hi - a ? down : (hi - a < a - lo ? up : ((down & 1) ? up : down));
    ASSERT_EQ(float_to_bf16(f), expected) << std::hexfloat << f;
  }
}

TEST(Fp16, LoadStoreAndConvertEveryDtype) {
  const std::vector<float> values = {0.0f, -1.5f, 3.140625f, 65280.0f, -2.0f, 0.000244140625f};
  for (starkv_dtype dtype : {STARKV_DTYPE_F32, STARKV_DTYPE_F16, STARKV_DTYPE_BF16}) {
    ASSERT_TRUE(is_valid_dtype(dtype));
    // Every value above is exact in all three dtypes, so a round trip must reproduce it.
    std::vector<uint8_t> buffer(values.size() * 4, 0xcd);
    for (size_t i = 0; i < values.size(); ++i) store_from_float(buffer.data(), dtype, i, values[i]);
    std::vector<float> back(values.size());
    convert_to_float(buffer.data(), dtype, values.size(), back.data());
    for (size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(back[i], values[i]) << "dtype " << dtype << " element " << i;
      EXPECT_EQ(load_as_float(buffer.data(), dtype, i), values[i]);
    }
  }
  // Stores round to nearest even like the scalar conversions.
  uint16_t h = 0;
  store_from_float(&h, STARKV_DTYPE_F16, 0, 1.0f + std::ldexp(1.0f, -11));  // tie: 1.0
  EXPECT_EQ(h, 0x3c00);
  store_from_float(&h, STARKV_DTYPE_BF16, 0, 1.0f + std::ldexp(1.0f, -8));  // tie: 1.0
  EXPECT_EQ(h, 0x3f80);
  EXPECT_FALSE(is_valid_dtype(static_cast<starkv_dtype>(3)));
}

}  // namespace
}  // namespace starkv
