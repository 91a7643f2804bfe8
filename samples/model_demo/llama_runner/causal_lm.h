// CausalLm: a decoder together with the KV cache of the one sequence it is running — what
// perplexity and greedy generation need, whatever device the model runs on.
//
// forward() runs n tokens at the given positions (they continue what the cache holds; reset()
// starts a new sequence) and keeps their final hidden states; logits() turns rows of those into
// host fp32 logits. The CPU model (LlamaForward + a KvAttention) and the CUDA model
// (cuda_causal_lm.h) both implement it, so the window logic of perplexity.cpp and the decode loop
// of greedy_generation.cpp exist once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kv_attention.h"
#include "llama_forward.h"
#include "model_config.h"

namespace llama_runner {

class CausalLm {
 public:
  virtual ~CausalLm() = default;
  virtual const ModelConfig& config() const = 0;
  // Drops the cached tokens: the next forward() starts a new sequence.
  virtual void reset() = 0;
  // Runs n tokens through the model, appending their keys and values to the cache.
  virtual void forward(const int32_t* tokens, const int32_t* positions, int n) = 0;
  // Host logits [m × vocab] of hidden rows [row0, row0 + m) of the last forward().
  virtual void logits(int row0, int m, float* out) = 0;
  // Tokens the cache holds, and its memory (allocated, and holding tokens now).
  virtual int64_t cache_tokens() const = 0;
  virtual size_t kv_bytes_allocated() const = 0;
  virtual size_t kv_bytes_in_use() const = 0;
  virtual size_t kv_bytes_per_token() const = 0;
  virtual std::string kv_description() const = 0;
};

// The CPU model over a KvAttention; both must outlive it.
class CpuCausalLm final : public CausalLm {
 public:
  CpuCausalLm(LlamaForward& model, KvAttention& kv) : model_(model), kv_(kv) {}
  const ModelConfig& config() const override { return model_.config(); }
  void reset() override { kv_.reset(); }
  void forward(const int32_t* tokens, const int32_t* positions, int n) override {
    hidden_ = model_.forward(tokens, positions, n, kv_);
  }
  void logits(int row0, int m, float* out) override {
    model_.logits(hidden_ + int64_t(row0) * model_.config().hidden_size, m, out);
  }
  int64_t cache_tokens() const override { return kv_.length(0); }
  size_t kv_bytes_allocated() const override { return kv_.bytes_allocated(); }
  size_t kv_bytes_in_use() const override { return kv_.bytes_in_use(); }
  size_t kv_bytes_per_token() const override { return kv_.bytes_per_token(); }
  std::string kv_description() const override { return kv_.describe(); }
  const KvAttention& kv() const { return kv_; }

 private:
  LlamaForward& model_;
  KvAttention& kv_;
  const float* hidden_ = nullptr;
};

}  // namespace llama_runner
