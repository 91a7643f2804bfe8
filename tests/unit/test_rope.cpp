// RoPE (src/core/rope.h): frequencies and scalings as transformers computes them, both pairings,
// partial rotary, and the inverse rotation the distillation loss relies on.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/rope.h"
#include "support/reference_attention.h"

using starkv::RopeConfig;

namespace {

RopeConfig rope_of(starkv_rope_style style, int32_t rotary_dim, float theta = 10000.0f) {
  RopeConfig r;
  r.style = style;
  r.rotary_dim = rotary_dim;
  r.theta = theta;
  return r;
}

std::vector<float> random_vector(int32_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

std::vector<float> frequencies(const RopeConfig& r, int32_t head_dim) {
  std::vector<float> f(static_cast<size_t>(r.rotary_dim / 2));
  starkv::rope_inverse_frequencies(r, head_dim, f.data());
  return f;
}

std::vector<float> rotated(const RopeConfig& r, int32_t head_dim, int32_t position,
                           std::vector<float> x) {
  const std::vector<float> f = frequencies(r, head_dim);
  starkv::apply_rope(r, head_dim, position, f.data(), x.data());
  return x;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

TEST(Rope, InverseFrequenciesAreThetaPowers) {
  const RopeConfig r = rope_of(STARKV_ROPE_NEOX, 64, 10000.0f);
  const std::vector<float> f = frequencies(r, 64);
  for (int32_t i = 0; i < 32; ++i) {
    // Computed in double and rounded once: equal to the correctly rounded value (4 ulp margin).
    EXPECT_FLOAT_EQ(f[static_cast<size_t>(i)],
                    static_cast<float>(std::pow(10000.0, -2.0 * i / 64)));
  }
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  RopeConfig r = rope_of(STARKV_ROPE_NEOX, 32, 10000.0f);
  const std::vector<float> plain = frequencies(r, 32);
  r.scaling = STARKV_ROPE_SCALING_LINEAR;
  r.factor = 4.0f;
  const std::vector<float> scaled = frequencies(r, 32);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_FLOAT_EQ(scaled[i], plain[i] / 4.0f);
}

// transformers' _compute_llama3_parameters, transcribed with its torch.where structure, for
// Llama 3.1 (theta 500000, D 128, factor 8, low 1, high 4, original context 8192).
TEST(Rope, Llama3ScalingMatchesTransformers) {
  RopeConfig r = rope_of(STARKV_ROPE_NEOX, 128, 500000.0f);
  r.scaling = STARKV_ROPE_SCALING_LLAMA3;
  r.factor = 8.0f;
  r.low_freq_factor = 1.0f;
  r.high_freq_factor = 4.0f;
  r.original_max_position = 8192;
  const std::vector<float> f = frequencies(r, 128);

  const double pi = 3.14159265358979323846;
  const double low_freq_wavelen = 8192.0 / 1.0, high_freq_wavelen = 8192.0 / 4.0;
  int kept = 0, divided = 0, blended = 0;
  for (int32_t i = 0; i < 64; ++i) {
    const double inv_freq = 1.0 / std::pow(500000.0, 2.0 * i / 128);
    const double wavelen = 2 * pi / inv_freq;
    double llama = wavelen > low_freq_wavelen ? inv_freq / 8.0 : inv_freq;
    const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
    const double smoothed = (1 - smooth) * llama / 8.0 + smooth * llama;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    if (medium) llama = smoothed;
    kept += wavelen < high_freq_wavelen;
    divided += wavelen > low_freq_wavelen;
    blended += medium;
    EXPECT_NEAR(f[static_cast<size_t>(i)], llama, 1e-6 * llama) << "pair " << i;
  }
  // The three regimes are all exercised by this configuration.
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

// The test suite's independent fp64 RoPE agrees with the library's for both pairings. The
// library rotates in double and rounds once, and its frequencies are fp32: at position p the angle
// error is p * |inv_freq| * 2^-24, so 1e-6 relative covers positions up to ~10.
TEST(Rope, MatchesTheIndependentReference) {
  for (starkv_rope_style style : {STARKV_ROPE_NEOX, STARKV_ROPE_GPTJ}) {
    starkv_test::AttentionShape shape;
    shape.head_dim = 64;
    shape.rope_style = style;
    for (int32_t position : {0, 1, 7}) {
      const std::vector<float> x = random_vector(64, 5 + position);
      std::vector<double> expected(x.begin(), x.end());
      starkv_test::reference_rope(shape, position, expected.data());
      const std::vector<float> got = rotated(rope_of(style, 64), 64, position, x);
      for (size_t c = 0; c < x.size(); ++c) {
        EXPECT_NEAR(got[c], expected[c], 1e-6 * (1.0 + std::fabs(expected[c])))
            << "style " << style << " position " << position << " channel " << c;
      }
    }
  }
}

TEST(Rope, InverseUndoesTheRotationAndNormIsKept) {
  for (starkv_rope_style style : {STARKV_ROPE_NEOX, STARKV_ROPE_GPTJ}) {
    const RopeConfig r = rope_of(style, 128);
    const std::vector<float> f = frequencies(r, 128);
    const std::vector<float> x = random_vector(128, 11);
    std::vector<float> y = x;
    starkv::apply_rope(r, 128, 4093, f.data(), y.data());
    // A rotation: the norm is kept to fp32 rounding (~1e-7 per element, 128 of them).
    EXPECT_NEAR(dot(y, y), dot(x, x), 1e-5 * dot(x, x));
    starkv::apply_inverse_rope(r, 128, 4093, f.data(), y.data());
    for (size_t c = 0; c < x.size(); ++c) EXPECT_NEAR(y[c], x[c], 1e-5);
  }
}

// What makes RoPE positional: scores depend only on the distance between query and key.
TEST(Rope, ScoresDependOnRelativePositionOnly) {
  const RopeConfig r = rope_of(STARKV_ROPE_NEOX, 64);
  const std::vector<float> q = random_vector(64, 1), k = random_vector(64, 2);
  const double near = dot(rotated(r, 64, 10, q), rotated(r, 64, 3, k));
  const double far = dot(rotated(r, 64, 110, q), rotated(r, 64, 103, k));
  EXPECT_NEAR(near, far, 1e-4 * std::sqrt(dot(q, q) * dot(k, k)));
}

TEST(Rope, PartialRotaryRotatesOnlyTheLeadingChannels) {
  const RopeConfig partial = rope_of(STARKV_ROPE_NEOX, 32);
  const std::vector<float> x = random_vector(64, 3);
  const std::vector<float> y = rotated(partial, 64, 9, x);
  // The leading 32 channels rotate as a 32-wide neox head would...
  const std::vector<float> head(x.begin(), x.begin() + 32);
  const std::vector<float> expected = rotated(rope_of(STARKV_ROPE_NEOX, 32), 32, 9, head);
  for (size_t c = 0; c < 32; ++c) EXPECT_FLOAT_EQ(y[c], expected[c]);
  // ...and the rest pass through untouched.
  for (size_t c = 32; c < 64; ++c) EXPECT_EQ(y[c], x[c]);
}

TEST(Rope, NoneLeavesVectorsAlone) {
  const RopeConfig r = rope_of(STARKV_ROPE_NONE, 64);
  const std::vector<float> x = random_vector(64, 4);
  EXPECT_EQ(rotated(r, 64, 1234, x), x);
}

TEST(Rope, ConfigFromParamsResolvesTheRotaryDim) {
  starkv_profile_params p = starkv_profile_params_default();
  p.head_dim = 128;
  p.rope_theta = 500000.0f;
  p.rope_style = STARKV_ROPE_GPTJ;
  EXPECT_EQ(starkv::rope_config_from_params(p).rotary_dim, 128);
  p.rope_dim = 64;
  const RopeConfig r = starkv::rope_config_from_params(p);
  EXPECT_EQ(r.rotary_dim, 64);
  EXPECT_EQ(r.style, STARKV_ROPE_GPTJ);
  EXPECT_EQ(r.theta, 500000.0f);
}
