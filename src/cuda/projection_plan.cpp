// See projection_plan.h.
#include "cuda/projection_plan.h"

#include <algorithm>
#include <functional>
#include <queue>

namespace starkv {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The decode-sized projection's work (kernels/append.cu, kernel_api.h ProjectionItem) when slices
// hold up to `slice_rows` input rows (at most kMaxProjectSlices per group): every group's
// 64-channel tiles times its slices, sorted by rows, largest first. Returns the layer's slice
// count (its partial-sum buffers), the most any group has.
int32_t slice_projection(const std::vector<kernels::DevGroup>& groups, int64_t slice_rows,
                         std::vector<kernels::ProjectionItem>* items) {
  struct Slicing {
    int32_t slices, rows;  // rows per slice; the last slice may hold fewer
  };
  std::vector<Slicing> slicing;
  int32_t layer_slices = 1;
  for (const kernels::DevGroup& g : groups) {
    const int64_t in_dim = std::max(0, g.in_dim);
    const int64_t wanted =
        std::clamp<int64_t>(ceil_div(in_dim, slice_rows), 1, kernels::kMaxProjectSlices);
    const int32_t rows = static_cast<int32_t>(ceil_div(in_dim, wanted));
    // Recounted from the rounded-up rows, so that no slice is empty (a group without input rows
    // keeps one slice, of zeros).
    const int32_t slices = rows > 0 ? static_cast<int32_t>(ceil_div(in_dim, rows)) : 1;
    slicing.push_back(Slicing{slices, rows});
    if (g.rank > 0) layer_slices = std::max(layer_slices, slices);
  }
  items->clear();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const kernels::DevGroup& g = groups[gi];
    const Slicing sl = slicing[gi];
    for (int32_t first = 0; first < g.rank; first += kernels::kProjectTileChannels) {
      for (int32_t z = 0; z < sl.slices; ++z) {
        const int32_t row0 = z * sl.rows;
        kernels::ProjectionItem it{};
        it.down_offset = g.down_off + static_cast<int64_t>(row0) * g.rank + first;
        it.down_stride = g.rank;
        it.channels = std::min(kernels::kProjectTileChannels, g.rank - first);
        it.input_offset = g.in_offset + row0;
        it.rows = std::max(0, std::min(sl.rows, g.in_dim - row0));
        it.latent_offset = g.lat_off + first;
        it.is_value = g.is_value;
        it.slice = z;
        it.zero_slices = z == sl.slices - 1 ? layer_slices - sl.slices : 0;
        items->push_back(it);
      }
    }
  }
  std::stable_sort(items->begin(), items->end(),
                   [](const kernels::ProjectionItem& a, const kernels::ProjectionItem& b) {
                     return a.rows > b.rows;
                   });
  return layer_slices;
}

// How long the projection takes, in rows, when its CTAs (in order) go to `slots` resident CTAs,
// each to the first one free: a CTA takes its rows plus kItemOverheadRows (its staging barrier,
// the reduction and the writes; a rough equivalent).
int64_t schedule_rows(const std::vector<kernels::ProjectionItem>& items, int64_t slots) {
  constexpr int64_t kItemOverheadRows = 64;
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> free_at;
  for (int64_t s = 0; s < slots; ++s) free_at.push(0);
  int64_t end = 0;
  for (const kernels::ProjectionItem& it : items) {
    const int64_t done = free_at.top() + it.rows + kItemOverheadRows;
    free_at.pop();
    free_at.push(done);
    end = std::max(end, done);
  }
  return end;
}

}  // namespace

// The projection's work for a device of n_sms SMs: of the slicings that give the group with the
// most input rows 1 to kMaxProjectSlices slices (of at least kMinProjectSliceRows rows), the one
// whose schedule on kProjectCtasPerSm CTAs per SM is shortest, ties to fewer slices (less partial-
// sum traffic). So a narrow layer spreads over the SMs (a one-token append is otherwise latency
// bound), while a layer with many tiles does not spill long CTAs into a second wave: on 132 SMs
// (264 slots) a Llama-2-7B-like layer at 75% (20 value tiles of 4096 rows, 32 key tiles of 128)
// gets 12 slices of 342 value rows, 272 CTAs of which the 8 that wait for a slot are short key
// tiles; 13 slices (292 CTAs) would leave 28 key tiles waiting past the value tiles' end.
// Returns the layer's slice count.
int32_t make_projection_items(const std::vector<kernels::DevGroup>& groups, int32_t n_sms,
                              std::vector<kernels::ProjectionItem>* items) {
  const int64_t slots = static_cast<int64_t>(kernels::kProjectCtasPerSm) * std::max(1, n_sms);
  int64_t most_rows = 1;
  for (const kernels::DevGroup& g : groups) {
    if (g.rank > 0) most_rows = std::max<int64_t>(most_rows, g.in_dim);
  }
  int64_t best_rows = most_rows, best_length = -1, last_rows = -1;
  std::vector<kernels::ProjectionItem> candidate;
  for (int64_t slices = 1; slices <= kernels::kMaxProjectSlices; ++slices) {
    const int64_t rows =
        std::max<int64_t>(kernels::kMinProjectSliceRows, ceil_div(most_rows, slices));
    if (rows == last_rows) continue;
    last_rows = rows;
    slice_projection(groups, rows, &candidate);
    const int64_t length = schedule_rows(candidate, slots);
    if (best_length < 0 || length < best_length) {
      best_length = length;
      best_rows = rows;
    }
  }
  return slice_projection(groups, best_rows, items);
}

}  // namespace starkv
