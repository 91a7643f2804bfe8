// What the profile builder keeps about one layer between add_layer and finish (DESIGN §2.1-2.2):
// the spectra of its key and value groups, a short run of calibration tokens for the
// attention-output distillation loss, or, for a layer whose factors came from elsewhere, those
// factors. Everything is copied out of the caller's buffers, so the caller may free them as soon
// as add_layer returns.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/decomposition.h"
#include "core/spectrum_solver.h"
#include "core/profile.h"
#include "starkv/starkv.h"

namespace starkv {

// Consecutive calibration tokens at positions 0..n-1, in the layout the attention sees them.
struct DistillSample {
  int32_t n_tokens = 0;
  std::vector<float> keys;     // [n, G*D] pre-RoPE
  std::vector<float> values;   // [n, G*D]
  std::vector<float> queries;  // [n, H*D] post-RoPE; empty when the layer had no queries

  bool has_queries() const { return n_tokens > 0 && !queries.empty(); }
};

struct LayerSpectrum {
  enum class Source {
    kDecomposed,    // spectra from weights and/or calibration data; ranks are allocated
    kFixedFactors,  // factors given by set_layer_factors; ranks are fixed
    kUncompressed   // listed in params.uncompressed_layers: identity factors, 16 bits
  };
  Source source = Source::kDecomposed;
  starkv_decomposition key_decomposition = STARKV_DECOMP_HEADWISE;
  starkv_decomposition value_decomposition = STARKV_DECOMP_JOINT;
  bool calibrated = false;  // spectra in a data-aware norm (whitened weights or samples)

  std::vector<GroupSpectrum> keys;    // kDecomposed
  std::vector<GroupSpectrum> values;  // kDecomposed
  DistillSample distill;              // kDecomposed; n_tokens 0 without calibration data

  std::vector<FactorGroup> fixed_keys;    // kFixedFactors: rank, down, up set; no rotation yet
  std::vector<FactorGroup> fixed_values;  // kFixedFactors
};

// Validates one layer's data against `params` (statuses: INVALID_ARGUMENT for missing or
// inconsistent inputs, DTYPE for an unknown dtype, NUMERICAL for NaN/Inf or a failed SVD) and
// decomposes it. `params` must already be validated (ProfileBuilder's constructor does).
std::unique_ptr<LayerSpectrum> spectrum_from_layer_data(const starkv_profile_params& params,
                                                        int32_t layer,
                                                        const starkv_layer_data& data,
                                                        SpectrumSolver& solver);

// Validates and copies factors computed elsewhere (key_up/value_up NULL: the transpose of down).
std::unique_ptr<LayerSpectrum> spectrum_from_factors(const starkv_profile_params& params,
                                                     int32_t layer,
                                                     const starkv_layer_factors& factors);

}  // namespace starkv
