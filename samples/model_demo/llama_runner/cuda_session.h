// What the runner's GPU commands build from their options: a stream, the CUDA model and a KV
// cache of the kind --kv names (dense fp16, or starkv:PROFILE on starkv's CUDA backend), and how
// many sequences of a given length fit a memory budget in either.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "cuda_kv_cache.h"
#include "cuda_llama_forward.h"
#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace llama_runner {

// Thrown when the machine has no usable CUDA device (the runner then exits 77, the test
// suite's SKIP code).
struct NoCudaDevice : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class CudaSession {
 public:
  // Throws NoCudaDevice without a usable device. Selects `device`, creates a stream and uploads the model (RoPE tables for table_positions).
  CudaSession(int device, const ModelConfig& cfg, const ModelWeights& weights, const Rope& rope,
              int table_positions);
  ~CudaSession();
  CudaSession(const CudaSession&) = delete;
  CudaSession& operator=(const CudaSession&) = delete;

  // A cache of `kind` for up to max_sequences sequences of up to tokens_per_sequence tokens.
  std::unique_ptr<CudaKvCache> make_kv_cache(const std::string& kind, int max_sequences,
                                             int64_t tokens_per_sequence);
  // Bytes one sequence of tokens_per_sequence tokens reserves in a cache of `kind`.
  size_t bytes_per_sequence(const std::string& kind, int64_t tokens_per_sequence);

  CudaLlamaForward& model() { return *model_; }
  int device() const { return device_; }
  // e.g. "NVIDIA H200, 132 SMs, 139.8 GiB"
  std::string device_description() const;

 private:
  int device_;
  const ModelConfig& cfg_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CudaLlamaForward> model_;
};

}  // namespace llama_runner
