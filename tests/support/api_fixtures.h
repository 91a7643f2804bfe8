// Helpers for tests that go through the public C API: owning wrappers for handles, and profiles
// with known factors (identity factors make the compressed path exact for fp16-exact inputs).
#pragma once

#include <memory>
#include <vector>

#include "starkv/starkv.h"
#include "support/reference_attention.h"

namespace starkv_test {

struct ContextDeleter { void operator()(starkv_context* p) const { starkv_context_destroy(p); } };
struct ProfileDeleter { void operator()(starkv_profile* p) const { starkv_profile_destroy(p); } };
struct PoolDeleter { void operator()(starkv_cache_pool* p) const { starkv_cache_pool_destroy(p); } };
struct StepDeleter { void operator()(starkv_decode_step* p) const { starkv_decode_step_destroy(p); } };
using ContextPtr = std::unique_ptr<starkv_context, ContextDeleter>;
using ProfilePtr = std::unique_ptr<starkv_profile, ProfileDeleter>;
using PoolPtr = std::unique_ptr<starkv_cache_pool, PoolDeleter>;
using StepPtr = std::unique_ptr<starkv_decode_step, StepDeleter>;

ContextPtr make_cpu_context();

// Profile params for a model of this shape (RoPE style and theta copied).
starkv_profile_params params_for(const AttentionShape& s, int32_t n_layers);

// Every layer: head-wise identity keys (rank D per head) and joint identity values (rank G*D).
ProfilePtr make_identity_profile(const AttentionShape& s, int32_t n_layers,
                                 int32_t inlier_bits = 16, int32_t outlier_bits = 16);

PoolPtr make_pool(starkv_context* ctx, starkv_profile* profile, int32_t page_tokens,
                  int64_t capacity_pages, int32_t max_sequences = 64);

// Attends one query per sequence over kv_lengths tokens of a layer; returns [n, H, D] floats.
std::vector<float> attend(starkv_cache_pool* pool, const AttentionShape& s, int32_t layer,
                          const std::vector<int32_t>& seqs, const std::vector<int32_t>& kv_lengths,
                          const std::vector<float>& queries);

}  // namespace starkv_test
