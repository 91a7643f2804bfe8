#include "cuda_starkv_kv_cache.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "starkv_handles.h"

namespace llama_runner {

namespace {

starkv_context_params cuda_context(int device, cudaStream_t stream) {
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CUDA;
  cp.device = device;
  cp.stream = stream;
  return cp;
}

}  // namespace

CudaStarkvKvCache::CudaStarkvKvCache(const std::string& profile_path, const ModelConfig& cfg,
                                     int max_sequences, int64_t capacity_tokens, int device,
                                     cudaStream_t stream)
    : starkv_(cuda_context(device, stream), profile_path, cfg, capacity_tokens, max_sequences),
      description_(describe_starkv_profile(starkv_.info) + " on CUDA") {
  usage_ = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(starkv_.pool, &usage_), "starkv_cache_pool_get_usage");
}

int32_t CudaStarkvKvCache::create_sequence() {
  int32_t seq = -1;
  check_starkv(starkv_seq_create(starkv_.pool, &seq), "starkv_seq_create");
  return seq;
}

void CudaStarkvKvCache::release_sequence(int32_t seq) {
  check_starkv(starkv_seq_release(starkv_.pool, seq), "starkv_seq_release");
}

void CudaStarkvKvCache::plan(const CudaRowBatch& rows) {
  check_starkv(starkv_decode_step_plan(starkv_.step, rows.n, rows.seq_ids, rows.kv_lengths),
        "starkv_decode_step_plan");
}

void CudaStarkvKvCache::append(int layer, const CudaRowBatch& rows, const float* k_pre_rope,
                               const float* v) {
  check_starkv(starkv_append(starkv_.pool, layer, rows.n, rows.seq_ids, rows.positions, k_pre_rope, v,
                      STARKV_DTYPE_F32),
        "starkv_append");
}

void CudaStarkvKvCache::attend(int layer, const CudaRowBatch&, const __half* q, __half* out) {
  check_starkv(starkv_decode_step_run(starkv_.step, layer, q, STARKV_DTYPE_F16, out, STARKV_DTYPE_F16),
        "starkv_decode_step_run");
}

size_t CudaStarkvKvCache::bytes_per_token() const { return size_t(starkv_.info.bytes_per_token); }

size_t CudaStarkvKvCache::bytes_allocated() const { return size_t(usage_.capacity_bytes); }

size_t CudaStarkvKvCache::bytes_in_use() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(starkv_.pool, &usage), "starkv_cache_pool_get_usage");
  return size_t(usage.used_bytes);
}

size_t CudaStarkvKvCache::bytes_per_sequence(int64_t capacity_tokens) const {
  const int64_t pages = (capacity_tokens + usage_.page_tokens - 1) / usage_.page_tokens;
  return size_t(pages) * size_t(usage_.bytes_per_page);
}

std::string CudaStarkvKvCache::describe() const { return description_; }

}  // namespace llama_runner
