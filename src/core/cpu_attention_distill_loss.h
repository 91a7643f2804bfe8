// The distillation loss (attention_distill_loss.h) on the CPU: CBLAS sgemm for the products, loops
// for RoPE, the causal softmax and the reductions. The reference the CUDA loss is tested against.
//
// Arithmetic is fp32 (BLAS sgemm) with double accumulation of the loss: a finite-difference check
// of the gradient agrees to ~1e-3 relative (see test_attention_distill_loss.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/attention_distill_loss.h"

namespace starkv {

class CpuAttentionDistillLoss final : public AttentionDistillLoss {
 public:
  // `key_groups` / `value_groups` (their bases) must outlive the loss; the sample is copied.
  // The sample must have queries. attention_scale must be resolved (not 0).
  CpuAttentionDistillLoss(const ModelShape& shape, const RopeConfig& rope, float attention_scale,
                          const DistillSample& sample, const std::vector<GroupSpectrum>& key_groups,
                          const std::vector<GroupSpectrum>& value_groups);

  double evaluate(const std::vector<std::vector<double>>& key_masks,
                  const std::vector<std::vector<double>>& value_masks,
                  std::vector<std::vector<double>>* key_grad,
                  std::vector<std::vector<double>>* value_grad) override;

 private:
  struct Group {
    int32_t in_offset;
    int32_t in_dim;
    const float* basis;         // [in_dim x in_dim]
    std::vector<float> latent;  // [n x in_dim] = x[:, group] · basis
  };

  void reconstruct(const std::vector<Group>& groups, const std::vector<std::vector<double>>& masks,
                   std::vector<float>& out);
  // Attention of queries_ over keys (pre-RoPE) and values, both [n x G*D]; writes out_ [nq x H*D]
  // and, once reference_ exists, returns the loss. With gradient buffers (both or neither) it
  // also back-propagates dL/d(keys) and dL/d(values) into them.
  double attend(const std::vector<float>& keys, const std::vector<float>& values,
                std::vector<float>* key_grad, std::vector<float>* value_grad);
  static void mask_gradient(const std::vector<Group>& groups, const std::vector<float>& dx,
                            int32_t width, int32_t n, std::vector<std::vector<double>>& grad);

  int32_t n_ = 0, n_heads_ = 0, n_kv_heads_ = 0, head_dim_ = 0, width_ = 0;
  int32_t n_queries_ = 0, first_query_ = 0;
  float scale_ = 1.0f;
  RopeConfig rope_;
  std::vector<float> inv_freq_;
  std::vector<float> queries_;    // [nq x H*D] post-RoPE, the last nq tokens
  std::vector<float> reference_;  // [nq x H*D] uncompressed output
  double reference_norm2_ = 0.0;
  std::vector<Group> key_groups_, value_groups_;
  // Scratch reused across evaluations.
  std::vector<float> keys_hat_, values_hat_, roped_keys_, out_, scores_, d_scores_, d_out_;
  std::vector<float> d_roped_keys_, d_values_;
};

}  // namespace starkv
