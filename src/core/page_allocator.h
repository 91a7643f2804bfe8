// Fixed-size pages of a pool, counted by reference so that forked sequences can share them
// (copy-on-write). Pure bookkeeping: it knows page ids, not their memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace starkv {

class PageAllocator {
 public:
  explicit PageAllocator(int64_t n_pages);

  int64_t total() const { return static_cast<int64_t>(ref_counts_.size()); }
  int64_t free_count() const { return static_cast<int64_t>(free_list_.size()); }
  // Takes a free page with reference count 1. The caller checks free_count() first: running out
  // here is a bug, not a full pool.
  int32_t take();
  void retain(int32_t page);
  void release(int32_t page);  // back to the free list when the count reaches 0
  int32_t ref_count(int32_t page) const { return ref_counts_[static_cast<size_t>(page)]; }

 private:
  std::vector<int32_t> ref_counts_;
  std::vector<int32_t> free_list_;  // a stack: low page ids are handed out first
};

}  // namespace starkv
