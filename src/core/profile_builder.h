// Builds a Profile from a model's per-layer weights and/or calibration data (DESIGN §2.1-2.2):
// decompose each layer as it is added (so the caller can free its weights), then allocate ranks
// across all layers at finish with the chosen allocator, and fold the quantizer's rotations in.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/profile.h"
#include "core/spectrum_solver.h"
#include "starkv/starkv.h"

namespace starkv {

// Everything the builder keeps about one layer between add_layer and finish. Defined in
// layer_spectrum.h (internal to the builder).
struct LayerSpectrum;

class ProfileBuilder {
 public:
  // `params` must be a complete struct (the C shim has already merged the caller's struct_size
  // prefix over the defaults) and is validated here; the uncompressed-layer list is copied.
  // `solver` does the products and SVDs; null means the CPU's.
  explicit ProfileBuilder(const starkv_profile_params& params,
                          std::unique_ptr<SpectrumSolver> solver = nullptr);
  ~ProfileBuilder();

  void add_layer(int32_t layer, const starkv_layer_data& data);
  void set_layer_factors(int32_t layer, const starkv_layer_factors& factors);
  std::unique_ptr<Profile> finish();

 private:
  SpectrumSolver& solver() { return solver_ != nullptr ? *solver_ : cpu_spectrum_solver(); }

  starkv_profile_params params_;
  std::unique_ptr<SpectrumSolver> solver_;  // null: the CPU solver
  std::vector<int32_t> uncompressed_layers_;
  std::vector<std::unique_ptr<LayerSpectrum>> layers_;
  bool finished_ = false;
};

// Resolves the K/V split of a low-rank target (DESIGN §2.2): 0.60 -> keys 0.70 / values 0.50,
// 0.75 -> keys 0.80 / values 0.70, linear in between and beyond, each clamped to [0, 0.98].
void split_target_compression(float target, float* key_compression, float* value_compression);

}  // namespace starkv
