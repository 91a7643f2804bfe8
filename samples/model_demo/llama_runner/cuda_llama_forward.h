// The Llama decoder's forward pass on CUDA: the same steps as llama_forward.h, with fp16 weights,
// cuBLAS GEMMs (fp16 inputs, fp32 accumulation and outputs), an fp32 residual stream, and the KV
// cache behind CudaKvCache. A call runs a batch of rows (CudaRowBatch): a prefill window of one
// sequence, or one decode token for each of many sequences.
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <vector>

#include "cuda_kv_cache.h"
#include "cuda_model_ops.h"
#include "cuda_support.h"
#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace llama_runner {

class CudaLlamaForward {
 public:
  // Uploads the weights (as fp16) and RoPE tables for positions [0, table_positions).
  CudaLlamaForward(const ModelConfig& cfg, const ModelWeights& weights, const Rope& rope,
                   int table_positions, cudaStream_t stream);
  ~CudaLlamaForward();
  CudaLlamaForward(const CudaLlamaForward&) = delete;
  CudaLlamaForward& operator=(const CudaLlamaForward&) = delete;

  // Runs n rows (host arrays: token ids, positions, sequence ids, and the KV length each row's
  // query sees, its own token included) through every layer, appending to kv. The final-normed
  // hidden states stay on the device until the next call.
  void forward(const int32_t* tokens, const int32_t* positions, const int32_t* seq_ids,
               const int32_t* kv_lengths, int n, CudaKvCache& kv);

  // Device fp32 logits [m × vocab] of hidden rows [row0, row0 + m) (a buffer this object owns,
  // valid until the next call).
  const float* logits(int row0, int m);
  // Host argmax of each of the first m rows' logits (greedy next tokens), computed on the device.
  void next_tokens(int m, int32_t* out);

  const ModelConfig& config() const { return cfg_; }
  const RopeTables& rope_tables() const { return rope_tables_; }
  cudaStream_t stream() const { return stream_; }
  size_t weight_bytes() const { return weight_bytes_; }

 private:
  struct Layer {
    DeviceArray<float> attn_norm, mlp_norm;
    DeviceArray<__half> wqkv, wo, w_gate_up, w_down;
  };
  // y[n × out] (+)= x[n × in] · W[out × in]ᵀ.
  void linear(const __half* x, int n, int in, const __half* w, int out, float* y,
              bool accumulate);
  void upload_half(const std::vector<float>& host, DeviceArray<__half>& dev);

  const ModelConfig& cfg_;
  cudaStream_t stream_;
  cublasHandle_t cublas_ = nullptr;
  std::vector<Layer> layers_;
  DeviceArray<__half> embed_, lm_head_;  // lm_head_ empty when tied
  DeviceArray<float> final_norm_;
  DeviceArray<float> rope_cos_, rope_sin_;
  RopeTables rope_tables_;
  size_t weight_bytes_ = 0;
  // Per-call buffers, grown to the largest batch seen.
  DeviceArray<int32_t> tokens_, positions_, seq_ids_, next_;
  DeviceArray<float> x_, qkv_, k_, v_, gate_up_, logits_;
  DeviceArray<__half> h_, q_, attn_, act_;
  int rows_ = 0;
};

}  // namespace llama_runner
