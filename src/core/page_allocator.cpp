#include "core/page_allocator.h"

#include "core/error.h"

namespace starkv {

PageAllocator::PageAllocator(int64_t n_pages) : ref_counts_(static_cast<size_t>(n_pages), 0) {
  free_list_.reserve(static_cast<size_t>(n_pages));
  for (int64_t p = n_pages - 1; p >= 0; --p) free_list_.push_back(static_cast<int32_t>(p));
}

int32_t PageAllocator::take() {
  require(!free_list_.empty(), STARKV_ERR_INTERNAL, "page allocator: no free page");
  const int32_t page = free_list_.back();
  free_list_.pop_back();
  ref_counts_[static_cast<size_t>(page)] = 1;
  return page;
}

void PageAllocator::retain(int32_t page) { ++ref_counts_[static_cast<size_t>(page)]; }

void PageAllocator::release(int32_t page) {
  int32_t& count = ref_counts_[static_cast<size_t>(page)];
  require(count > 0, STARKV_ERR_INTERNAL, "page allocator: releasing a free page");
  if (--count == 0) free_list_.push_back(page);
}

}  // namespace starkv
