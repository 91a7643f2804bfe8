// Rank allocation (DESIGN §2.2): given every allocatable factor group's spectrum and a budget of
// latent channels for keys and one for values, choose each group's rank.
//
// Three allocators share the constraints and the budget rule:
//   soft threshold  (rank_soft_threshold.cpp)  learned thresholds, the product's method
//   static          (rank_static.cpp)          the same rank for every group
//   greedy          (rank_greedy.cpp)          marginal utility, error drop per channel (LU-KV)
// Constraints: a group's rank lies in [floor, in_dim] where floor = min_rank rounded up to the
// tile (and at least 1), and is a multiple of the tile unless it is in_dim itself. Keys are fitted
// first, as close to their budget as the constraints allow (within half a channel when the tile
// is 1); whatever the tiles leave over is carried into the value budget so the total still meets
// the target.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/attention_distill_loss.h"
#include "core/decomposition.h"

namespace starkv {

// One factor group whose rank is to be chosen.
struct RankGroup {
  int32_t layer = 0;                        // index into RankProblem::layers
  const GroupSpectrum* spectrum = nullptr;  // singular values (descending) and basis
  int32_t min_rank = 1;                     // before tile rounding; clamped into [1, in_dim]
  int32_t tile = 1;

  int32_t max_rank() const { return spectrum->in_dim; }
};

// What the soft-threshold allocator needs per layer: which groups belong to it (in the layer's own
// group order) and its distillation loss (null: fall back to the spectral energy).
struct RankLayer {
  std::vector<int32_t> key_groups;    // indices into RankProblem::keys
  std::vector<int32_t> value_groups;  // indices into RankProblem::values
  AttentionDistillLoss* loss = nullptr;
};

struct RankProblem {
  std::vector<RankGroup> keys, values;
  std::vector<RankLayer> layers;
  double key_budget = 0.0;  // latent channels all key groups together may use
  double value_budget = 0.0;
};

struct RankAllocation {
  std::vector<int32_t> key_ranks;  // one per RankProblem::keys entry
  std::vector<int32_t> value_ranks;
  int32_t steps = 0;  // optimizer steps taken (soft threshold only)
};

struct SoftThresholdOptions {
  int32_t max_steps = 400;
  double sharpness = 50.0;  // s in σ·tanh(s(σ − α)), spectra normalized to their largest value
  double learning_rate = 1e-2;  // Adam, on the thresholds
  double key_pressure = 0.1;    // initial γ_K of γ_K Σ exp(−α) over key groups
  double value_pressure = 0.1;  // initial γ_V
};

// Called after each unit of work (done of total); may throw to cancel.
using RankProgress = std::function<void(int64_t done, int64_t total)>;

RankAllocation allocate_static(const RankProblem& problem);
RankAllocation allocate_greedy(const RankProblem& problem);
RankAllocation allocate_soft_threshold(const RankProblem& problem,
                                       const SoftThresholdOptions& options,
                                       const RankProgress& progress);

// --- shared by the allocators (rank_allocation.cpp) ---

// The smallest rank the constraints allow.
int32_t rank_floor(const RankGroup& group);
// The next allowed rank above / below `rank` (rank itself at the top / bottom).
int32_t rank_step_up(const RankGroup& group, int32_t rank);
int32_t rank_step_down(const RankGroup& group, int32_t rank);
// The allowed rank nearest to `rank` (ties go up).
int32_t nearest_allowed_rank(const RankGroup& group, int32_t rank);

// Throws Error(STARKV_ERR_INVALID_ARGUMENT) when even the floors exceed the budget.
void require_feasible(const std::vector<RankGroup>& groups, double budget, const char* what);

// Scores a step of one group from rank `from` to rank `to`.
using RankStepScore = std::function<double(size_t group, int32_t from, int32_t to)>;

// Moves `ranks` (already allowed) toward `budget` one step at a time: while under it, takes the
// step up with the highest `gain`; while over, the step down with the lowest `loss`. Prefers
// steps that stay within half a channel of the budget; ends as close to it as the steps allow.
void fit_ranks_to_budget(const std::vector<RankGroup>& groups, double budget,
                         const RankStepScore& gain, const RankStepScore& loss,
                         std::vector<int32_t>& ranks);

int64_t total_rank(const std::vector<int32_t>& ranks);

// Allocates keys within their budget with `ranks_for`, then values within theirs plus what the
// keys left unused (rounding to tiles may leave a few channels).
using RanksForBudget =
    std::function<std::vector<int32_t>(const std::vector<RankGroup>& groups, double budget)>;
RankAllocation allocate_keys_then_values(const RankProblem& problem,
                                         const RanksForBudget& ranks_for);

}  // namespace starkv
