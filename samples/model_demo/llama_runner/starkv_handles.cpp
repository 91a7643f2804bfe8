#include "starkv_handles.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace llama_runner {

void check_starkv(starkv_status status, const char* what) {
  if (status != STARKV_OK) {
    throw std::runtime_error(std::string(what) + ": " + starkv_status_string(status) + ": " +
                             starkv_last_error());
  }
}

std::string describe_starkv_profile(const starkv_profile_info& info) {
  const std::string latents = info.inlier_bits == 32   ? "fp32"
                              : info.inlier_bits == 16 ? "fp16"
                                                       : std::to_string(info.inlier_bits) + "/" +
                                                             std::to_string(info.outlier_bits) +
                                                             "-bit";
  char text[240];
  std::snprintf(text, sizeof text,
                "starkv %.1f%% low-rank (%.1f%% on compressed layers), %s latents, %d of %d layers "
                "uncompressed, %.2fx smaller than fp16",
                100.0 * info.low_rank_compression,
                100.0 * info.low_rank_compression_compressed_layers, latents.c_str(),
                info.n_uncompressed_layers, info.n_layers, info.compression_factor);
  return text;
}

StarkvHandles::StarkvHandles(const starkv_context_params& context, const std::string& profile_path,
                             const ModelConfig& cfg, int64_t capacity_tokens, int max_sequences) {
  check_starkv(starkv_context_create(&context, &ctx), "starkv_context_create");
  try {
    check_starkv(starkv_profile_load(profile_path.c_str(), &profile), "starkv_profile_load");
    info = starkv_profile_info_default();
    check_starkv(starkv_profile_get_info(profile, &info), "starkv_profile_get_info");
    if (info.n_layers != cfg.n_layers || info.n_heads != cfg.n_heads ||
        info.n_kv_heads != cfg.n_kv_heads || info.head_dim != cfg.head_dim) {
      char msg[256];
      std::snprintf(msg, sizeof msg,
                    "the starkv profile %s is for %d layers, H=%d, G=%d, D=%d; the model has %d "
                    "layers, H=%d, G=%d, D=%d",
                    profile_path.c_str(), info.n_layers, info.n_heads, info.n_kv_heads,
                    info.head_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
      throw std::runtime_error(msg);
    }
    starkv_pool_params pp = starkv_pool_params_default();
    pp.capacity_tokens = std::max<int64_t>(capacity_tokens, 1);
    pp.max_sequences = std::max(max_sequences, 1);
    check_starkv(starkv_cache_pool_create(ctx, profile, &pp, &pool), "starkv_cache_pool_create");
    check_starkv(starkv_decode_step_create(pool, &step), "starkv_decode_step_create");
  } catch (...) {
    close();
    throw;
  }
}

StarkvHandles::~StarkvHandles() { close(); }

void StarkvHandles::close() {
  // Dependents first: the step reads the pool, the pool the context. Destroying the profile
  // handle only drops the runner's reference (starkv.h: a pool keeps its profile alive).
  starkv_decode_step_destroy(step);
  starkv_cache_pool_destroy(pool);
  starkv_profile_destroy(profile);
  starkv_context_destroy(ctx);
  step = nullptr;
  pool = nullptr;
  profile = nullptr;
  ctx = nullptr;
}

}  // namespace llama_runner
