#include "core/split_planning.h"

#include <algorithm>

namespace starkv {
namespace {

int64_t rounds(int64_t ctas, int64_t slots) {
  const int64_t s = std::max<int64_t>(1, slots);
  return (ctas + s - 1) / s;
}

}  // namespace

double estimated_split_cost(const std::vector<SplitLayerShape>& shapes,
                            const std::vector<int64_t>& kv_lengths, int64_t split) {
  const int64_t s = std::max<int64_t>(1, split);
  int64_t items = 0;
  for (const int64_t len : kv_lengths) items += (len + s - 1) / s;
  double cost = 0.0;
  for (const SplitLayerShape& sh : shapes) {
    const double r =
        static_cast<double>(rounds(items * sh.fold_ctas_per_item, sh.fold_slots)) +
        0.5 * static_cast<double>(rounds(items * sh.value_ctas_per_item, sh.value_slots));
    cost += r * static_cast<double>(s + 64) + 3.0 * static_cast<double>(items);
  }
  return cost;
}

int64_t wave_filling_split(const std::vector<SplitLayerShape>& shapes,
                           const std::vector<int64_t>& kv_lengths, int64_t pieces,
                           int64_t fallback) {
  if (shapes.empty() || kv_lengths.empty()) return fallback;
  int64_t longest = 1;
  for (const int64_t len : kv_lengths) longest = std::max(longest, len);
  double best_cost = 0.0;
  int64_t best = fallback;
  for (int64_t p = 1; p <= 2 * std::max<int64_t>(1, pieces); ++p) {
    const int64_t split = ((longest + p - 1) / p + 63) / 64 * 64;
    const double cost = estimated_split_cost(shapes, kv_lengths, split);
    if (p == 1 || cost < best_cost) {
      best_cost = cost;
      best = split;
    }
  }
  return best;
}

}  // namespace starkv
