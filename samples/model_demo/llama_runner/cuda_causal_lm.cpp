#include "cuda_causal_lm.h"

namespace llama_runner {

CudaCausalLm::CudaCausalLm(CudaLlamaForward& model, CudaKvCache& kv) : model_(model), kv_(kv) {
  seq_ = kv_.create_sequence();
}

CudaCausalLm::~CudaCausalLm() {
  try {
    kv_.release_sequence(seq_);
  } catch (...) {
    // Destructors do not throw; the cache is going away with the runner anyway.
  }
}

void CudaCausalLm::reset() {
  kv_.release_sequence(seq_);
  seq_ = kv_.create_sequence();
  length_ = 0;
}

void CudaCausalLm::forward(const int32_t* tokens, const int32_t* positions, int n) {
  // Row i of the window sees the cached tokens and the window's first i + 1 tokens.
  seq_ids_.assign(size_t(n), seq_);
  kv_lengths_.resize(size_t(n));
  for (int i = 0; i < n; ++i) kv_lengths_[size_t(i)] = int32_t(length_ + i + 1);
  model_.forward(tokens, positions, seq_ids_.data(), kv_lengths_.data(), n, kv_);
  length_ += n;
}

void CudaCausalLm::logits(int row0, int m, float* out) {
  const float* z = model_.logits(row0, m);
  const size_t bytes = size_t(m) * size_t(model_.config().vocab_size) * sizeof(float);
  cuda_check(cudaMemcpyAsync(out, z, bytes, cudaMemcpyDeviceToHost, model_.stream()),
             "cudaMemcpyAsync");
  cuda_check(cudaStreamSynchronize(model_.stream()), "logits");
}

}  // namespace llama_runner
