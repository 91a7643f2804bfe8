#include "core/decode_step.h"

#include <string>

#include "core/error.h"
#include "core/fp16.h"

namespace starkv {

void check_attention_buffers(const void* queries, starkv_dtype query_dtype, const void* out,
                             starkv_dtype out_dtype) {
  require(queries != nullptr && out != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          "queries and out must not be NULL");
  require(is_valid_dtype(query_dtype), STARKV_ERR_DTYPE,
          [&] { return "unknown query dtype " + std::to_string(static_cast<int>(query_dtype)); });
  require(is_valid_dtype(out_dtype), STARKV_ERR_DTYPE,
          [&] { return "unknown output dtype " + std::to_string(static_cast<int>(out_dtype)); });
}

DecodeStep::DecodeStep(std::shared_ptr<CachePool> pool) : pool_(std::move(pool)) {}

void DecodeStep::plan(int32_t n_queries, const int32_t* seq_ids, const int32_t* kv_lengths) {
  require(n_queries >= 1, STARKV_ERR_INVALID_ARGUMENT,
          [&] { return "a step needs at least one query, got " + std::to_string(n_queries); });
  require(seq_ids != nullptr, STARKV_ERR_INVALID_ARGUMENT, "seq_ids must not be NULL");
  std::vector<int32_t> lengths(static_cast<size_t>(n_queries));
  for (int32_t i = 0; i < n_queries; ++i) {
    lengths[static_cast<size_t>(i)] =
        kv_lengths != nullptr ? kv_lengths[i] : pool_->sequence_length(seq_ids[i]);
  }
  // Checks every sequence and length before reserving anything.
  pool_->resolve_queries(-1, n_queries, seq_ids, lengths.data());
  pool_->reserve(n_queries, seq_ids, lengths.data());
  std::vector<AttendQuery> queries = pool_->resolve_queries(-1, n_queries, seq_ids, lengths.data());
  backend_plan_ = pool_->backend().plan(pool_->profile(), pool_->storage(), queries);
  seq_ids_.assign(seq_ids, seq_ids + n_queries);
  kv_lengths_ = std::move(lengths);
  planned_version_ = pool_->page_table_version();
  planned_ = true;
}

void DecodeStep::run(int32_t layer, const void* queries, starkv_dtype query_dtype, void* out,
                     starkv_dtype out_dtype) {
  require(planned_, STARKV_ERR_INVALID_STATE, "run before plan: plan the step first");
  check_attention_buffers(queries, query_dtype, out, out_dtype);
  const int32_t n = static_cast<int32_t>(seq_ids_.size());
  std::vector<AttendQuery> resolved =
      pool_->resolve_queries(layer, n, seq_ids_.data(), kv_lengths_.data());
  if (pool_->page_table_version() != planned_version_) {
    // A fork, release or append elsewhere changed page tables since the plan: plan again (the
    // CUDA backend re-uploads its tables; such a run is not graph-capturable).
    backend_plan_ = pool_->backend().plan(pool_->profile(), pool_->storage(), resolved);
    planned_version_ = pool_->page_table_version();
  }
  pool_->backend().attend(pool_->profile(), pool_->storage(), layer, resolved,
                          backend_plan_.get(), queries, query_dtype, out, out_dtype);
}

}  // namespace starkv
