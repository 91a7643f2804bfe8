#include "starkv_kv_attention.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace llama_runner {

namespace {

starkv_context_params cpu_context(int n_threads) {
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CPU;
  cp.n_threads = n_threads;
  return cp;
}

}  // namespace

// One sequence at a time, so a full-window reservation is all the pool ever needs.
StarkvKvAttention::StarkvKvAttention(const std::string& profile_path, const ModelConfig& cfg,
                                     int64_t capacity_tokens, int n_threads)
    : starkv_(cpu_context(n_threads), profile_path, cfg, capacity_tokens, 1),
      layer_length_(static_cast<size_t>(cfg.n_layers), 0),
      description_(describe_starkv_profile(starkv_.info)) {
  reset();
}

void StarkvKvAttention::reset() {
  if (seq_ >= 0) check_starkv(starkv_seq_release(starkv_.pool, seq_), "starkv_seq_release");
  seq_ = -1;
  check_starkv(starkv_seq_create(starkv_.pool, &seq_), "starkv_seq_create");
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
  check_starkv(starkv_append(starkv_.pool, layer, n, seq_ids_.data(), positions, k_pre_rope, v,
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
    check_starkv(starkv_decode_step_plan(starkv_.step, n, seq_ids_.data(), kv_lengths_.data()),
          "starkv_decode_step_plan");
    planned_n_ = n;
    planned_end_ = stored;
  }
  check_starkv(starkv_decode_step_run(starkv_.step, layer, q_post_rope, STARKV_DTYPE_F32, out, STARKV_DTYPE_F32),
        "starkv_decode_step_run");
}

size_t StarkvKvAttention::bytes_per_token() const {
  return static_cast<size_t>(starkv_.info.bytes_per_token);
}

size_t StarkvKvAttention::bytes_allocated() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(starkv_.pool, &usage), "starkv_cache_pool_get_usage");
  return static_cast<size_t>(usage.capacity_bytes);
}

size_t StarkvKvAttention::bytes_in_use() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(starkv_.pool, &usage), "starkv_cache_pool_get_usage");
  return static_cast<size_t>(usage.used_bytes);
}

std::string StarkvKvAttention::describe() const { return description_; }

}  // namespace llama_runner
