// Split-K planning for split-mode decode attention: how many tokens one work item covers. Pure
// arithmetic on the kernels' launch shapes, so that it is tested without a GPU.
#pragma once

#include <cstdint>
#include <vector>

namespace starkv {

// One low-rank layer as the split-mode kernels launch it (a step runs them for every layer, so
// the list has one entry per layer). A kernel runs its CTAs in rounds of `slots` (CTAs per SM x
// SMs); each work item gives it `ctas_per_item` CTAs.
struct SplitLayerShape {
  int64_t fold_slots = 1;           // fold score kernel
  int64_t fold_ctas_per_item = 1;   // its head chunks
  int64_t value_slots = 1;          // value kernel
  int64_t value_ctas_per_item = 1;  // its value-channel blocks
};

// Estimated time of a decode step's split-mode kernels with items of `split` tokens, in
// token-steps summed over the layers: per kernel, rounds x (tokens per item + 64 for a CTA's
// set-up), value rounds weighing half (the value kernel took 35-55% of the fold's time at batch
// 16 x 32K on an H200), plus 3 per item for the combine, whose reads grow with the items (80 us
// for 272 items against 1380 us for 15,900 weighted token-rounds, Llama-2-7B-like layer at 75%).
double estimated_split_cost(const std::vector<SplitLayerShape>& shapes,
                            const std::vector<int64_t>& kv_lengths, int64_t split);

// The split (a multiple of 64 tokens) of least estimated cost among the splits of the longest
// query into 1 .. 2 x `pieces` equal parts; ties keep the longer split. A last, nearly empty
// round of CTAs takes as long as a full one: batch 16 at 32K on 132 SMs cut into 17 pieces gave
// 1088 fold CTAs = 4.1 rounds of 264, run in 5. Returns `fallback` when there are no shapes or
// no queries.
int64_t wave_filling_split(const std::vector<SplitLayerShape>& shapes,
                           const std::vector<int64_t>& kv_lengths, int64_t pieces,
                           int64_t fallback);

}  // namespace starkv
