// Split-K planning (core/split_planning.h): the wave-filling split for split-mode decode attention.
// The shapes are those of the H200 runs (132 SMs, two CTAs per SM for both kernels): the
// Llama-2-7B-like layer at 75% has 4 head chunks and 5 value blocks when its 1229 value channels
// go in 256-channel blocks, 4 in the blocks of 320 the value kernel has used since the eighth
// session; the Llama-3-8B-like layer 4 chunks and 2 blocks (307 channels; one block of 320 now).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/split_planning.h"

namespace starkv {
namespace {

SplitLayerShape h200_layer(int64_t value_blocks) {
  SplitLayerShape s;
  s.fold_slots = 264;
  s.fold_ctas_per_item = 4;
  s.value_slots = 264;
  s.value_ctas_per_item = value_blocks;
  return s;
}

int64_t items_of(const std::vector<int64_t>& lengths, int64_t split) {
  int64_t items = 0;
  for (const int64_t len : lengths) items += (len + split - 1) / split;
  return items;
}

TEST(SplitPlanning, FillsTheLastRoundAtBatch16And32K) {
  const std::vector<int64_t> lengths(16, 32768);
  // The plain heuristic cut each query into 17 pieces of 1984 tokens: 272 items, 1088 fold CTAs,
  // 4.1 rounds of 264. 16 pieces give 1024 fold CTAs, 3.9 rounds.
  const int64_t llama2 = wave_filling_split({h200_layer(5)}, lengths, 17, 1984);
  EXPECT_EQ(llama2, 2048);
  EXPECT_EQ(items_of(lengths, llama2) * 4, 1024);
  // With 2 value blocks the value kernel's rounds favour fewer, longer items.
  EXPECT_EQ(wave_filling_split({h200_layer(2)}, lengths, 17, 1984), 4096);
  // With 4 (the Llama-2-like layer's blocks of 320): items of 8192 tokens, one round of each
  // kernel, the split the H200 took when the value blocks changed (the step went 922 -> 838 us;
  // bench/results-2026-12-02h/split_sweep.txt has it within 1% of the best forced split).
  EXPECT_EQ(wave_filling_split({h200_layer(4)}, lengths, 17, 1984), 8192);
  EXPECT_LT(estimated_split_cost({h200_layer(5)}, lengths, 2048),
            estimated_split_cost({h200_layer(5)}, lengths, 1984));
}

TEST(SplitPlanning, ChoiceIsAMultipleOf64AndNeverWorseThanThePlainSplit) {
  const std::vector<std::vector<int64_t>> batches = {
      {1}, {63, 64, 65}, {4096}, {131072}, std::vector<int64_t>(64, 4096),
      {32768, 100, 7000, 1, 20000, 32767}};
  for (const auto& lengths : batches) {
    for (const int64_t blocks : {1, 2, 5, 10}) {
      // 30 layers of one shape and 2 of another.
      std::vector<SplitLayerShape> shapes(30, h200_layer(blocks));
      shapes.insert(shapes.end(), 2, h200_layer(1));
      int64_t longest = 1;
      for (const int64_t len : lengths) longest = std::max(longest, len);
      for (const int64_t pieces : {1, 4, 17, 64}) {
        // The plain split for `pieces`, one of the candidates (as in the CUDA backend's planner).
        const int64_t fallback = ((longest + pieces - 1) / pieces + 63) / 64 * 64;
        const int64_t split = wave_filling_split(shapes, lengths, pieces, fallback);
        EXPECT_GE(split, 64);
        EXPECT_EQ(split % 64, 0);
        EXPECT_LE(estimated_split_cost(shapes, lengths, split),
                  estimated_split_cost(shapes, lengths, fallback) + 1e-9)
            << "pieces " << pieces << ", blocks " << blocks;
      }
    }
  }
}

TEST(SplitPlanning, FewerSlotsMeanLongerItems) {
  // One CTA per SM (a layer whose tile needs more than half an SM's shared memory) halves the
  // slots, so the same batch is cut into fewer items.
  const std::vector<int64_t> lengths(16, 32768);
  SplitLayerShape one_per_sm = h200_layer(5);
  one_per_sm.fold_slots = 132;
  one_per_sm.value_slots = 132;
  const int64_t narrow = wave_filling_split({one_per_sm}, lengths, 17, 1984);
  const int64_t wide = wave_filling_split({h200_layer(5)}, lengths, 17, 1984);
  EXPECT_GE(narrow, wide);
  // And the choice is the best candidate for its own shape.
  for (int64_t p = 1; p <= 34; ++p) {
    const int64_t cand = ((32768 + p - 1) / p + 63) / 64 * 64;
    EXPECT_LE(estimated_split_cost({one_per_sm}, lengths, narrow),
              estimated_split_cost({one_per_sm}, lengths, cand));
  }
}

TEST(SplitPlanning, NothingToPlanKeepsTheFallback) {
  EXPECT_EQ(wave_filling_split({}, {4096}, 4, 1024), 1024);
  EXPECT_EQ(wave_filling_split({h200_layer(5)}, {}, 4, 1024), 1024);
}

}  // namespace
}  // namespace starkv
