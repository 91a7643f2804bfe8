// The greedy marginal-utility allocator (LU-KV style, DESIGN §2.2 baseline): start every group at
// its floor and repeatedly give one more step of rank to the group whose error drops most per
// channel, until the budget is spent. The error of dropping direction i is its squared singular
// value — in a data-aware (whitened or sample) spectrum, exactly the reconstruction error it adds
// on the calibration tokens — divided by the total energy of the layer's keys (or values), so
// layers of different scale compete on relative error. Within a group the errors fall with i, so
// for a tile of 1 greedy is optimal for the sum of relative errors.
#include <vector>

#include "core/rank_allocation.h"

namespace starkv {
namespace {

std::vector<int32_t> greedy_ranks(const std::vector<RankGroup>& groups, double budget) {
  // Energy of each layer's groups of this kind, to normalize by.
  std::vector<double> layer_energy;
  for (const RankGroup& g : groups) {
    if (static_cast<size_t>(g.layer) >= layer_energy.size()) layer_energy.resize(g.layer + 1, 0.0);
    for (double s : g.spectrum->sigma) layer_energy[static_cast<size_t>(g.layer)] += s * s;
  }
  auto error_per_channel = [&](size_t j, int32_t from, int32_t to) {
    const RankGroup& g = groups[j];
    const int32_t lo = std::min(from, to), hi = std::max(from, to);
    double error = 0.0;
    for (int32_t i = lo; i < hi; ++i)
      error +=
          g.spectrum->sigma[static_cast<size_t>(i)] * g.spectrum->sigma[static_cast<size_t>(i)];
    const double energy = layer_energy[static_cast<size_t>(g.layer)];
    return energy > 0.0 ? error / energy / (hi - lo) : 0.0;
  };
  std::vector<int32_t> ranks;
  for (const RankGroup& g : groups) ranks.push_back(rank_floor(g));
  fit_ranks_to_budget(groups, budget, error_per_channel, error_per_channel, ranks);
  return ranks;
}

}  // namespace

RankAllocation allocate_greedy(const RankProblem& problem) {
  return allocate_keys_then_values(problem, greedy_ranks);
}

}  // namespace starkv
