// DenseKvAttention: the baseline KV cache. Keys are rotated by RoPE on append and stored
// post-RoPE, values as given, both in fp32 or fp16, token-major ([token × G·D] per layer, so
// an append is one contiguous write). Attention is exact softmax(q·kᵀ/√D)·v with fp32
// arithmetic; scores and outputs are cblas_sgemm products, one per KV head and query block
// (the query heads of a GQA group are stacked into one matrix, so they share the key read).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv_attention.h"
#include "model_config.h"
#include "rope.h"

namespace llama_runner {

enum class KvStorage { kFp32, kFp16 };

KvStorage parse_kv_storage(const std::string& s);  // "fp32" | "fp16"; throws otherwise

class DenseKvAttention final : public KvAttention {
 public:
  // rope must outlive this object. reserve_tokens pre-allocates room for that many tokens per
  // layer (the cache still grows past it).
  DenseKvAttention(const ModelConfig& cfg, const Rope& rope, KvStorage storage,
                   int64_t reserve_tokens);

  void reset() override;
  int64_t length(int layer) const override { return length_[size_t(layer)]; }
  void append(int layer, int n, const float* k_pre_rope, const float* v,
              const int32_t* positions) override;
  void attend(int layer, int n, const float* q_post_rope, float* out) override;
  size_t bytes_per_token() const override;
  size_t bytes_allocated() const override;
  size_t bytes_in_use() const override;
  std::string describe() const override;

 private:
  // Rows [0, len) of KV head g of a layer's keys (values = false) or values as fp32: a
  // pointer into the store with leading dimension G·D (fp32 storage), or converted into dst
  // with leading dimension D (fp16 storage). *ld receives the leading dimension.
  const float* head_rows(int layer, bool values, int g, int64_t len, std::vector<float>& dst,
                         int* ld) const;

  int n_layers_, n_heads_, n_kv_heads_, head_dim_;
  const Rope& rope_;
  KvStorage storage_;
  int64_t row_;  // G·D: one token's keys (or values) in one layer
  std::vector<int64_t> length_;
  std::vector<std::vector<float>> k32_, v32_;       // per layer, fp32 storage
  std::vector<std::vector<uint16_t>> k16_, v16_;    // per layer, fp16 storage
  // Scratch, reused across calls.
  std::vector<float> rotated_, k_rows_, v_rows_, q_block_, scores_, o_block_;
};

}  // namespace llama_runner
