// Quantized latents through the whole pool: attention error grows as the bit width shrinks, and
// stays within the bound the quantizer implies. With identity factors the latents are the keys
// and values themselves (Hadamard-rotated), so the only error source is quantization.
#include <gtest/gtest.h>

#include <cmath>

#include "support/api_fixtures.h"
#include "support/reference_attention.h"

using namespace starkv_test;

namespace {

// Relative attention-output error of a profile with these bit widths on random data.
double attention_error(int32_t inlier_bits, int32_t outlier_bits) {
  AttentionShape s;
  s.n_heads = 8;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  ContextPtr ctx = make_cpu_context();
  ProfilePtr profile = make_identity_profile(s, 1, inlier_bits, outlier_bits);
  PoolPtr pool = make_pool(ctx.get(), profile.get(), 32, 16);
  int32_t seq = 0;
  EXPECT_EQ(starkv_seq_create(pool.get(), &seq), STARKV_OK);
  const int32_t T = 200;
  const size_t width = static_cast<size_t>(s.n_kv_heads) * s.head_dim;
  std::vector<float> k = random_half_exact(T * width, 1), v = random_half_exact(T * width, 2);
  std::vector<int32_t> ids(T, seq), pos(T);
  for (int32_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = t;
  EXPECT_EQ(starkv_append(pool.get(), 0, T, ids.data(), pos.data(), k.data(), v.data(),
                          STARKV_DTYPE_F32),
            STARKV_OK)
      << starkv_last_error();
  const std::vector<float> q = random_half_exact(static_cast<size_t>(s.n_heads) * s.head_dim, 3);
  const std::vector<float> out = attend(pool.get(), s, 0, {seq}, {T}, q);
  return relative_error(out, reference_attention(s, k, v, q, T));
}

TEST(QuantizedAttention, ErrorShrinksWithBitsAndStaysBounded) {
  const double e16 = attention_error(16, 16);
  const double e4 = attention_error(4, 8);
  const double e3 = attention_error(3, 4);
  const double e2 = attention_error(2, 4);
  std::printf("attention relative error: fp16 %.2e, 4/8-bit %.3f, 3/4-bit %.3f, 2/4-bit %.3f\n",
              e16, e4, e3, e2);
  // fp16 latents of fp16-exact inputs through an orthonormal rotation: fp16 rounding only.
  EXPECT_LT(e16, 2e-3);
  EXPECT_LT(e4, e3);
  EXPECT_LT(e3, e2);
  // A b-bit mid-rise code errs by at most scale/2 = absmax / (2^b - 1) per channel; for rotated
  // (near Gaussian) blocks absmax is ~3 rms, so the per-channel relative RMS error is about
  // 3 / ((2^b - 1) * sqrt(3)): 0.12 at 4 bits, 0.25 at 3, 0.58 at 2. Attention averages over
  // tokens, so the output error must sit below these.
  EXPECT_LT(e4, 0.12);
  EXPECT_LT(e3, 0.25);
  EXPECT_LT(e2, 0.58);
}

TEST(QuantizedAttention, ProfileReportsBytesOfEachWidth) {
  AttentionShape s;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  // Per token and layer: keys 2 groups of 64 channels, values 1 group of 128 (identity).
  // 4/8-bit: each key group: 12 outliers * 8 bits + 52 * 4 bits = 12 + 26 bytes; values:
  // 25 * 8 bits + 103 * 4 bits = 25 + 52 bytes; codes 2*38 + 77 = 153 bytes, 6 fp16 scales at
  // offset 154 end at 166, padded to 176.
  ProfilePtr p = make_identity_profile(s, 1, 4, 8);
  starkv_profile_info info = starkv_profile_info_default();
  ASSERT_EQ(starkv_profile_get_info(p.get(), &info), STARKV_OK);
  EXPECT_EQ(info.bytes_per_token, 176);
  EXPECT_EQ(info.dense_bytes_per_token, 2 * 2 * 64 * 2);
  EXPECT_NEAR(info.compression, 1.0 - 176.0 / 512.0, 1e-12);
  ProfilePtr p16 = make_identity_profile(s, 1, 16, 16);
  ASSERT_EQ(starkv_profile_get_info(p16.get(), &info), STARKV_OK);
  EXPECT_EQ(info.bytes_per_token, 512);
  EXPECT_NEAR(info.compression, 0.0, 1e-12);
}

}  // namespace
