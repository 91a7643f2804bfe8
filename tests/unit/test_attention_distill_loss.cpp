// The layer-local distillation loss on the CPU (src/core/cpu_attention_distill_loss.h; the GPU
// one is checked against it in tests/gpu/test_cuda_distill_loss.cpp): its value against an
// independent fp64 attention, and its hand-written gradient against finite differences, for MHA
// and GQA, head-wise and joint groups, both RoPE pairings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/cpu_attention_distill_loss.h"
#include "core/decomposition.h"
#include "core/rope.h"
#include "support/synthetic_model.h"

using starkv::CpuAttentionDistillLoss;
using starkv::GroupSpectrum;
using Masks = std::vector<std::vector<double>>;

namespace {

struct Case {
  int32_t n_heads, n_kv_heads, head_dim;
  starkv_decomposition keys, values;
  starkv_rope_style rope;
};

// A small synthetic layer, its calibration sample, and PCA bases of its keys and values.
struct Fixture {
  starkv_test::SyntheticModel model;
  starkv::ModelShape shape;
  starkv::RopeConfig rope;
  float scale;
  starkv::DistillSample sample;
  std::vector<GroupSpectrum> key_groups, value_groups;

  static starkv_test::SyntheticModelSpec spec_of(const Case& c) {
    starkv_test::SyntheticModelSpec s;
    s.hidden_dim = 48;
    s.attention.n_heads = c.n_heads;
    s.attention.n_kv_heads = c.n_kv_heads;
    s.attention.head_dim = c.head_dim;
    s.attention.rope_style = c.rope;
    s.key_decay = {{1.0f, 8.0f, 3.0f, 0.5f}};
    s.value_decay = {{4.0f, 0.5f, 2.0f, 6.0f}};
    s.seed = 17;
    return s;
  }

  explicit Fixture(const Case& c, int32_t n_tokens = 24) : model(spec_of(c)) {
    shape.n_layers = 1;
    shape.n_heads = c.n_heads;
    shape.n_kv_heads = c.n_kv_heads;
    shape.head_dim = c.head_dim;
    rope.style = c.rope;
    rope.rotary_dim = c.head_dim;
    scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    const std::vector<float> x = model.hidden_states(n_tokens, 1);
    sample.n_tokens = n_tokens;
    sample.keys = model.keys(0, x);
    sample.values = model.values(0, x);
    sample.queries = model.queries(0, x);
    auto pca = [&](const std::vector<float>& rows, starkv_decomposition d) {
      const std::vector<double> samples(rows.begin(), rows.end());
      starkv::DecompositionInput in;
      in.width = shape.kv_width();
      in.samples = samples.data();
      in.n_samples = n_tokens;
      return starkv::decompose_tensor(in, d, c.n_kv_heads, c.head_dim);
    };
    key_groups = pca(sample.keys, c.keys);
    value_groups = pca(sample.values, c.values);
  }

  CpuAttentionDistillLoss loss() const {
    return CpuAttentionDistillLoss(shape, rope, scale, sample, key_groups, value_groups);
  }

  Masks random_masks(const std::vector<GroupSpectrum>& groups, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.1, 0.95);
    Masks m;
    for (const GroupSpectrum& g : groups) {
      std::vector<double> mask(static_cast<size_t>(g.in_dim));
      for (double& v : mask) v = u(rng);
      m.push_back(mask);
    }
    return m;
  }

  // x̂ = Σ_groups x_g B diag(m) Bᵀ in double.
  std::vector<float> masked(const std::vector<float>& x, const std::vector<GroupSpectrum>& groups,
                            const Masks& masks) const {
    const int32_t width = shape.kv_width();
    std::vector<float> out(x.size(), 0.0f);
    for (size_t j = 0; j < groups.size(); ++j) {
      const GroupSpectrum& g = groups[j];
      for (int32_t t = 0; t < sample.n_tokens; ++t) {
        const float* row = x.data() + static_cast<size_t>(t) * width + g.in_offset;
        for (int32_t c = 0; c < g.in_dim; ++c) {
          double acc = 0.0;
          for (int32_t i = 0; i < g.in_dim; ++i) {
            double z = 0.0;
            for (int32_t k = 0; k < g.in_dim; ++k)
              z += static_cast<double>(row[k]) * g.basis[static_cast<size_t>(k) * g.in_dim + i];
            acc += z * masks[j][static_cast<size_t>(i)] *
                   g.basis[static_cast<size_t>(c) * g.in_dim + i];
          }
          out[static_cast<size_t>(t) * width + g.in_offset + c] = static_cast<float>(acc);
        }
      }
    }
    return out;
  }
};

const Case kCases[] = {
    {4, 4, 16, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_NEOX},  // MHA, defaults
    {4, 2, 16, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT, STARKV_ROPE_GPTJ},  // GQA
    {6, 2, 8, STARKV_DECOMP_JOINT, STARKV_DECOMP_HEADWISE, STARKV_ROPE_NEOX},  // JD keys, HD values
};

}  // namespace

TEST(AttentionDistillLoss, FullMasksReproduceTheReference) {
  for (const Case& c : kCases) {
    Fixture f(c);
    CpuAttentionDistillLoss loss = f.loss();
    Masks keys, values;
    for (const GroupSpectrum& g : f.key_groups)
      keys.emplace_back(static_cast<size_t>(g.in_dim), 1.0);
    for (const GroupSpectrum& g : f.value_groups)
      values.emplace_back(static_cast<size_t>(g.in_dim), 1.0);
    // x B Bᵀ = x to fp32 rounding (~1e-7 relative), so the squared relative error is ~1e-13.
    EXPECT_LT(loss.evaluate(keys, values, nullptr, nullptr), 1e-10);
  }
}

// L(m) = ‖O(K̂, V̂) − O(K, V)‖² / ‖O(K, V)‖² over the last query_rows() tokens, recomputed with the
// fp64 attention of the synthetic model. With 24 tokens every row counts; with 100 the last 64 do.
// The library runs in fp32: 1e-4 relative leaves room for its rounding.
TEST(AttentionDistillLoss, LossIsTheRelativeAttentionOutputError) {
  for (int32_t n_tokens : {24, 100}) {
    for (const Case& c : kCases) {
      Fixture f(c, n_tokens);
      CpuAttentionDistillLoss loss = f.loss();
      ASSERT_EQ(loss.query_rows(), std::min(n_tokens, 64));
      const Masks keys = f.random_masks(f.key_groups, 3),
                  values = f.random_masks(f.value_groups, 4);
      const std::vector<double> reference =
          f.model.attention(f.sample.keys, f.sample.values, f.sample.queries);
      const std::vector<double> compressed =
          f.model.attention(f.masked(f.sample.keys, f.key_groups, keys),
                            f.masked(f.sample.values, f.value_groups, values), f.sample.queries);
      const auto first_row =
          reference.end() - static_cast<std::ptrdiff_t>(loss.query_rows()) * f.model.q_width();
      const std::vector<double> last_reference(first_row, reference.end());
      const std::vector<double> last_compressed(compressed.end() - (reference.end() - first_row),
                                                compressed.end());
      const double expected =
          std::pow(starkv_test::relative_error(last_compressed, last_reference), 2);
      EXPECT_NEAR(loss.evaluate(keys, values, nullptr, nullptr), expected, 1e-4 * expected)
          << n_tokens;
    }
  }
}

// The analytic gradient against central differences with step h = 1e-3 on every mask entry. The
// loss is fp32 inside (absolute rounding ~1e-7·L), which puts ~1e-7·L/h ≈ 1e-5 of noise on each
// difference quotient; the O(h²) truncation is far smaller. Tolerance: 1e-3 of the largest
// gradient entry plus 2e-5.
TEST(AttentionDistillLoss, GradientMatchesFiniteDifferences) {
  for (const Case& c : kCases) {
    Fixture f(c, &c == &kCases[1] ? 100 : 24);  // one case with fewer query rows than tokens
    CpuAttentionDistillLoss loss = f.loss();
    Masks keys = f.random_masks(f.key_groups, 5), values = f.random_masks(f.value_groups, 6);
    // Drop the tail of each key group entirely, as a threshold would: the gradient is still
    // defined there (the loss is smooth in the masks).
    for (auto& m : keys)
      std::fill(m.begin() + static_cast<std::ptrdiff_t>(m.size() * 3 / 4), m.end(), 0.0);
    Masks key_grad, value_grad;
    loss.evaluate(keys, values, &key_grad, &value_grad);
    ASSERT_EQ(key_grad.size(), keys.size());
    ASSERT_EQ(value_grad.size(), values.size());

    double largest = 0.0;
    for (const Masks* g : {&key_grad, &value_grad})
      for (const auto& v : *g)
        for (double x : v) largest = std::max(largest, std::fabs(x));
    ASSERT_GT(largest, 0.0);
    const double h = 1e-3, tolerance = 1e-3 * largest + 2e-5;

    for (int kind = 0; kind < 2; ++kind) {
      Masks& masks = kind == 0 ? keys : values;
      const Masks& grad = kind == 0 ? key_grad : value_grad;
      for (size_t j = 0; j < masks.size(); ++j) {
        for (size_t i = 0; i < masks[j].size(); ++i) {
          const double saved = masks[j][i];
          masks[j][i] = saved + h;
          const double up = loss.evaluate(keys, values, nullptr, nullptr);
          masks[j][i] = saved - h;
          const double down = loss.evaluate(keys, values, nullptr, nullptr);
          masks[j][i] = saved;
          EXPECT_NEAR(grad[j][i], (up - down) / (2 * h), tolerance)
              << (kind == 0 ? "key" : "value") << " group " << j << " channel " << i
              << " (H=" << c.n_heads << " G=" << c.n_kv_heads << ")";
        }
      }
    }
  }
}

// Dropping the strongest direction of a group costs more than dropping its weakest.
TEST(AttentionDistillLoss, StrongDirectionsMatterMore) {
  Fixture f(kCases[0]);
  CpuAttentionDistillLoss loss = f.loss();
  Masks keys, values;
  for (const GroupSpectrum& g : f.key_groups) keys.emplace_back(static_cast<size_t>(g.in_dim), 1.0);
  for (const GroupSpectrum& g : f.value_groups)
    values.emplace_back(static_cast<size_t>(g.in_dim), 1.0);
  values[0].front() = 0.0;
  const double without_strongest = loss.evaluate(keys, values, nullptr, nullptr);
  values[0].front() = 1.0;
  values[0].back() = 0.0;
  const double without_weakest = loss.evaluate(keys, values, nullptr, nullptr);
  EXPECT_GT(without_strongest, 10 * without_weakest);
}
