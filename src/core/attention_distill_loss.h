// The layer-local distillation loss of the soft-threshold rank allocator (DESIGN §2.2) and its
// analytic gradient.
//
// On n calibration tokens (positions 0..n-1) with pre-RoPE keys K, values V and post-RoPE
// queries Q, every factor group j with basis B_j (right singular vectors, columns) gets a mask
// m_j over its directions, and keys and values are reconstructed through the masked basis:
//   k̂ = k_g · B_j diag(m_j) B_jᵀ   (per group, on the group's channels; likewise v̂).
// The loss is the relative error of the layer's causal softmax attention output (GQA, RoPE on the
// reconstructed keys, as the cache will compute it) against the uncompressed output:
//   L(m) = ‖O(K̂, V̂) − O(K, V)‖² / ‖O(K, V)‖²,
// measured on the outputs of the last min(n, 64) tokens (query_rows()): long, decode-like
// contexts over every reconstructed key and value of the sample, at a fraction of the cost of
// all n rows.
// The gradient dL/dm is back-propagated by hand: dO → dP → dS (softmax) → d(roped K̂) → inverse
// RoPE → dK̂ → dm through the latent coordinates z = k_g · B_j (dm_i = Σ_t z_ti (dK̂_t B_j)_i);
// values take the short way dO → dV̂ = Pᵀ dO → dm. No autograd framework is involved.
//
// Arithmetic is fp32 (BLAS sgemm) with double accumulation of the loss: a finite-difference check
// of the gradient agrees to ~1e-3 relative (see test_attention_distill_loss.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/decomposition.h"
#include "core/layer_spectrum.h"
#include "core/model_config.h"

namespace starkv {

class AttentionDistillLoss {
 public:
  // `key_groups` / `value_groups` (their bases) must outlive the loss; the sample is copied.
  // The sample must have queries. attention_scale must be resolved (not 0).
  AttentionDistillLoss(const ModelShape& shape, const RopeConfig& rope, float attention_scale,
                       const DistillSample& sample, const std::vector<GroupSpectrum>& key_groups,
                       const std::vector<GroupSpectrum>& value_groups);

  // L(m) for masks[j][i] of channel i of group j (1 keeps a direction, 0 drops it). When the
  // gradient pointers are not null they receive dL/dm in the same shape, for every channel.
  double evaluate(const std::vector<std::vector<double>>& key_masks,
                  const std::vector<std::vector<double>>& value_masks,
                  std::vector<std::vector<double>>* key_grad,
                  std::vector<std::vector<double>>* value_grad);

  int32_t n_tokens() const { return n_; }
  // The output rows the loss measures: positions [n_tokens() - query_rows(), n_tokens()).
  int32_t query_rows() const { return n_queries_; }

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
