// CudaKvCache: the GPU runner's KV cache seam, batched. The CPU runner's KvAttention holds one
// sequence; on the GPU the point is many sequences per step, so here every call takes a batch of
// rows, row i being one new token of sequence seq_ids[i] at positions[i] whose query sees the
// first kv_lengths[i] tokens of its sequence (its own included). A prefill window is n rows of one
// sequence with kv_lengths L+1 .. L+n; a decode step is one row per sequence.
//
// A forward pass calls plan() once, then per layer append() (the rows' pre-RoPE keys and values)
// and attend() (their post-RoPE queries) — starkv's plan/run split, which the dense cache copies
// so both are timed doing the same amount of host work per step. Tensors are device memory;
// index arrays come both as host and device copies (starkv takes host arrays, the dense kernels
// read device ones).
#pragma once

#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace llama_runner {

struct CudaRowBatch {
  int n = 0;
  const int32_t* seq_ids = nullptr;     // host [n]
  const int32_t* positions = nullptr;   // host [n]
  const int32_t* kv_lengths = nullptr;  // host [n]
  const int32_t* seq_ids_dev = nullptr;    // device copies
  const int32_t* positions_dev = nullptr;
};

class CudaKvCache {
 public:
  virtual ~CudaKvCache() = default;

  virtual int32_t create_sequence() = 0;
  virtual void release_sequence(int32_t seq) = 0;

  // Once per forward pass, before the first layer's append.
  virtual void plan(const CudaRowBatch& rows) = 0;
  // k_pre_rope, v: fp32 [n × G·D].
  virtual void append(int layer, const CudaRowBatch& rows, const float* k_pre_rope,
                      const float* v) = 0;
  // q: post-RoPE fp16 [n × H·D], scaled inside by 1/sqrt(D); out: fp16 [n × H·D].
  virtual void attend(int layer, const CudaRowBatch& rows, const __half* q, __half* out) = 0;

  virtual size_t bytes_per_token() const = 0;  // all layers
  virtual size_t bytes_allocated() const = 0;
  virtual size_t bytes_in_use() const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace llama_runner
