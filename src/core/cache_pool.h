// The cache pool: pages of quantized latent rows (memory owned by a backend), the sequences that
// use them, and every check that keeps a bad call from changing anything. Each mutating call
// validates all of its arguments and counts the pages it needs before it touches any state, so a
// failed call (bad argument, full pool) leaves every sequence exactly as it was.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/page_allocator.h"
#include "core/profile.h"

namespace starkv {

struct SequenceSnapshot;

struct PoolConfig {
  int32_t page_tokens = 64;
  int64_t n_pages = 0;
  int32_t max_sequences = 1024;
};

struct PoolUsage {
  int64_t total_pages = 0, free_pages = 0;
  int64_t bytes_per_page = 0;
  int64_t stored_tokens = 0;
  int32_t n_sequences = 0;
};

class CachePool {
 public:
  CachePool(std::shared_ptr<const Profile> profile, std::shared_ptr<Backend> backend,
            const PoolConfig& config);
  ~CachePool();

  const Profile& profile() const { return *profile_; }
  const std::shared_ptr<const Profile>& shared_profile() const { return profile_; }
  Backend& backend() { return *backend_; }
  const PoolStorage& storage() const { return *storage_; }
  int32_t page_tokens() const { return config_.page_tokens; }

  int32_t create_sequence();
  int32_t fork_sequence(int32_t parent);
  void release_sequence(int32_t seq);
  int32_t sequence_length(int32_t seq) const;  // min over layers
  int32_t layer_length(int32_t seq, int32_t layer) const;
  PoolUsage usage() const;

  void append(int32_t layer, int32_t n_tokens, const int32_t* seq_ids, const int32_t* positions,
              const void* keys, const void* values, starkv_dtype dtype);
  void append_latents(int32_t layer, int32_t n_tokens, const int32_t* seq_ids,
                      const int32_t* positions, const void* latents, starkv_dtype dtype);

  // Makes sure each listed sequence owns (unshared) pages for its first lengths[i] tokens, so that
  // appends up to those lengths change no page table. Used when a step is planned ahead of its
  // appends. All or nothing: throws STARKV_ERR_POOL_FULL without changing anything.
  void reserve(int32_t n, const int32_t* seq_ids, const int32_t* lengths);

  // The page tables of a batch of queries, checked against what the layer holds (layer < 0: check
  // only that the sequences exist). The pointers stay valid until the next call that changes a
  // page table; page_table_version() says when that happened.
  std::vector<AttendQuery> resolve_queries(int32_t layer, int32_t n, const int32_t* seq_ids,
                                           const int32_t* kv_lengths) const;
  uint64_t page_table_version() const { return page_table_version_; }

  std::vector<uint8_t> export_sequence(int32_t seq);
  int32_t import_sequence(const void* data, size_t size);

 private:
  struct Sequence {
    std::vector<int32_t> pages;
    std::vector<int32_t> layer_length;  // tokens stored per layer
  };
  const Sequence& sequence(int32_t seq) const;
  Sequence& sequence(int32_t seq);
  int32_t new_sequence_id();
  // Validates an append batch and returns, per token, where its row goes; takes and copies pages
  // only after every check (and the page count) has passed. data_a/data_b are keys/values
  // ([n, G, D] each) or, with data_is_latents, both the same [n, latent_width] latents.
  std::vector<AppendTarget> prepare_append(int32_t layer, int32_t n_tokens, const int32_t* seq_ids,
                                           const int32_t* positions, const void* data_a,
                                           const void* data_b, bool data_is_latents,
                                           starkv_dtype dtype);
  // Pages needed so that `seq` owns unshared pages for tokens [from, to).
  int64_t pages_needed_to_write(const Sequence& seq, int32_t from, int32_t to) const;
  void make_writable(Sequence& seq, int32_t from, int32_t to);
  void write_snapshot_rows(const SequenceSnapshot& snap, const Sequence& s);
  void commit_lengths(int32_t layer, const std::vector<AppendTarget>& targets, int32_t n_tokens,
                      const int32_t* seq_ids);

  std::shared_ptr<const Profile> profile_;
  std::shared_ptr<Backend> backend_;
  PoolConfig config_;
  std::unique_ptr<PoolStorage> storage_;
  PageAllocator pages_;
  std::map<int32_t, Sequence> sequences_;
  int32_t next_sequence_id_ = 1;
  uint64_t page_table_version_ = 0;
};

}  // namespace starkv
