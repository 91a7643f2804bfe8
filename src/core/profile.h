// A profile: per layer, the factor groups that turn keys and values into latents and back, plus
// everything the cache needs to store and attend (shape, RoPE, quantization). Immutable once
// built; shared by pools through a reference count kept in the C handle (src/api).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/row_layout.h"

namespace starkv {

// One low-rank factor pair. A group reads input channels [in_offset, in_offset + in_dim) of the
// G*D-wide key (or value) vector of a token: latent = x[in_offset:] · down, x̂ = latent · up.
// The quantizer's block Hadamard rotation is already folded into both matrices.
struct FactorGroup {
  int32_t in_offset = 0;
  int32_t in_dim = 0;   // D for a head-wise group, G*D for a joint one
  int32_t rank = 0;
  int32_t n_outlier = 0;     // leading latent channels stored at outlier precision
  std::vector<float> down;   // [in_dim x rank], row-major
  std::vector<float> up;     // [rank x in_dim], row-major

  int32_t first_head(int32_t head_dim) const { return in_offset / head_dim; }
  int32_t n_heads(int32_t head_dim) const { return in_dim / head_dim; }
};

struct LayerProfile {
  bool compressed = true;  // false: full rank, identity factors, 16-bit
  starkv_decomposition key_decomposition = STARKV_DECOMP_HEADWISE;
  starkv_decomposition value_decomposition = STARKV_DECOMP_JOINT;
  std::vector<FactorGroup> keys;
  std::vector<FactorGroup> values;
  int32_t inlier_bits = 16;   // the layer's own widths (16 for an uncompressed layer)
  int32_t outlier_bits = 16;

  int32_t key_rank_total() const;
  int32_t value_rank_total() const;
  int32_t latent_width() const { return key_rank_total() + value_rank_total(); }
};

// What the builder recorded about how the ranks were chosen (shown by `starkv inspect`).
struct BuildRecord {
  starkv_rank_allocator allocator = STARKV_ALLOC_SOFT_THRESHOLD;
  float target_compression = 0.0f;
  float key_compression = 0.0f;
  float value_compression = 0.0f;
  bool calibrated = false;
  bool imported = false;  // factors assembled from elsewhere
};

struct Profile {
  ModelShape shape;
  RopeConfig rope;
  float attention_scale = 0.0f;  // resolved: never 0 in a finished profile
  QuantConfig quant;
  uint64_t seed = 0;
  BuildRecord record;
  std::vector<LayerProfile> layers;
  std::vector<RowLayout> row_layouts;  // derived from layers; recomputed after load

  // Recomputes row_layouts and the fingerprint from everything else (call after any change; a
  // profile handed to a pool is never changed again).
  void finalize_layouts();
  int64_t bytes_per_token() const;        // all layers
  int64_t dense_bytes_per_token() const;  // n_layers * 2 * G * D * 2
  // Stable 64-bit fingerprint of the serialized profile (snapshots check it).
  uint64_t fingerprint() const { return fingerprint_; }

 private:
  uint64_t fingerprint_ = 0;
};

}  // namespace starkv
