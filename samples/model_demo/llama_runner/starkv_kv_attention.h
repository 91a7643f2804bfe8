// The KV cache held by starkv, through its public C ABI only: the reference integration an
// inference engine would copy.
//
//   append  -> starkv_append: the layer's new pre-RoPE keys and values; starkv projects them to
//              latents, rotates and quantizes them into the pool's pages.
//   attend  -> a starkv decode step: planned once per forward call (one window of a prefill, or
//              one generated token) and run for every layer with the post-RoPE queries. A
//              prefill of n tokens is n queries of the same sequence with kv_lengths
//              L+1, L+2, ..., L+n, which makes the one step causal.
//
// One object holds one sequence in its own pool, sized for the longest window.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv_attention.h"
#include "model_config.h"
#include "starkv/starkv.h"
#include "starkv_handles.h"

namespace llama_runner {

class StarkvKvAttention final : public KvAttention {
 public:
  // Loads the profile (a .starkv file built for this model; its shape must match cfg) and
  // reserves a CPU pool for capacity_tokens tokens. n_threads: starkv's CPU workers (0 = one
  // per core).
  StarkvKvAttention(const std::string& profile_path, const ModelConfig& cfg,
                    int64_t capacity_tokens, int n_threads);

  void reset() override;
  int64_t length(int layer) const override;
  void append(int layer, int n, const float* k_pre_rope, const float* v,
              const int32_t* positions) override;
  void attend(int layer, int n, const float* q_post_rope, float* out) override;
  size_t bytes_per_token() const override;
  size_t bytes_allocated() const override;
  size_t bytes_in_use() const override;
  std::string describe() const override;

  const starkv_profile_info& profile_info() const { return starkv_.info; }

 private:
  StarkvHandles starkv_;
  int32_t seq_ = -1;
  std::vector<int32_t> layer_length_;  // tokens appended per layer since the last reset
  // What the current plan covers: planned_n_ queries ending at planned_end_ tokens (0 = none).
  int32_t planned_n_ = 0, planned_end_ = 0;
  std::vector<int32_t> seq_ids_, kv_lengths_;  // scratch for append and plan
  std::string description_;
};

}  // namespace llama_runner
