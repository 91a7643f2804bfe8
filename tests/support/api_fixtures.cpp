#include "support/api_fixtures.h"

#include <gtest/gtest.h>

namespace starkv_test {

ContextPtr make_cpu_context() {
  starkv_context_params cp = starkv_context_params_default();
  starkv_context* ctx = nullptr;
  EXPECT_EQ(starkv_context_create(&cp, &ctx), STARKV_OK) << starkv_last_error();
  return ContextPtr(ctx);
}

starkv_profile_params params_for(const AttentionShape& s, int32_t n_layers) {
  starkv_profile_params p = starkv_profile_params_default();
  p.n_layers = n_layers;
  p.n_heads = s.n_heads;
  p.n_kv_heads = s.n_kv_heads;
  p.head_dim = s.head_dim;
  p.rope_style = s.rope_style;
  p.rope_theta = s.rope_theta;
  p.attention_scale = s.scale;
  return p;
}

ProfilePtr make_identity_profile(const AttentionShape& s, int32_t n_layers, int32_t inlier_bits,
                                 int32_t outlier_bits) {
  starkv_profile_params p = params_for(s, n_layers);
  p.inlier_bits = inlier_bits;
  p.outlier_bits = outlier_bits;
  starkv_profile_builder* builder = nullptr;
  EXPECT_EQ(starkv_profile_builder_create(nullptr, &p, &builder), STARKV_OK) << starkv_last_error();
  const int32_t D = s.head_dim, GD = s.n_kv_heads * s.head_dim;
  std::vector<float> key_down(static_cast<size_t>(s.n_kv_heads) * D * D, 0.0f);
  for (int32_t g = 0; g < s.n_kv_heads; ++g)
    for (int32_t i = 0; i < D; ++i) key_down[(static_cast<size_t>(g) * D + i) * D + i] = 1.0f;
  std::vector<float> value_down(static_cast<size_t>(GD) * GD, 0.0f);
  for (int32_t i = 0; i < GD; ++i) value_down[static_cast<size_t>(i) * GD + i] = 1.0f;
  std::vector<int32_t> key_ranks(static_cast<size_t>(s.n_kv_heads), D);
  std::vector<int32_t> value_ranks{GD};
  for (int32_t l = 0; l < n_layers; ++l) {
    starkv_layer_factors f = starkv_layer_factors_default();
    f.key_decomposition = STARKV_DECOMP_HEADWISE;
    f.value_decomposition = STARKV_DECOMP_JOINT;
    f.key_ranks = key_ranks.data();
    f.key_down = key_down.data();
    f.value_ranks = value_ranks.data();
    f.value_down = value_down.data();
    EXPECT_EQ(starkv_profile_builder_set_layer_factors(builder, l, &f), STARKV_OK)
        << starkv_last_error();
  }
  starkv_profile* profile = nullptr;
  EXPECT_EQ(starkv_profile_builder_finish(builder, &profile), STARKV_OK) << starkv_last_error();
  starkv_profile_builder_destroy(builder);
  return ProfilePtr(profile);
}

PoolPtr make_pool(starkv_context* ctx, starkv_profile* profile, int32_t page_tokens,
                  int64_t capacity_pages, int32_t max_sequences) {
  starkv_pool_params pp = starkv_pool_params_default();
  pp.page_tokens = page_tokens;
  pp.capacity_pages = capacity_pages;
  pp.max_sequences = max_sequences;
  starkv_cache_pool* pool = nullptr;
  EXPECT_EQ(starkv_cache_pool_create(ctx, profile, &pp, &pool), STARKV_OK) << starkv_last_error();
  return PoolPtr(pool);
}

std::vector<float> attend(starkv_cache_pool* pool, const AttentionShape& s, int32_t layer,
                          const std::vector<int32_t>& seqs, const std::vector<int32_t>& kv_lengths,
                          const std::vector<float>& queries) {
  std::vector<float> out(seqs.size() * static_cast<size_t>(s.n_heads) * s.head_dim, -1.0f);
  EXPECT_EQ(starkv_attend(pool, layer, static_cast<int32_t>(seqs.size()), seqs.data(),
                          kv_lengths.data(), queries.data(), STARKV_DTYPE_F32, out.data(),
                          STARKV_DTYPE_F32),
            STARKV_OK)
      << starkv_last_error();
  return out;
}

}  // namespace starkv_test
