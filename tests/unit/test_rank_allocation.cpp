// The rank allocators (src/core/rank_allocation.h) on hand-made spectra: the constraint helpers,
// the budget rule, and what each allocator does with steep and flat spectra. The allocation on a
// real attention loss is tested end to end in test_profile_builder.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/rank_allocation.h"

using starkv::GroupSpectrum;
using starkv::RankGroup;
using starkv::RankProblem;

namespace {

// Spectra σ_i = exp(−decay·i/in_dim) of `decays.size()` groups spread over `n_layers` layers.
struct Spectra {
  std::deque<GroupSpectrum> keys, values;  // deque: stable addresses for RankGroup::spectrum
  RankProblem problem;

  void add(std::deque<GroupSpectrum>& store, std::vector<RankGroup>& groups, int32_t layer,
           int32_t in_dim, double decay, int32_t min_rank, int32_t tile) {
    GroupSpectrum s;
    s.in_dim = in_dim;
    for (int32_t i = 0; i < in_dim; ++i) s.sigma.push_back(std::exp(-decay * i / in_dim));
    store.push_back(s);
    groups.push_back({layer, &store.back(), min_rank, tile});
    while (static_cast<int32_t>(problem.layers.size()) <= layer) problem.layers.emplace_back();
    auto& members = &groups == &problem.keys
                        ? problem.layers[static_cast<size_t>(layer)].key_groups
                        : problem.layers[static_cast<size_t>(layer)].value_groups;
    members.push_back(static_cast<int32_t>(groups.size() - 1));
  }
  void add_key(int32_t layer, int32_t in_dim, double decay, int32_t min_rank = 1,
               int32_t tile = 1) {
    add(keys, problem.keys, layer, in_dim, decay, min_rank, tile);
  }
  void add_value(int32_t layer, int32_t in_dim, double decay, int32_t tile = 1) {
    add(values, problem.values, layer, in_dim, decay, 1, tile);
  }
};

// Two layers of four 64-wide key heads from very steep to flat, and one 256-wide value group each.
Spectra mixed_spectra(int32_t min_key_rank = 1, int32_t key_tile = 1) {
  Spectra s;
  const double decays[2][4] = {{30.0, 12.0, 2.0, 0.3}, {20.0, 6.0, 1.0, 0.1}};
  for (int32_t l = 0; l < 2; ++l) {
    for (double d : decays[l]) s.add_key(l, 64, d, min_key_rank, key_tile);
    s.add_value(l, 256, l == 0 ? 8.0 : 0.5);
  }
  return s;
}

void set_budgets(RankProblem& p, double key_fraction, double value_fraction) {
  double keys = 0.0, values = 0.0;
  for (const RankGroup& g : p.keys) keys += g.max_rank();
  for (const RankGroup& g : p.values) values += g.max_rank();
  p.key_budget = key_fraction * keys;
  p.value_budget = value_fraction * values;
}

using Allocator = std::function<starkv::RankAllocation(const RankProblem&)>;
const std::vector<std::pair<const char*, Allocator>>& allocators() {
  static const std::vector<std::pair<const char*, Allocator>> all = {
      {"static", starkv::allocate_static},
      {"greedy", starkv::allocate_greedy},
      {"soft threshold",
       [](const RankProblem& p) { return starkv::allocate_soft_threshold(p, {}, nullptr); }},
  };
  return all;
}

void expect_allowed(const std::vector<RankGroup>& groups, const std::vector<int32_t>& ranks) {
  ASSERT_EQ(groups.size(), ranks.size());
  for (size_t j = 0; j < groups.size(); ++j) {
    EXPECT_GE(ranks[j], starkv::rank_floor(groups[j]));
    EXPECT_LE(ranks[j], groups[j].max_rank());
    EXPECT_TRUE(ranks[j] % groups[j].tile == 0 || ranks[j] == groups[j].max_rank()) << ranks[j];
  }
}

}  // namespace

TEST(RankConstraints, FloorStepsAndRounding) {
  GroupSpectrum s;
  s.in_dim = 40;
  const RankGroup g{0, &s, 8, 16};
  EXPECT_EQ(starkv::rank_floor(g), 16);  // min rank 8 rounded up to the tile
  EXPECT_EQ(starkv::rank_step_up(g, 16), 32);
  EXPECT_EQ(starkv::rank_step_up(g, 32), 40);  // in_dim itself is allowed, though not a multiple
  EXPECT_EQ(starkv::rank_step_up(g, 40), 40);
  EXPECT_EQ(starkv::rank_step_down(g, 40), 32);
  EXPECT_EQ(starkv::rank_step_down(g, 16), 16);
  EXPECT_EQ(starkv::nearest_allowed_rank(g, 3), 16);
  EXPECT_EQ(starkv::nearest_allowed_rank(g, 37), 40);
  EXPECT_EQ(starkv::nearest_allowed_rank(g, 25), 32);  // a tie goes up
  EXPECT_EQ(starkv::nearest_allowed_rank(g, 99), 40);
  const RankGroup wide_min{0, &s, 64, 1};  // a minimum above in_dim clamps to in_dim
  EXPECT_EQ(starkv::rank_floor(wide_min), 40);
}

// With a tile of 1, every allocator lands keys on the integer nearest to their budget, and the
// total on the integer nearest to the sum (values absorb the keys' rounding).
TEST(RankAllocation, EveryAllocatorMeetsItsBudgets) {
  for (const auto& [name, allocate] : allocators()) {
    for (double fraction : {0.15, 0.25, 0.4, 0.5, 0.8}) {
      Spectra s = mixed_spectra(8);
      set_budgets(s.problem, fraction, std::min(1.0, fraction * 1.4));
      const starkv::RankAllocation a = allocate(s.problem);
      expect_allowed(s.problem.keys, a.key_ranks);
      expect_allowed(s.problem.values, a.value_ranks);
      EXPECT_LE(std::fabs(starkv::total_rank(a.key_ranks) - s.problem.key_budget), 0.5)
          << name << " " << fraction;
      EXPECT_LE(std::fabs(starkv::total_rank(a.key_ranks) + starkv::total_rank(a.value_ranks) -
                          s.problem.key_budget - s.problem.value_budget),
                0.5)
          << name << " " << fraction;
    }
  }
}

// A key tile of 16 cannot hit 230.4 channels exactly: keys take the nearest multiple of 16 (224)
// and the values absorb the difference, so the total still lands within half a channel.
TEST(RankAllocation, TilesRoundKeysAndValuesCarryTheRest) {
  for (const auto& [name, allocate] : allocators()) {
    Spectra s = mixed_spectra(8, 16);
    s.problem.key_budget = 230.4;
    s.problem.value_budget = 150.0;
    const starkv::RankAllocation a = allocate(s.problem);
    expect_allowed(s.problem.keys, a.key_ranks);
    EXPECT_EQ(starkv::total_rank(a.key_ranks), 224) << name;
    EXPECT_LE(
        std::fabs(starkv::total_rank(a.key_ranks) + starkv::total_rank(a.value_ranks) - 380.4), 0.5)
        << name;
  }
}

TEST(RankAllocation, StaticGivesEveryGroupTheSameRank) {
  Spectra s = mixed_spectra(1);
  set_budgets(s.problem, 0.25, 0.3);
  const starkv::RankAllocation a = starkv::allocate_static(s.problem);
  for (int32_t r : a.key_ranks) EXPECT_EQ(r, 16);  // 128 channels over 8 groups
  // 153.6 -> 154 value channels over two groups: 77 each.
  EXPECT_EQ(a.value_ranks, (std::vector<int32_t>{77, 77}));
}

// Greedy on per-channel errors that fall within each group is the global top-k: keep the budget's
// worth of largest σ², each normalized by its layer's energy.
TEST(RankAllocation, GreedyKeepsTheLargestNormalizedEnergies) {
  Spectra s = mixed_spectra(1);
  set_budgets(s.problem, 0.2, 0.3);
  const starkv::RankAllocation a = starkv::allocate_greedy(s.problem);
  std::vector<double> layer_energy(2, 0.0);
  for (const RankGroup& g : s.problem.keys)
    for (double v : g.spectrum->sigma) layer_energy[static_cast<size_t>(g.layer)] += v * v;
  std::vector<std::pair<double, size_t>> channels;  // (normalized σ², group), floors excluded
  for (size_t j = 0; j < s.problem.keys.size(); ++j) {
    const RankGroup& g = s.problem.keys[j];
    for (size_t i = 1; i < g.spectrum->sigma.size(); ++i) {
      channels.push_back(
          {g.spectrum->sigma[i] * g.spectrum->sigma[i] / layer_energy[static_cast<size_t>(g.layer)],
           j});
    }
  }
  std::sort(channels.rbegin(), channels.rend());
  std::vector<int32_t> expected(s.problem.keys.size(), 1);
  const int64_t budget = std::llround(s.problem.key_budget);
  for (int64_t c = 0; c < budget - static_cast<int64_t>(expected.size()); ++c)
    ++expected[channels[static_cast<size_t>(c)].second];
  EXPECT_EQ(a.key_ranks, expected);
}

// Without a distillation loss the soft threshold learns on the spectral energy: flat heads keep
// more rank than steep ones, and the floor holds for the steepest.
TEST(RankAllocation, SoftThresholdFavoursFlatSpectra) {
  Spectra s = mixed_spectra(8);
  set_budgets(s.problem, 0.2, 0.3);
  int64_t last_step = 0;
  const starkv::RankAllocation a =
      starkv::allocate_soft_threshold(s.problem, {}, [&](int64_t done, int64_t total) {
        EXPECT_EQ(total, 400);
        EXPECT_EQ(done, last_step + 1);
        last_step = done;
      });
  EXPECT_GT(a.steps, 0);
  EXPECT_EQ(last_step, a.steps);
  // Layer 0 heads go from steepest to flattest, and so do layer 1's.
  for (int32_t l = 0; l < 2; ++l) {
    for (int32_t h = 0; h + 1 < 4; ++h)
      EXPECT_LE(a.key_ranks[static_cast<size_t>(4 * l + h)],
                a.key_ranks[static_cast<size_t>(4 * l + h + 1)]);
    EXPECT_EQ(a.key_ranks[static_cast<size_t>(4 * l)], 8);
  }
  // The flat value group (layer 1) gets more than the steep one.
  EXPECT_GT(a.value_ranks[1], a.value_ranks[0]);
}

TEST(RankAllocation, SoftThresholdCanBeCancelled) {
  Spectra s = mixed_spectra(8);
  set_budgets(s.problem, 0.2, 0.3);
  auto cancel_at_3 = [](int64_t done, int64_t) {
    if (done == 3) throw starkv::Error(STARKV_ERR_CANCELLED, "stop");
  };
  try {
    starkv::allocate_soft_threshold(s.problem, {}, cancel_at_3);
    FAIL() << "not cancelled";
  } catch (const starkv::Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_CANCELLED);
  }
}

TEST(RankAllocation, BudgetsBelowTheFloorsAreRejected) {
  for (const auto& [name, allocate] : allocators()) {
    Spectra s = mixed_spectra(8);      // 8 key groups x min rank 8 = 64 channels at least
    set_budgets(s.problem, 0.1, 0.3);  // 51.2 key channels
    try {
      allocate(s.problem);
      FAIL() << name << " accepted a budget below its floors";
    } catch (const starkv::Error& e) {
      EXPECT_EQ(e.status(), STARKV_ERR_INVALID_ARGUMENT) << name;
      EXPECT_NE(std::string(e.what()).find("min_key_rank"), std::string::npos) << e.what();
    }
  }
}
