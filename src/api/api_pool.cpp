// The cache pool, its sequences, and sequence snapshots.
#include <algorithm>
#include <string>

#include "api/guard.h"
#include "api/handles.h"

using namespace starkv;

namespace {

CachePool& pool_of(starkv_cache_pool* pool) {
  require_handle(pool, "pool");
  return *pool->pool;
}

const CachePool& pool_of(const starkv_cache_pool* pool) {
  require_handle(pool, "pool");
  return *pool->pool;
}

}  // namespace

extern "C" {

starkv_pool_params starkv_pool_params_default(void) {
  starkv_pool_params p{};
  p.struct_size = sizeof(p);
  p.page_tokens = 64;
  p.capacity_pages = 0;
  p.capacity_tokens = 65536;
  p.max_sequences = 1024;
  return p;
}

starkv_pool_usage starkv_pool_usage_default(void) {
  starkv_pool_usage u{};
  u.struct_size = sizeof(u);
  return u;
}

starkv_status starkv_cache_pool_create(starkv_context* ctx, starkv_profile* profile,
                                       const starkv_pool_params* params,
                                       starkv_cache_pool** out) {
  return guarded(__func__, [&] {
    require_handle(ctx, "ctx");
    require_handle(profile, "profile");
    require_out(out, "out");
    const starkv_pool_params p =
        merge_params(params, starkv_pool_params_default(), "starkv_pool_params");
    require(p.page_tokens >= 1 && p.page_tokens <= 4096, STARKV_ERR_INVALID_ARGUMENT,
            "page_tokens must be in [1, 4096], got " + std::to_string(p.page_tokens));
    require(p.capacity_pages >= 0 && p.capacity_tokens >= 0, STARKV_ERR_INVALID_ARGUMENT,
            "capacities must not be negative");
    PoolConfig config;
    config.page_tokens = p.page_tokens;
    config.n_pages = p.capacity_pages > 0 ? p.capacity_pages
                                          : (p.capacity_tokens + p.page_tokens - 1) / p.page_tokens;
    config.max_sequences = p.max_sequences;
    auto handle = std::make_unique<starkv_cache_pool>();
    handle->pool = std::make_shared<CachePool>(profile->profile, ctx->backend, config);
    *out = handle.release();
  });
}

void starkv_cache_pool_destroy(starkv_cache_pool* pool) { delete pool; }

starkv_status starkv_cache_pool_get_usage(const starkv_cache_pool* pool, starkv_pool_usage* usage) {
  return guarded(__func__, [&] {
    const CachePool& p = pool_of(pool);
    require_out(usage, "usage");
    starkv_pool_usage r = merge_params(usage, starkv_pool_usage_default(), "starkv_pool_usage");
    const PoolUsage u = p.usage();
    r.page_tokens = p.page_tokens();
    r.total_pages = u.total_pages;
    r.free_pages = u.free_pages;
    r.bytes_per_page = u.bytes_per_page;
    r.capacity_tokens = u.total_pages * p.page_tokens();
    r.capacity_bytes = u.total_pages * u.bytes_per_page;
    r.used_tokens = (u.total_pages - u.free_pages) * p.page_tokens();
    r.used_bytes = (u.total_pages - u.free_pages) * u.bytes_per_page;
    r.stored_tokens = u.stored_tokens;
    r.n_sequences = u.n_sequences;
    std::memcpy(static_cast<void*>(usage), &r, usage->struct_size);
  });
}

starkv_status starkv_seq_create(starkv_cache_pool* pool, int32_t* seq_out) {
  return guarded(__func__, [&] {
    CachePool& p = pool_of(pool);
    require_out(seq_out, "seq_out");
    *seq_out = p.create_sequence();
  });
}

starkv_status starkv_seq_fork(starkv_cache_pool* pool, int32_t parent, int32_t* child_out) {
  return guarded(__func__, [&] {
    CachePool& p = pool_of(pool);
    require_out(child_out, "child_out");
    *child_out = p.fork_sequence(parent);
  });
}

starkv_status starkv_seq_release(starkv_cache_pool* pool, int32_t seq) {
  return guarded(__func__, [&] { pool_of(pool).release_sequence(seq); });
}

starkv_status starkv_seq_length(const starkv_cache_pool* pool, int32_t seq, int32_t* length) {
  return guarded(__func__, [&] {
    const CachePool& p = pool_of(pool);
    require_out(length, "length");
    *length = p.sequence_length(seq);
  });
}

starkv_status starkv_seq_export(starkv_cache_pool* pool, int32_t seq, void* buffer,
                                size_t capacity, size_t* size_out) {
  return guarded(__func__, [&] {
    CachePool& p = pool_of(pool);
    require_out(size_out, "size_out");
    const std::vector<uint8_t> bytes = p.export_sequence(seq);
    *size_out = bytes.size();
    if (buffer == nullptr) return;  // a size query
    require(capacity >= bytes.size(), STARKV_ERR_BUFFER_TOO_SMALL,
            "the snapshot needs " + std::to_string(bytes.size()) + " bytes, the buffer holds " +
                std::to_string(capacity));
    std::copy(bytes.begin(), bytes.end(), static_cast<uint8_t*>(buffer));
  });
}

starkv_status starkv_seq_import(starkv_cache_pool* pool, const void* buffer, size_t size,
                                int32_t* seq_out) {
  return guarded(__func__, [&] {
    CachePool& p = pool_of(pool);
    require_out(seq_out, "seq_out");
    require(buffer != nullptr, STARKV_ERR_INVALID_ARGUMENT, "buffer must not be NULL");
    *seq_out = p.import_sequence(buffer, size);
  });
}

}  // extern "C"
