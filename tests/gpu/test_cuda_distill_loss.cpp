// The soft-threshold distillation loss on the GPU (src/cuda/cuda_attention_distill_loss.cpp)
// against the CPU loss (src/core/cpu_attention_distill_loss.cpp) on the same inputs: loss and
// gradients for MHA and GQA, head_dim 64 and 128, both RoPE pairings (full and partial rotary),
// fractional masks with dropped tails and a dropped group; and the soft-threshold allocation over
// a two-layer model, which must land on the same ranks with either loss.
//
// Tolerances. Both losses compute in fp32 with the same roundings (the same kernels' formulas, fp32
// products, double where the CPU sums in double); they differ in the order of the GEMMs' sums
// (cuBLAS tiles, BLAS sgemm runs the k loop; the GPU sums a KV group's heads inside one product,
// the CPU head after head). Each product then differs by ~sqrt(k)·2^-24 ≈ 1e-6 of its terms'
// magnitude (k ≤ 256 here), and a few products in a row keep it ~1e-6 relative.
//   - Loss: a relative error ‖O − O_ref‖²/‖O_ref‖². With these masks O − O_ref is a sizeable
//     part of O (loss > 1e-2, asserted), so its ~1e-6·‖O‖ rounding moves the loss by well under
//     1e-5 relative; 1e-4 leaves a margin.
//   - Gradients: dm_i = Σ_t z_ti (dx̂_t B)_i sums terms much larger than the result over n tokens,
//     so an entry's error is relative to its terms, not to itself; measured against the largest
//     entry of the gradient (what moves the thresholds), the ~1e-6 per-term rounding times a
//     cancellation factor of at most ~10-100 stays below 1e-4. Tolerance 1e-3 of the max-abs entry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/attention_distill_loss.h"
#include "core/cpu_attention_distill_loss.h"
#include "core/decomposition.h"
#include "core/rank_allocation.h"
#include "support/skip_without_gpu.h"
#include "support/synthetic_model.h"

using starkv::AttentionDistillLoss;
using starkv::GroupSpectrum;
using Masks = std::vector<std::vector<double>>;

namespace {

struct Case {
  int32_t n_heads, n_kv_heads, head_dim, n_tokens;
  starkv_decomposition keys, values;
  starkv_rope_style rope;
  int32_t rotary_dim;  // 0: head_dim
  bool drop_a_key_group;
};

std::string describe(const Case& c) {
  return "H=" + std::to_string(c.n_heads) + " G=" + std::to_string(c.n_kv_heads) +
         " D=" + std::to_string(c.head_dim) + " n=" + std::to_string(c.n_tokens) +
         (c.keys == STARKV_DECOMP_JOINT ? " JD keys" : " HD keys") +
         (c.rope == STARKV_ROPE_GPTJ ? " gptj" : " neox") +
         " rotary=" + std::to_string(c.rotary_dim);
}

// One synthetic layer: its calibration sample and PCA bases of its keys and values.
struct Layer {
  starkv::ModelShape shape;
  starkv::RopeConfig rope;
  float scale = 1.0f;
  starkv::DistillSample sample;
  std::vector<GroupSpectrum> key_groups, value_groups;

  Layer(const starkv_test::SyntheticModel& model, int32_t layer, int32_t n_tokens,
        starkv_decomposition keys, starkv_decomposition values, starkv_rope_style style,
        int32_t rotary_dim) {
    const starkv_test::AttentionShape& a = model.spec().attention;
    shape.n_layers = model.spec().n_layers;
    shape.n_heads = a.n_heads;
    shape.n_kv_heads = a.n_kv_heads;
    shape.head_dim = a.head_dim;
    rope.style = style;
    rope.rotary_dim = rotary_dim > 0 ? rotary_dim : a.head_dim;
    scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
    const std::vector<float> x = model.hidden_states(n_tokens, 7);
    sample.n_tokens = n_tokens;
    sample.keys = model.keys(layer, x);
    sample.values = model.values(layer, x);
    sample.queries = model.queries(layer, x);
    auto pca = [&](const std::vector<float>& rows, starkv_decomposition d) {
      const std::vector<double> samples(rows.begin(), rows.end());
      starkv::DecompositionInput in;
      in.width = shape.kv_width();
      in.samples = samples.data();
      in.n_samples = n_tokens;
      return starkv::decompose_tensor(in, d, a.n_kv_heads, a.head_dim);
    };
    key_groups = pca(sample.keys, keys);
    value_groups = pca(sample.values, values);
  }

  std::unique_ptr<AttentionDistillLoss> cpu_loss() const {
    return std::make_unique<starkv::CpuAttentionDistillLoss>(shape, rope, scale, sample, key_groups,
                                                             value_groups);
  }
  std::unique_ptr<AttentionDistillLoss> cuda_loss(
      const std::shared_ptr<starkv::CudaDistillQueue>& queue) const {
    return starkv::make_cuda_attention_distill_loss(queue, shape, rope, scale, sample, key_groups,
                                                    value_groups);
  }
};

starkv_test::SyntheticModelSpec spec_of(const Case& c) {
  starkv_test::SyntheticModelSpec s;
  s.hidden_dim = 256;
  s.attention.n_heads = c.n_heads;
  s.attention.n_kv_heads = c.n_kv_heads;
  s.attention.head_dim = c.head_dim;
  s.attention.rope_style = c.rope;
  s.key_decay = {{12.0f, 4.0f, 2.0f, 8.0f}};
  s.value_decay = {{6.0f, 2.0f, 3.0f, 1.0f}};
  s.seed = 11;
  return s;
}

// Fractional masks in (0, 1) with zeros: the tail quarter of every group (what a threshold
// drops), a fifth of the other entries at random, and, when asked, all of the last group.
Masks random_masks(const std::vector<GroupSpectrum>& groups, uint32_t seed, bool drop_last) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Masks masks;
  for (const GroupSpectrum& g : groups) {
    std::vector<double> m(static_cast<size_t>(g.in_dim));
    for (size_t i = 0; i < m.size(); ++i) {
      const double keep = u(rng), value = u(rng);
      m[i] = i >= m.size() * 3 / 4 || keep < 0.2 ? 0.0 : 0.05 + 0.95 * value;
    }
    masks.push_back(std::move(m));
  }
  if (drop_last && groups.size() > 1) std::fill(masks.back().begin(), masks.back().end(), 0.0);
  return masks;
}

double max_abs(const Masks& a, const Masks& b) {
  double m = 0.0;
  for (const Masks* g : {&a, &b})
    for (const auto& v : *g)
      for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

const Case kCases[] = {
    {4, 4, 64, 200, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_NEOX, 0, false},
    {8, 2, 64, 200, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_NEOX, 0, true},
    {2, 2, 128, 160, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_NEOX, 0, false},
    {8, 2, 128, 256, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_NEOX, 0, true},
    // Fewer tokens than query rows (every row measured), JD keys and HD values, gptj pairs over
    // half the head (the rest passes through).
    {8, 2, 64, 40, STARKV_DECOMP_JOINT, STARKV_DECOMP_HEADWISE, STARKV_ROPE_GPTJ, 32, false},
};

TEST(CudaDistillLoss, LossAndGradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const auto queue = starkv::make_cuda_distill_queue(0);
  for (const Case& c : kCases) {
    SCOPED_TRACE(describe(c));
    const starkv_test::SyntheticModel model(spec_of(c));
    const Layer layer(model, 0, c.n_tokens, c.keys, c.values, c.rope, c.rotary_dim);
    const auto cpu = layer.cpu_loss();
    const auto gpu = layer.cuda_loss(queue);
    ASSERT_EQ(gpu->n_tokens(), cpu->n_tokens());
    ASSERT_EQ(gpu->query_rows(), cpu->query_rows());
    // Two evaluations on the same objects: the device buffers are reused across calls.
    for (uint32_t seed : {1u, 2u}) {
      SCOPED_TRACE("masks " + std::to_string(seed));
      const Masks keys = random_masks(layer.key_groups, seed, c.drop_a_key_group);
      const Masks values = random_masks(layer.value_groups, seed + 100, false);
      Masks cpu_kg, cpu_vg, gpu_kg, gpu_vg;
      const double want = cpu->evaluate(keys, values, &cpu_kg, &cpu_vg);
      const double got = gpu->evaluate(keys, values, &gpu_kg, &gpu_vg);
      ASSERT_GT(want, 1e-2) << "masks too mild for the tolerance argument";
      EXPECT_NEAR(got, want, 1e-4 * want);
      EXPECT_NEAR(gpu->evaluate(keys, values, nullptr, nullptr), got, 1e-12 * got);

      ASSERT_EQ(gpu_kg.size(), cpu_kg.size());
      ASSERT_EQ(gpu_vg.size(), cpu_vg.size());
      const double tolerance = 1e-3 * max_abs(cpu_kg, cpu_vg);
      ASSERT_GT(tolerance, 0.0);
      for (int kind = 0; kind < 2; ++kind) {
        const Masks& w = kind == 0 ? cpu_kg : cpu_vg;
        const Masks& g = kind == 0 ? gpu_kg : gpu_vg;
        for (size_t j = 0; j < w.size(); ++j) {
          ASSERT_EQ(g[j].size(), w[j].size());
          for (size_t i = 0; i < w[j].size(); ++i) {
            EXPECT_NEAR(g[j][i], w[j][i], tolerance)
                << (kind == 0 ? "key" : "value") << " group " << j << " channel " << i;
          }
        }
      }
    }
  }
}

// Unit masks reproduce the reference: x B Bᵀ = x to fp32 rounding, so the loss is ~1e-13 as on
// the CPU (test_attention_distill_loss.cpp).
TEST(CudaDistillLoss, FullMasksReproduceTheReference) {
  SKIP_WITHOUT_GPU();
  const Case c = kCases[1];
  const starkv_test::SyntheticModel model(spec_of(c));
  const Layer layer(model, 0, c.n_tokens, c.keys, c.values, c.rope, c.rotary_dim);
  Masks keys, values;
  for (const GroupSpectrum& g : layer.key_groups) keys.emplace_back(g.in_dim, 1.0);
  for (const GroupSpectrum& g : layer.value_groups) values.emplace_back(g.in_dim, 1.0);
  EXPECT_LT(
      layer.cuda_loss(starkv::make_cuda_distill_queue(0))->evaluate(keys, values, nullptr, nullptr),
      1e-10);
}

// The allocator over the contrast model's two layers (keys 80% / values 70% compression, the 0.75
// split, the builder's default floors and tiles) with CPU losses and with CUDA losses: Adam on
// gradients that differ in the last fp32 bits ends on the same ranks. The margin was measured on
// the CPU: the ranks hold with 1e-5 relative noise added to the loss and every gradient entry
// (10x the expected CPU/GPU difference); at 1e-4 value ranks start to move by a few channels.
TEST(CudaDistillLoss, SoftThresholdRanksMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  starkv_test::SyntheticModelSpec spec = starkv_test::contrast_model_spec();
  spec.value_decay = {{8, 4, 2, 1}, {6, 3, 2, 1}};
  const starkv_test::SyntheticModel model(spec);
  std::vector<Layer> layers;
  for (int32_t l = 0; l < spec.n_layers; ++l) {
    layers.emplace_back(model, l, 256, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT,
                        STARKV_ROPE_NEOX, 0);
  }
  const auto queue = starkv::make_cuda_distill_queue(0);

  starkv::RankAllocation allocations[2];
  for (int on_gpu = 0; on_gpu < 2; ++on_gpu) {
    std::vector<std::unique_ptr<AttentionDistillLoss>> losses;
    starkv::RankProblem problem;
    const double dense = static_cast<double>(spec.n_layers) * layers[0].shape.kv_width();
    problem.key_budget = (1.0 - 0.8) * dense;
    problem.value_budget = (1.0 - 0.7) * dense;
    for (size_t l = 0; l < layers.size(); ++l) {
      starkv::RankLayer rank_layer;
      for (const GroupSpectrum& g : layers[l].key_groups) {
        rank_layer.key_groups.push_back(static_cast<int32_t>(problem.keys.size()));
        problem.keys.push_back({static_cast<int32_t>(l), &g, 8, 1});
      }
      for (const GroupSpectrum& g : layers[l].value_groups) {
        rank_layer.value_groups.push_back(static_cast<int32_t>(problem.values.size()));
        problem.values.push_back({static_cast<int32_t>(l), &g, 1, 1});
      }
      losses.push_back(on_gpu ? layers[l].cuda_loss(queue) : layers[l].cpu_loss());
      rank_layer.loss = losses.back().get();
      problem.layers.push_back(std::move(rank_layer));
    }
    allocations[on_gpu] =
        starkv::allocate_soft_threshold(problem, starkv::SoftThresholdOptions{}, {});
  }
  EXPECT_EQ(allocations[1].key_ranks, allocations[0].key_ranks)
      << "steps: GPU " << allocations[1].steps << ", CPU " << allocations[0].steps;
  EXPECT_EQ(allocations[1].value_ranks, allocations[0].value_ranks);
}

}  // namespace
