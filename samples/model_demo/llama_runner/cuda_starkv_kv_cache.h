// CudaStarkvKvCache: the GPU KV cache held by starkv's CUDA backend, through the public C ABI
// only (the reference an engine would copy): a context on the runner's stream, one pool for all
// sequences, one decode step planned per forward pass and run for every layer.
//   append -> starkv_append (device fp32 pre-RoPE keys and values; host index arrays)
//   attend -> starkv_decode_step_run (device fp16 queries and outputs)
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "cuda_kv_cache.h"
#include "model_config.h"
#include "starkv/starkv.h"
#include "starkv_handles.h"

namespace llama_runner {

class CudaStarkvKvCache final : public CudaKvCache {
 public:
  // Loads the profile (its shape must match cfg) and reserves a pool of capacity_tokens tokens
  // for up to max_sequences sequences on CUDA device `device`.
  CudaStarkvKvCache(const std::string& profile_path, const ModelConfig& cfg, int max_sequences,
                    int64_t capacity_tokens, int device, cudaStream_t stream);

  int32_t create_sequence() override;
  void release_sequence(int32_t seq) override;
  void plan(const CudaRowBatch& rows) override;
  void append(int layer, const CudaRowBatch& rows, const float* k_pre_rope,
              const float* v) override;
  void attend(int layer, const CudaRowBatch& rows, const __half* q, __half* out) override;
  size_t bytes_per_token() const override;
  size_t bytes_allocated() const override;
  size_t bytes_in_use() const override;
  std::string describe() const override;

  const starkv_profile_info& profile_info() const { return starkv_.info; }
  // Pool bytes a sequence of capacity_tokens takes: whole pages.
  size_t bytes_per_sequence(int64_t capacity_tokens) const;

 private:
  StarkvHandles starkv_;
  starkv_pool_usage usage_{};  // page geometry, read once
  std::string description_;
};

}  // namespace llama_runner
