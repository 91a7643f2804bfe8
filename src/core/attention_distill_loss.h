// The layer-local distillation loss of the soft-threshold rank allocator (DESIGN §2.2) and its
// analytic gradient: the seam between the allocator and where the arithmetic runs.
//
// On n calibration tokens (positions 0..n-1) with pre-RoPE keys K, values V and post-RoPE
// queries Q, every factor group j with basis B_j (right singular vectors, columns) gets a mask
// m_j over its directions, and keys and values are reconstructed through the masked basis:
//   k̂ = k_g · B_j diag(m_j) B_jᵀ   (per group, on the group's channels; likewise v̂).
// The loss is the relative error of the layer's causal softmax attention output (GQA, RoPE on the
// reconstructed keys, as the cache will compute it) against the uncompressed output:
//   L(m) = ‖O(K̂, V̂) − O(K, V)‖² / ‖O(K, V)‖²,
// measured on the outputs of the last min(n, kDistillQueryRows) tokens (query_rows()).
// The gradient dL/dm is back-propagated by hand: dO → dP → dS (softmax) → d(roped K̂) → inverse
// RoPE → dK̂ → dm through the latent coordinates z = k_g · B_j (dm_i = Σ_t z_ti (dK̂_t B_j)_i);
// values take the short way dO → dV̂ = Pᵀ dO → dm. No autograd framework is involved.
//
// Two implementations compute the same quantity in fp32 (sums that cancel in double):
//   CpuAttentionDistillLoss   cpu_attention_distill_loss.h, CBLAS
//   the CUDA loss             src/cuda/cuda_attention_distill_loss.cpp, cuBLAS + small kernels
// The profile builder takes the CUDA one when its spectrum solver runs on a GPU
// (profile_builder.cpp): the allocator calls evaluate for every layer on every Adam step, and this
// is where the O(n²·H·D) work of soft-threshold allocation is.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/decomposition.h"
#include "core/layer_spectrum.h"
#include "core/model_config.h"

namespace starkv {

// The loss reads the outputs of the last kDistillQueryRows calibration tokens only: each of them
// attends to up to n keys (long, decode-like contexts), and every key and value of the sample is
// still reconstructed and attended to. At n = 256 that is a quarter of the attention work of using
// every row, for the same quantity measured.
constexpr int32_t kDistillQueryRows = 64;

class AttentionDistillLoss {
 public:
  virtual ~AttentionDistillLoss() = default;

  // L(m) for masks[j][i] of channel i of group j (1 keeps a direction, 0 drops it). When the
  // gradient pointers are not null they receive dL/dm in the same shape, for every channel.
  // Throws Error(STARKV_ERR_INTERNAL) when the masks do not match the groups.
  virtual double evaluate(const std::vector<std::vector<double>>& key_masks,
                          const std::vector<std::vector<double>>& value_masks,
                          std::vector<std::vector<double>>* key_grad,
                          std::vector<std::vector<double>>* value_grad) = 0;

  int32_t n_tokens() const { return n_tokens_; }
  // The output rows the loss measures: positions [n_tokens() - query_rows(), n_tokens()).
  int32_t query_rows() const { return query_rows_; }

 protected:
  explicit AttentionDistillLoss(int32_t n_tokens)
      : n_tokens_(n_tokens), query_rows_(std::min(n_tokens, kDistillQueryRows)) {}

 private:
  int32_t n_tokens_;
  int32_t query_rows_;
};

// --- the CUDA implementation (src/cuda/; both throw Error(STARKV_ERR_BACKEND_UNAVAILABLE) in
// builds without CUDA) ---

// The stream and cuBLAS handle that the CUDA losses of one profile build share. A model has one
// loss per layer and the allocator evaluates them one after another, so one handle serves them
// all (a handle per layer would hold a cuBLAS workspace, tens of MiB, per layer for nothing).
// Opaque outside src/cuda/; not to be used from two threads at once.
struct CudaDistillQueue;
std::shared_ptr<CudaDistillQueue> make_cuda_distill_queue(int32_t device);

// A loss on the queue's device. The sample and the bases are uploaded here, once; each evaluate
// uploads the masks and downloads the loss and gradients, and returns when they are on the host.
// `key_groups` / `value_groups` need not outlive the loss. The sample must have queries and
// attention_scale must be resolved (not 0).
std::unique_ptr<AttentionDistillLoss> make_cuda_attention_distill_loss(
    std::shared_ptr<CudaDistillQueue> queue, const ModelShape& shape, const RopeConfig& rope,
    float attention_scale, const DistillSample& sample,
    const std::vector<GroupSpectrum>& key_groups, const std::vector<GroupSpectrum>& value_groups);

}  // namespace starkv
