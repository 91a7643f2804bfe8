// The CUDA model as a CausalLm: one sequence in a CudaKvCache, so perplexity and greedy
// generation (perplexity.cpp, greedy_generation.cpp) run on the GPU unchanged. Logits come back
// to the host row block by row block.
#pragma once

#include <vector>

#include "causal_lm.h"
#include "cuda_kv_cache.h"
#include "cuda_llama_forward.h"

namespace llama_runner {

class CudaCausalLm final : public CausalLm {
 public:
  // model and kv must outlive this object.
  CudaCausalLm(CudaLlamaForward& model, CudaKvCache& kv);
  ~CudaCausalLm() override;

  const ModelConfig& config() const override { return model_.config(); }
  void reset() override;
  void forward(const int32_t* tokens, const int32_t* positions, int n) override;
  void logits(int row0, int m, float* out) override;
  int64_t cache_tokens() const override { return length_; }
  size_t kv_bytes_allocated() const override { return kv_.bytes_allocated(); }
  size_t kv_bytes_in_use() const override { return kv_.bytes_in_use(); }
  size_t kv_bytes_per_token() const override { return kv_.bytes_per_token(); }
  std::string kv_description() const override { return kv_.describe(); }
  const CudaKvCache& kv() const { return kv_; }

 private:
  CudaLlamaForward& model_;
  CudaKvCache& kv_;
  int32_t seq_ = -1;
  int64_t length_ = 0;
  std::vector<int32_t> seq_ids_, kv_lengths_;
};

}  // namespace llama_runner
