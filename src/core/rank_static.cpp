// The static allocator: every group of a tensor kind gets the same rank (DESIGN §2.2 baseline).
// Whatever the even share cannot place (the budget is rarely a multiple of the group count) goes
// round-robin, lowest rank first, so ranks differ by at most one step. It looks at no spectrum.
#include <algorithm>
#include <cmath>

#include "core/rank_allocation.h"

namespace starkv {
namespace {

std::vector<int32_t> uniform_ranks(const std::vector<RankGroup>& groups, double budget) {
  std::vector<int32_t> ranks;
  if (groups.empty()) return ranks;
  const int32_t share =
      static_cast<int32_t>(std::floor(budget / static_cast<double>(groups.size())));
  for (const RankGroup& g : groups) ranks.push_back(nearest_allowed_rank(g, share));
  // Spread the remainder: add to the lowest rank (then the first group), remove from the highest
  // (then the last group).
  const double spread = static_cast<double>(groups.size());
  auto add_order = [&](size_t j, int32_t from, int32_t) { return -(from * spread + j); };
  auto remove_order = [&](size_t j, int32_t from, int32_t) { return -(from * spread + j); };
  fit_ranks_to_budget(groups, budget, add_order, remove_order, ranks);
  return ranks;
}

}  // namespace

RankAllocation allocate_static(const RankProblem& problem) {
  return allocate_keys_then_values(problem, uniform_ranks);
}

}  // namespace starkv
