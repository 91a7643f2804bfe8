#include "cuda_starkv_kv_cache.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "starkv_kv_attention.h"

namespace llama_runner {

CudaStarkvKvCache::CudaStarkvKvCache(const std::string& profile_path, const ModelConfig& cfg,
                                     int max_sequences, int64_t capacity_tokens, int device,
                                     cudaStream_t stream) {
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CUDA;
  cp.device = device;
  cp.stream = stream;
  check_starkv(starkv_context_create(&cp, &ctx_), "starkv_context_create (CUDA)");
  try {
    check_starkv(starkv_profile_load(profile_path.c_str(), &profile_), "starkv_profile_load");
    info_ = starkv_profile_info_default();
    check_starkv(starkv_profile_get_info(profile_, &info_), "starkv_profile_get_info");
    if (info_.n_layers != cfg.n_layers || info_.n_heads != cfg.n_heads ||
        info_.n_kv_heads != cfg.n_kv_heads || info_.head_dim != cfg.head_dim)
      throw std::runtime_error("the starkv profile " + profile_path +
                               " was built for another model shape");
    starkv_pool_params pp = starkv_pool_params_default();
    pp.capacity_tokens = std::max<int64_t>(capacity_tokens, 1);
    pp.max_sequences = std::max(max_sequences, 1);
    check_starkv(starkv_cache_pool_create(ctx_, profile_, &pp, &pool_), "starkv_cache_pool_create");
    check_starkv(starkv_decode_step_create(pool_, &step_), "starkv_decode_step_create");
    usage_ = starkv_pool_usage_default();
    check_starkv(starkv_cache_pool_get_usage(pool_, &usage_), "starkv_cache_pool_get_usage");
  } catch (...) {
    starkv_decode_step_destroy(step_);
    starkv_cache_pool_destroy(pool_);
    starkv_profile_destroy(profile_);
    starkv_context_destroy(ctx_);
    throw;
  }
  description_ = describe_starkv_profile(info_) + " on CUDA";
}

CudaStarkvKvCache::~CudaStarkvKvCache() {
  starkv_decode_step_destroy(step_);
  starkv_cache_pool_destroy(pool_);
  starkv_profile_destroy(profile_);
  starkv_context_destroy(ctx_);
}

int32_t CudaStarkvKvCache::create_sequence() {
  int32_t seq = -1;
  check_starkv(starkv_seq_create(pool_, &seq), "starkv_seq_create");
  return seq;
}

void CudaStarkvKvCache::release_sequence(int32_t seq) {
  check_starkv(starkv_seq_release(pool_, seq), "starkv_seq_release");
}

void CudaStarkvKvCache::plan(const CudaRowBatch& rows) {
  check_starkv(starkv_decode_step_plan(step_, rows.n, rows.seq_ids, rows.kv_lengths),
        "starkv_decode_step_plan");
}

void CudaStarkvKvCache::append(int layer, const CudaRowBatch& rows, const float* k_pre_rope,
                               const float* v) {
  check_starkv(starkv_append(pool_, layer, rows.n, rows.seq_ids, rows.positions, k_pre_rope, v,
                      STARKV_DTYPE_F32),
        "starkv_append");
}

void CudaStarkvKvCache::attend(int layer, const CudaRowBatch&, const __half* q, __half* out) {
  check_starkv(starkv_decode_step_run(step_, layer, q, STARKV_DTYPE_F16, out, STARKV_DTYPE_F16),
        "starkv_decode_step_run");
}

size_t CudaStarkvKvCache::bytes_per_token() const { return size_t(info_.bytes_per_token); }

size_t CudaStarkvKvCache::bytes_allocated() const { return size_t(usage_.capacity_bytes); }

size_t CudaStarkvKvCache::bytes_in_use() const {
  starkv_pool_usage usage = starkv_pool_usage_default();
  check_starkv(starkv_cache_pool_get_usage(pool_, &usage), "starkv_cache_pool_get_usage");
  return size_t(usage.used_bytes);
}

size_t CudaStarkvKvCache::bytes_per_sequence(int64_t capacity_tokens) const {
  const int64_t pages = (capacity_tokens + usage_.page_tokens - 1) / usage_.page_tokens;
  return size_t(pages) * size_t(usage_.bytes_per_page);
}

std::string CudaStarkvKvCache::describe() const { return description_; }

}  // namespace llama_runner
