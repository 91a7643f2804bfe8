// The seam between backend-independent code (profiles, the pool's bookkeeping, validation) and the
// code that owns the cache memory and runs the math on it (src/cpu, src/cuda). Core code talks to
// a backend only through this interface and never includes a CUDA header; a backend never parses a
// file or validates a caller's arguments (the core has done both before it is called).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/profile.h"
#include "starkv/starkv.h"

namespace starkv {

// Memory of one pool: for every layer l, an array [n_pages][page_tokens][row_bytes(l)] of token
// rows (host memory on the CPU backend, device memory on CUDA). Page ids are shared by layers.
class PoolStorage {
 public:
  virtual ~PoolStorage() = default;
  int64_t n_pages = 0;
  int32_t page_tokens = 0;
};

// Where each appended token's row goes, resolved by the pool before the backend is called.
struct AppendTarget {
  int32_t page = 0;  // page id
  int32_t slot = 0;  // token index within the page
};

// One query of an attention batch: the sequence's page table and how many tokens it attends.
struct AttendQuery {
  const int32_t* pages = nullptr;  // page ids, host memory, ceil(kv_length / page_tokens) of them
  int32_t n_pages = 0;
  int32_t kv_length = 0;           // tokens 0 .. kv_length-1 (positions are token indices)
  int32_t seq_id = 0;
};

// Per-batch state a backend prepares once and reuses for every layer (split-K schedule, device
// copies of page tables). The core keeps it inside the decode step.
class BackendPlan {
 public:
  virtual ~BackendPlan() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual starkv_backend kind() const = 0;

  virtual std::unique_ptr<PoolStorage> create_pool_storage(const Profile& profile, int64_t n_pages,
                                                           int32_t page_tokens) = 0;
  // Copies every layer's rows of page src to page dst (copy-on-write).
  virtual void copy_page(const Profile& profile, PoolStorage& storage, int32_t src,
                         int32_t dst) = 0;

  // Throws STARKV_ERR_NUMERICAL when the first `count` values of an append's input hold a NaN or
  // an infinity. Called before anything changes. A backend whose inputs live in device memory may
  // skip the check (reading them back would break graph capture); it must still never write out
  // of bounds on such input.
  virtual void check_append_input(const void* /*data*/, int64_t /*count*/,
                                  starkv_dtype /*dtype*/) const {}

  // Projects (k, v: [n, G, D] pre-RoPE, in `dtype`), rotates (folded), quantizes and stores.
  virtual void append(const Profile& profile, PoolStorage& storage, int32_t layer,
                      const std::vector<AppendTarget>& targets, const void* keys,
                      const void* values, starkv_dtype dtype) = 0;
  // Stores latents an engine computed ([n, latent_width], already rotated).
  virtual void append_latents(const Profile& profile, PoolStorage& storage, int32_t layer,
                              const std::vector<AppendTarget>& targets, const void* latents,
                              starkv_dtype dtype) = 0;

  // Copies n consecutive rows (slots slot .. slot+n-1 of one page) of a layer to / from host
  // memory; used by snapshots.
  virtual void read_rows(const Profile& profile, const PoolStorage& storage, int32_t layer,
                         int32_t page, int32_t slot, int32_t n, uint8_t* host_dst) = 0;
  virtual void write_rows(const Profile& profile, PoolStorage& storage, int32_t layer,
                          int32_t page, int32_t slot, int32_t n, const uint8_t* host_src) = 0;

  // Prepares a batch; may return nullptr when the backend needs no per-batch state.
  virtual std::unique_ptr<BackendPlan> plan(const Profile& profile, const PoolStorage& storage,
                                            const std::vector<AttendQuery>& queries) = 0;
  // queries: post-RoPE [n, H, D] in q_dtype; out: [n, H, D] in out_dtype.
  virtual void attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
                      const std::vector<AttendQuery>& queries, BackendPlan* plan,
                      const void* q, starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) = 0;

  virtual void synchronize() {}
  virtual void set_stream(void* /*stream*/) {}
};

// Factory functions; the CUDA one throws STARKV_ERR_BACKEND_UNAVAILABLE when not built in.
std::unique_ptr<Backend> make_cpu_backend(int32_t n_threads);
std::unique_ptr<Backend> make_cuda_backend(int32_t device, void* stream);
bool cuda_backend_available();

}  // namespace starkv
