// A decode step (the FlashInfer plan/run pattern): plan a batch of queries once — which
// sequences, how many tokens each attends, the backend's schedule — then run it for every layer.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/cache_pool.h"

namespace starkv {

class DecodeStep {
 public:
  explicit DecodeStep(std::shared_ptr<CachePool> pool);

  // kv_lengths may be null: each sequence's current length. When a query attends more tokens
  // than its sequence holds yet (planning ahead of this step's appends), the pages those tokens
  // will go to are reserved now, so the appends cannot change the planned page tables.
  void plan(int32_t n_queries, const int32_t* seq_ids, const int32_t* kv_lengths);
  void run(int32_t layer, const void* queries, starkv_dtype query_dtype, void* out,
           starkv_dtype out_dtype);

 private:
  std::shared_ptr<CachePool> pool_;
  bool planned_ = false;
  std::vector<int32_t> seq_ids_;
  std::vector<int32_t> kv_lengths_;
  std::unique_ptr<BackendPlan> backend_plan_;
  uint64_t planned_version_ = 0;
};

// Shared argument checks of attention calls.
void check_attention_buffers(const void* queries, starkv_dtype query_dtype, const void* out,
                             starkv_dtype out_dtype);

}  // namespace starkv
