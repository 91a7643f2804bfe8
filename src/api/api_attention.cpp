// Append and attend, and the decode step.
#include "api/guard.h"
#include "api/handles.h"

using namespace starkv;

namespace {

CachePool& pool_of(starkv_cache_pool* pool) {
  require_handle(pool, "pool");
  return *pool->pool;
}

}  // namespace

extern "C" {

starkv_status starkv_append(starkv_cache_pool* pool, int32_t layer, int32_t n_tokens,
                            const int32_t* seq_ids, const int32_t* positions, const void* keys,
                            const void* values, starkv_dtype dtype) {
  return guarded(__func__, [&] {
    pool_of(pool).append(layer, n_tokens, seq_ids, positions, keys, values, dtype);
  });
}

starkv_status starkv_append_latents(starkv_cache_pool* pool, int32_t layer, int32_t n_tokens,
                                    const int32_t* seq_ids, const int32_t* positions,
                                    const void* latents, starkv_dtype dtype) {
  return guarded(__func__, [&] {
    pool_of(pool).append_latents(layer, n_tokens, seq_ids, positions, latents, dtype);
  });
}

starkv_status starkv_decode_step_create(starkv_cache_pool* pool, starkv_decode_step** out) {
  return guarded(__func__, [&] {
    require_handle(pool, "pool");
    require_out(out, "out");
    auto handle = std::make_unique<starkv_decode_step>();
    handle->step = std::make_unique<DecodeStep>(pool->pool);
    *out = handle.release();
  });
}

void starkv_decode_step_destroy(starkv_decode_step* step) { delete step; }

starkv_status starkv_decode_step_plan(starkv_decode_step* step, int32_t n_queries,
                                      const int32_t* seq_ids, const int32_t* kv_lengths) {
  return guarded(__func__, [&] {
    require_handle(step, "step");
    step->step->plan(n_queries, seq_ids, kv_lengths);
  });
}

starkv_status starkv_decode_step_run(starkv_decode_step* step, int32_t layer,
                                     const void* queries, starkv_dtype query_dtype, void* out,
                                     starkv_dtype out_dtype) {
  return guarded(__func__, [&] {
    require_handle(step, "step");
    step->step->run(layer, queries, query_dtype, out, out_dtype);
  });
}

starkv_status starkv_attend(starkv_cache_pool* pool, int32_t layer, int32_t n_queries,
                            const int32_t* seq_ids, const int32_t* kv_lengths,
                            const void* queries, starkv_dtype query_dtype, void* out,
                            starkv_dtype out_dtype) {
  return guarded(__func__, [&] {
    CachePool& p = pool_of(pool);
    require(n_queries >= 1, STARKV_ERR_INVALID_ARGUMENT,
            "n_queries must be at least 1, got " + std::to_string(n_queries));
    require(seq_ids != nullptr, STARKV_ERR_INVALID_ARGUMENT, "seq_ids must not be NULL");
    check_attention_buffers(queries, query_dtype, out, out_dtype);
    std::vector<int32_t> lengths(static_cast<size_t>(n_queries));
    for (int32_t i = 0; i < n_queries; ++i) {
      lengths[static_cast<size_t>(i)] =
          kv_lengths != nullptr ? kv_lengths[i] : p.layer_length(seq_ids[i], layer);
    }
    std::vector<AttendQuery> resolved = p.resolve_queries(layer, n_queries, seq_ids, lengths.data());
    std::unique_ptr<BackendPlan> plan = p.backend().plan(p.profile(), p.storage(), resolved);
    p.backend().attend(p.profile(), p.storage(), layer, resolved, plan.get(), queries,
                       query_dtype, out, out_dtype);
  });
}

}  // extern "C"
