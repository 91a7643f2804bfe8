// The constraints and the budget rule every rank allocator shares (see rank_allocation.h).
#include "core/rank_allocation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace starkv {
namespace {

// Half a channel: with a tile of 1 the fit then lands on the integer nearest to the budget.
constexpr double kBudgetTolerance = 0.5;

int32_t round_up_to(int32_t x, int32_t tile) { return (x + tile - 1) / tile * tile; }

}  // namespace

int32_t rank_floor(const RankGroup& group) {
  const int32_t lowest = std::max(1, group.min_rank);
  return std::min(group.max_rank(), round_up_to(lowest, group.tile));
}

int32_t rank_step_up(const RankGroup& group, int32_t rank) {
  if (rank >= group.max_rank()) return group.max_rank();
  return std::min(group.max_rank(), (rank / group.tile + 1) * group.tile);
}

int32_t rank_step_down(const RankGroup& group, int32_t rank) {
  const int32_t floor = rank_floor(group);
  if (rank <= floor) return floor;
  return std::max(floor, (rank - 1) / group.tile * group.tile);
}

int32_t nearest_allowed_rank(const RankGroup& group, int32_t rank) {
  const int32_t floor = rank_floor(group), top = group.max_rank();
  if (rank <= floor) return floor;
  if (rank >= top) return top;
  const int32_t below = std::max(floor, rank / group.tile * group.tile);
  const int32_t above = std::min(top, round_up_to(rank, group.tile));
  return rank - below < above - rank ? below : above;
}

void require_feasible(const std::vector<RankGroup>& groups, double budget, const char* what) {
  int64_t floors = 0;
  for (const RankGroup& g : groups) floors += rank_floor(g);
  require(static_cast<double>(floors) <= budget + kBudgetTolerance, STARKV_ERR_INVALID_ARGUMENT,
          std::string("the ") + what + " budget of " + std::to_string(std::llround(budget)) +
              " latent channels is below the minimum ranks and tiles allow (" +
              std::to_string(floors) +
              "); lower the target compression, min_key_rank or the rank tile");
}

int64_t total_rank(const std::vector<int32_t>& ranks) {
  int64_t total = 0;
  for (int32_t r : ranks) total += r;
  return total;
}

RankAllocation allocate_keys_then_values(const RankProblem& problem,
                                         const RanksForBudget& ranks_for) {
  require_feasible(problem.keys, problem.key_budget, "key");
  RankAllocation result;
  result.key_ranks = ranks_for(problem.keys, problem.key_budget);
  const double carried = problem.key_budget - static_cast<double>(total_rank(result.key_ranks));
  require_feasible(problem.values, problem.value_budget + carried, "value");
  result.value_ranks = ranks_for(problem.values, problem.value_budget + carried);
  return result;
}

void fit_ranks_to_budget(const std::vector<RankGroup>& groups, double budget,
                         const RankStepScore& gain, const RankStepScore& loss,
                         std::vector<int32_t>& ranks) {
  double total = static_cast<double>(total_rank(ranks));
  // Each move brings |total - budget| strictly down: a preferred move stops short of crossing the
  // tolerance band, a fallback move may cross it but must land closer. So the loop ends.
  while (std::fabs(total - budget) > kBudgetTolerance) {
    const bool under = total < budget;
    const double deviation = total - budget;
    size_t best = groups.size();
    double best_score = 0.0;
    bool best_preferred = false;
    for (size_t j = 0; j < groups.size(); ++j) {
      const int32_t from = ranks[j];
      const int32_t to = under ? rank_step_up(groups[j], from) : rank_step_down(groups[j], from);
      if (to == from) continue;
      const double after = deviation + (to - from);
      const bool preferred =
          std::fabs(after) <= kBudgetTolerance || (under ? after < 0 : after > 0);
      if (!preferred && std::fabs(after) >= std::fabs(deviation)) continue;
      const double score = under ? gain(j, from, to) : -loss(j, from, to);
      if (best == groups.size() || (preferred && !best_preferred) ||
          (preferred == best_preferred && score > best_score)) {
        best = j;
        best_score = score;
        best_preferred = preferred;
      }
    }
    if (best == groups.size()) break;  // no step brings the total closer
    const int32_t from = ranks[best];
    ranks[best] = under ? rank_step_up(groups[best], from) : rank_step_down(groups[best], from);
    total += ranks[best] - from;
  }
}

}  // namespace starkv
