#include "cuda_session.h"

#include <cstdio>
#include <stdexcept>

#include "cuda_dense_kv_cache.h"
#include "cuda_starkv_kv_cache.h"

namespace llama_runner {
namespace {

const std::string kStarkvPrefix = "starkv:";

bool is_dense(const std::string& kind) { return kind == "dense" || kind == "dense-fp16"; }

bool is_starkv(const std::string& kind) {
  return kind.compare(0, kStarkvPrefix.size(), kStarkvPrefix) == 0 &&
         kind.size() > kStarkvPrefix.size();
}

// A sequence reserves whole pages of the pool's default size (CudaStarkvKvCache keeps it).
int64_t page_tokens() { return starkv_pool_params_default().page_tokens; }

}  // namespace

CudaSession::CudaSession(int device, const ModelConfig& cfg, const ModelWeights& weights,
                         const Rope& rope, int table_positions)
    : device_(device), cfg_(cfg) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0)
    throw NoCudaDevice(std::string("no usable CUDA device: ") +
                       (status != cudaSuccess ? cudaGetErrorString(status) : "none found"));
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  model_ = std::make_unique<CudaLlamaForward>(cfg, weights, rope, table_positions, stream_);
}

CudaSession::~CudaSession() {
  model_.reset();
  cudaStreamDestroy(stream_);
}

std::unique_ptr<CudaKvCache> CudaSession::make_kv_cache(const std::string& kind,
                                                        int max_sequences,
                                                        int64_t tokens_per_sequence) {
  if (is_dense(kind))
    return std::make_unique<CudaDenseKvCache>(cfg_, model_->rope_tables(), max_sequences,
                                              tokens_per_sequence, stream_);
  if (is_starkv(kind)) {
    const int64_t pages = (tokens_per_sequence + page_tokens() - 1) / page_tokens();
    return std::make_unique<CudaStarkvKvCache>(kind.substr(kStarkvPrefix.size()), cfg_,
                                               max_sequences,
                                               int64_t(max_sequences) * pages * page_tokens(),
                                               device_, stream_);
  }
  throw std::runtime_error("unknown --kv kind '" + kind +
                           "' for CUDA (expected dense, dense-fp16 or starkv:PROFILE)");
}

size_t CudaSession::bytes_per_sequence(const std::string& kind, int64_t tokens_per_sequence) {
  if (is_dense(kind)) return CudaDenseKvCache::bytes_per_sequence(cfg_, tokens_per_sequence);
  if (is_starkv(kind)) {
    // A one-page pool tells the page size in bytes.
    CudaStarkvKvCache probe(kind.substr(kStarkvPrefix.size()), cfg_, 1, page_tokens(), device_,
                            stream_);
    return probe.bytes_per_sequence(tokens_per_sequence);
  }
  throw std::runtime_error("unknown --kv kind '" + kind + "'");
}

std::string CudaSession::device_description() const {
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  char tail[64];
  std::snprintf(tail, sizeof tail, ", %d SMs, %.1f GiB", prop.multiProcessorCount,
                double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return std::string(prop.name) + tail;
}

}  // namespace llama_runner
