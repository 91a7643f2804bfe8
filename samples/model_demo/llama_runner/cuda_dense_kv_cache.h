// CudaDenseKvCache: the GPU baseline. Keys (rotated by RoPE on append) and values in fp16, a
// fixed-capacity slab per sequence laid out [layer][slot][KV head][token][D], so one KV head's
// tokens are contiguous and an attention work item streams them with 16-byte loads.
//
// Attention is split-K decode attention (flash-decoding): the plan cuts each row's context into
// chunks so the GPU has several work items per SM; a work item (row, KV head, chunk) reads its
// keys once for all query heads of the GQA group, keeps the scores in shared memory, takes the
// chunk's softmax and reads the values once; a combine kernel merges the chunks per head. It
// reads exactly the dense cache's bytes once per step, which is what a dense fp16 cache costs,
// so it is the baseline starkv is measured against in the same runner.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda_kv_cache.h"
#include "cuda_model_ops.h"
#include "cuda_support.h"
#include "model_config.h"

namespace llama_runner {

class CudaDenseKvCache final : public CudaKvCache {
 public:
  // Reserves max_sequences slabs of capacity_tokens tokens each (throws if the GPU lacks the
  // memory). `rope` (device tables) must outlive the cache and cover every position appended.
  CudaDenseKvCache(const ModelConfig& cfg, const RopeTables& rope, int max_sequences,
                   int64_t capacity_tokens, cudaStream_t stream);

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

  // What a slab of capacity_tokens costs for this model (for sizing a batch to a budget).
  static size_t bytes_per_sequence(const ModelConfig& cfg, int64_t capacity_tokens);

 private:
  // Elements of one layer's key (or value) slabs: the stride between layers.
  int64_t layer_elements() const {
    return int64_t(max_sequences_) * n_kv_heads_ * capacity_ * head_dim_;
  }

  int n_layers_, n_heads_, n_kv_heads_, head_dim_;
  int max_sequences_;
  int64_t capacity_;
  RopeTables rope_;
  cudaStream_t stream_;
  DeviceArray<__half> keys_, values_;
  std::vector<int64_t> length_;  // tokens per slot (layer 0); -1 = free slot
  // The plan: work items (row, KV head, token range) and each row's chunk count.
  int planned_rows_ = 0, planned_items_ = 0;
  std::vector<int32_t> item_host_, row_host_;
  DeviceArray<int32_t> items_;      // [items × 4]: row, kv head, begin, end
  DeviceArray<int32_t> row_info_;   // [rows × 2]: first item, chunks per KV head
  DeviceArray<float> partial_;      // [items × q_per_kv × (D + 2)]: acc, max, sum
};

}  // namespace llama_runner
