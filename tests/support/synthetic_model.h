// A synthetic attention model for testing profile building and rank allocation without a real
// checkpoint: random projections whose per-head spectra are chosen, hidden states with a chosen
// covariance, and an fp64 dense attention to measure what compression costs.
//
// Per layer l and KV head g, the key projection (k = x · W, W of shape d x D for that head) is
//   W_K^{l,g} = U diag(σ) Vᵀ,  σ_i ∝ exp(−decay_{l,g} · i / D),  Σ σ_i² = D,
// with U (d x D) and V (D x D) random orthonormal: decay 0 is a flat spectrum (every direction
// matters), decay 20+ a nearly low-rank head. Values likewise with their own decays. Hidden states
// are x = z · diag(√λ) · Rᵀ with z ~ N(0, I), λ_i ∝ exp(−anisotropy · i / d) (mean 1), R random
// orthogonal, so with isotropic inputs (anisotropy 0) keys have unit variance per channel.
// Queries mix the head's key projection, turned by a random rotation, with noise
// (query_key_alignment): scores then depend on the key directions that carry energy, as in trained
// models, and query_gain sets how peaked the attention is.
//
// Works for MHA and GQA and any head_dim (32, 64, 128, ...). RoPE is the full-width rotation of
// reference_attention.h (neox or gptj, no scaling).
#pragma once

#include <cstdint>
#include <vector>

#include "core/profile.h"
#include "starkv/starkv.h"
#include "support/reference_attention.h"

namespace starkv_test {

struct SyntheticModelSpec {
  int32_t n_layers = 1;
  int32_t hidden_dim = 128;
  AttentionShape attention;  // H, G, D, RoPE style and theta, softmax scale
  // Spectral decay per [layer][kv head]; a missing layer or head uses default_decay.
  std::vector<std::vector<float>> key_decay;
  std::vector<std::vector<float>> value_decay;
  float default_decay = 2.0f;
  float hidden_anisotropy = 0.0f;
  float query_key_alignment = 0.7f;  // 0: queries independent of keys; 1: W_Q^h = W_K^{g(h)} M_h
  float query_gain = 2.0f;  // scales W_Q: about the logits' standard deviation (flat heads)
  uint32_t seed = 1;
};

// Two layers, GQA 8/4, D = 64, whose key heads run from nearly rank 4 (decay 32: σ_i ∝ e^{-i/2})
// to slowly decaying (decay 2: σ_63 = σ_0/e²), and whose value blocks are steep in layer 0 and
// much flatter in layer 1: the model where adaptive ranks should pay.
SyntheticModelSpec contrast_model_spec();

class SyntheticModel {
 public:
  explicit SyntheticModel(const SyntheticModelSpec& spec);

  const SyntheticModelSpec& spec() const { return spec_; }
  int32_t kv_width() const { return spec_.attention.n_kv_heads * spec_.attention.head_dim; }
  int32_t q_width() const { return spec_.attention.n_heads * spec_.attention.head_dim; }

  // Weights in the OUT_IN layout of torch nn.Linear / HF checkpoints: w_k and w_v [G*D x d],
  // w_q [H*D x d], fp32.
  const std::vector<float>& w_k(int32_t layer) const {
    return layers_[static_cast<size_t>(layer)].w_k;
  }
  const std::vector<float>& w_v(int32_t layer) const {
    return layers_[static_cast<size_t>(layer)].w_v;
  }
  const std::vector<float>& w_q(int32_t layer) const {
    return layers_[static_cast<size_t>(layer)].w_q;
  }

  // n_tokens hidden states [n x d] from the model's input distribution; different seeds give
  // independent tokens (use one seed for calibration, another for held-out evaluation).
  std::vector<float> hidden_states(int32_t n_tokens, uint32_t seed) const;
  // Pre-RoPE keys / values [n x G*D] and post-RoPE queries [n x H*D] (row t at position t).
  std::vector<float> keys(int32_t layer, const std::vector<float>& hidden) const;
  std::vector<float> values(int32_t layer, const std::vector<float>& hidden) const;
  std::vector<float> queries(int32_t layer, const std::vector<float>& hidden) const;

  // Causal softmax attention in fp64 (GQA; RoPE applied here to the pre-RoPE keys): [n x H*D].
  std::vector<double> attention(const std::vector<float>& keys, const std::vector<float>& values,
                                const std::vector<float>& queries) const;

  // Params for a profile of this model (shape, hidden_dim, RoPE copied; the rest default).
  starkv_profile_params profile_params() const;
  // The layer's weights (w_k, w_v, w_q) and, if given, calibration hidden states. The returned
  // struct points into this model and into *hidden, which must outlive its use.
  starkv_layer_data layer_data(int32_t layer, const std::vector<float>* hidden = nullptr) const;

 private:
  struct Layer {
    std::vector<float> w_k, w_v, w_q;  // OUT_IN
  };
  std::vector<float> project(const std::vector<float>& w, int32_t width,
                             const std::vector<float>& hidden) const;

  SyntheticModelSpec spec_;
  std::vector<Layer> layers_;
  std::vector<double> input_transform_;  // [d x d]: x = z · input_transform_
};

// x̂ = Σ_groups (x[:, group] · down) · up: keys or values [n x width] reconstructed through a
// profile layer's factors, as the cache does without quantization.
std::vector<float> reconstruct_with_factors(const std::vector<starkv::FactorGroup>& groups,
                                            const std::vector<float>& x, int32_t width);

// ‖a − b‖ / ‖b‖
double relative_error(const std::vector<double>& a, const std::vector<double>& b);

// The relative attention-output error ‖O(K̂, V̂) − O(K, V)‖ / ‖O(K, V)‖ of a profile on the given
// tokens, keys and values reconstructed with the profile's factors only (no quantization). One
// layer, or pooled over all layers (sqrt of summed squared errors over summed squared norms).
double profile_attention_error(const SyntheticModel& model, const starkv::Profile& profile,
                               int32_t layer, const std::vector<float>& hidden);
double profile_attention_error(const SyntheticModel& model, const starkv::Profile& profile,
                               const std::vector<float>& hidden);

// The relative reconstruction error ‖X̂ − X‖_F / ‖X‖_F of a layer's keys or values on the tokens.
double profile_reconstruction_error(const SyntheticModel& model, const starkv::Profile& profile,
                                    int32_t layer, starkv_tensor_kind kind,
                                    const std::vector<float>& hidden);

}  // namespace starkv_test
