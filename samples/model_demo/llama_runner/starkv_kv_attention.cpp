#include "starkv_kv_attention.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace llama_runner {

void check_starkv(starkv_status status, const char* what) {
  if (status != STARKV_OK) {
    throw std::runtime_error(std::string(what) + ": " + starkv_status_string(status) + ": " +
                             starkv_last_error());
  }
}

StarkvKvAttention::StarkvKvAttention(const std::string& profile_path, const ModelConfig& cfg,
                                     int64_t capacity_tokens, int n_threads) {
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CPU;
  cp.n_threads = n_threads;
  check_starkv(starkv_context_create(&cp, &ctx_), "starkv_context_create");
  try {
    check_starkv(starkv_profile_load(profile_path.c_str(), &profile_), "starkv_profile_load");
    info_ = starkv_profile_info_default();
    check_starkv(starkv_profile_get_info(profile_, &info_), "starkv_profile_get_info");
    // A profile built for another model would still load (it is only factors); its shape is what
    // tells them apart.
    if (info_.n_layers != cfg.n_layers || info_.n_heads != cfg.n_heads ||
        info_.n_kv_heads != cfg.n_kv_heads || info_.head_dim != cfg.head_dim) {
      char msg[256];
      std::snprintf(msg, sizeof msg,
                    "the starkv profile %s is for %d layers, H=%d, G=%d, D=%d; the model has %d "
                    "layers, H=%d, G=%d, D=%d",
                    profile_path.c_str(), info_.n_layers, info_.n_heads, info_.n_kv_heads,
                    info_.head_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
      throw std::runtime_error(msg);
    }
    starkv_pool_params pp = starkv_pool_params_default();
    // One sequence at a time, so a full-window reservation is all the pool ever needs.
    pp.capacity_tokens = std::max<int64_t>(capacity_tokens, 1);
    pp.max_sequences = 1;
    check_starkv(starkv_cache_pool_create(ctx_, profile_, &pp, &pool_), "starkv_cache_pool_create");
    check_starkv(starkv_decode_step_create(pool_, &step_), "starkv_decode_step_create");
  } catch (...) {
    starkv_decode_step_destroy(step_);
    starkv_cache_pool_destroy(pool_);
    starkv_profile_destroy(profile_);
    starkv_context_destroy(ctx_);
    throw;
  }
  layer_length_.assign(static_cast<size_t>(info_.n_layers), 0);
  description_ = describe_starkv_profile(info_);
  reset();
}

StarkvKvAttention::~StarkvKvAttention() {
  // Dependents first: the step reads the pool, the pool the context. Destroying the profile
  // handle only drops the runner's reference (starkv.h: a pool keeps its profile alive).
  starkv_decode_step_destroy(step_);
  starkv_cache_pool_destroy(pool_);
  starkv_profile_destroy(profile_);
  starkv_context_destroy(ctx_);
}

void StarkvKvAttention::reset() {
  if (seq_ >= 0) check_starkv(starkv_seq_release(pool_, seq_), "starkv_seq_release");
  seq_ = -1;
  check_starkv(starkv_seq_create(pool_, &seq_), "starkv_seq_create");
  layer_length_.assign(layer_length_.size(), 0);
  // The old plan named the released sequence.
  planned_n_ = planned_end_ = 0;
}

int64_t StarkvKvAttention::length(int layer) const {
  return layer_length_[static_cast<size_t>(layer)];
}

void StarkvKvAttention::append(int layer, int n, const float* k_pre_rope, const float* v,
                               const int32_t* positions) {
  // starkv applies RoPE at each token's index in its sequence, so positions must continue the
  // layer's stored tokens (0, 1, 2, ... from the last reset); it rejects anything else with
  // STARKV_ERR_POSITION, which is how a runner bug would show up here.
  seq_ids_.assign(static_cast<size_t>(n), seq_);
  check_starkv(starkv_append(pool_, layer, n, seq_ids_.data(), positions, k_pre_rope, v,
                      STARKV_DTYPE_F32),
        "starkv_append");
  layer_length_[static_cast<size_t>(layer)] += n;
}

void StarkvKvAttention::attend(int layer, int n, const float* q_post_rope, float* out) {
  // Query i of the n newest tokens sees tokens 0 .. stored - n + i. Every layer of one forward
  // call has the same n and, at its attend, the same stored length, so the plan made at the
  // first layer serves them all (the plan/run split: the schedule is computed once per step).
  const int32_t stored = layer_length_[static_cast<size_t>(layer)];
  if (n != planned_n_ || stored != planned_end_) {
    seq_ids_.assign(static_cast<size_t>(n), seq_);
    kv_lengths_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) kv_lengths_[static_cast<size_t>(i)] = stored - n + i + 1;
    check_starkv(starkv_decode_step_plan(step_, n, seq_ids_.data(), kv_lengths_.data()),
          "starkv_decode_step_plan");
    planned_n_ = n;
    planned_end_ = stored;
  }
  check_starkv(starkv_decode_step_run(step_, layer, q_post_rope, STARKV_DTYPE_F32, out, STARKV_DTYPE_F32),
        "starkv_decode_step_run");
}

size_t StarkvKvAttention::bytes_per_token() const {
  return static_cast<size_t>(info_.bytes_per_token);
}

size_t StarkvKvAttention::bytes_allocated() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(pool_, &usage), "starkv_cache_pool_get_usage");
  return static_cast<size_t>(usage.capacity_bytes);
}

size_t StarkvKvAttention::bytes_in_use() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(pool_, &usage), "starkv_cache_pool_get_usage");
  return static_cast<size_t>(usage.used_bytes);
}

std::string StarkvKvAttention::describe() const { return description_; }

std::string describe_starkv_profile(const starkv_profile_info& info) {
  const std::string latents = info.inlier_bits == 32   ? "fp32"
                              : info.inlier_bits == 16 ? "fp16"
                                                       : std::to_string(info.inlier_bits) + "/" +
                                                             std::to_string(info.outlier_bits) +
                                                             "-bit";
  char text[240];
  std::snprintf(text, sizeof text,
                "starkv %.1f%% low-rank (%.1f%% on compressed layers), %s latents, %d of %d layers "
                "uncompressed, %.2fx smaller than fp16",
                100.0 * info.low_rank_compression,
                100.0 * info.low_rank_compression_compressed_layers, latents.c_str(),
                info.n_uncompressed_layers, info.n_layers, info.compression_factor);
  return text;
}

}  // namespace llama_runner
