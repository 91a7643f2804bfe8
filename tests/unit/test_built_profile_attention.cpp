// A profile built from weights by SVD, at full rank, through the whole pool: with fp32 latents the
// factors are orthonormal and complete, so attention matches the dense reference to fp32
// rounding (1e-5); with fp16 latents, to fp16 rounding of the latents (2^-11 relative per value,
// ~1e-3 after attention). At 75% it is lossy and must say so by a larger, bounded error.
#include <gtest/gtest.h>

#include <random>

#include "support/api_fixtures.h"
#include "support/reference_attention.h"

using namespace starkv_test;

namespace {

struct BuiltCase {
  float target;
  int32_t bits;
  double tolerance;
};

double built_profile_error(const BuiltCase& c, starkv_decomposition keys,
                           starkv_decomposition values) {
  AttentionShape s;
  s.n_heads = 8;
  s.n_kv_heads = 2;
  s.head_dim = 32;
  const int32_t d = 96, GD = s.n_kv_heads * s.head_dim, T = 150;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w_k(static_cast<size_t>(GD) * d), w_v(static_cast<size_t>(GD) * d),
      x(static_cast<size_t>(T) * d);
  for (float& w : w_k) w = normal(rng) * 0.1f;
  for (float& w : w_v) w = normal(rng) * 0.1f;
  for (float& v : x) v = normal(rng);
  // K = X W_K^T (weights in the HF [out, in] layout).
  std::vector<float> k(static_cast<size_t>(T) * GD), v(static_cast<size_t>(T) * GD);
  for (int32_t t = 0; t < T; ++t)
    for (int32_t o = 0; o < GD; ++o) {
      double ak = 0, av = 0;
      for (int32_t i = 0; i < d; ++i) {
        ak += static_cast<double>(x[static_cast<size_t>(t) * d + i]) * w_k[static_cast<size_t>(o) * d + i];
        av += static_cast<double>(x[static_cast<size_t>(t) * d + i]) * w_v[static_cast<size_t>(o) * d + i];
      }
      k[static_cast<size_t>(t) * GD + o] = static_cast<float>(ak);
      v[static_cast<size_t>(t) * GD + o] = static_cast<float>(av);
    }

  starkv_profile_params p = params_for(s, 1);
  p.hidden_dim = d;
  p.target_compression = c.target;
  p.allocator = STARKV_ALLOC_STATIC;
  p.min_key_rank = 4;  // 75% of 2 heads x 32 dims leaves 13 key channels
  p.key_decomposition = keys;
  p.value_decomposition = values;
  p.inlier_bits = c.bits;
  p.outlier_bits = c.bits >= 16 ? 16 : 8;
  starkv_profile_builder* builder = nullptr;
  EXPECT_EQ(starkv_profile_builder_create(nullptr, &p, &builder), STARKV_OK) << starkv_last_error();
  starkv_layer_data data = starkv_layer_data_default();
  data.w_k = w_k.data();
  data.w_v = w_v.data();
  EXPECT_EQ(starkv_profile_builder_add_layer(builder, 0, &data), STARKV_OK) << starkv_last_error();
  starkv_profile* raw = nullptr;
  EXPECT_EQ(starkv_profile_builder_finish(builder, &raw), STARKV_OK) << starkv_last_error();
  starkv_profile_builder_destroy(builder);
  ProfilePtr profile(raw);

  ContextPtr ctx = make_cpu_context();
  PoolPtr pool = make_pool(ctx.get(), profile.get(), 16, 16);
  int32_t seq = 0;
  EXPECT_EQ(starkv_seq_create(pool.get(), &seq), STARKV_OK);
  std::vector<int32_t> ids(T, seq), pos(T);
  for (int32_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = t;
  EXPECT_EQ(starkv_append(pool.get(), 0, T, ids.data(), pos.data(), k.data(), v.data(),
                          STARKV_DTYPE_F32),
            STARKV_OK)
      << starkv_last_error();
  std::vector<float> q(static_cast<size_t>(s.n_heads) * s.head_dim);
  for (float& e : q) e = normal(rng) * 0.3f;
  const std::vector<float> out = attend(pool.get(), s, 0, {seq}, {T}, q);
  return relative_error(out, reference_attention(s, k, v, q, T));
}

TEST(BuiltProfileAttention, FullRankMatchesDenseAndCompressionIsBounded) {
  const BuiltCase cases[] = {
      {0.0f, 32, 1e-5},   // full rank, fp32 latents: exact up to fp32 rounding
      {0.0f, 16, 2e-3},   // full rank, fp16 latents: fp16 rounding of the latents
      {0.5f, 16, 0.5},    // lossy: random weights have flat spectra, so this is the worst case
      {0.75f, 4, 0.8},
  };
  for (starkv_decomposition keys : {STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT}) {
    for (starkv_decomposition values : {STARKV_DECOMP_JOINT, STARKV_DECOMP_HEADWISE}) {
      double previous = 0.0;
      for (const BuiltCase& c : cases) {
        const double e = built_profile_error(c, keys, values);
        EXPECT_LE(e, c.tolerance) << "target " << c.target << " bits " << c.bits << " keys "
                                  << keys << " values " << values;
        EXPECT_GE(e, previous * 0.99) << "error must not fall as compression grows";
        previous = e;
      }
    }
  }
}

}  // namespace
