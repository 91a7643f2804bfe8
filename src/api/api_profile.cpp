// Profiles: the builder, files and buffers, and inspection.
#include <algorithm>
#include <cmath>
#include <string>

#include "api/guard.h"
#include "api/handles.h"
#include "core/enum_value.h"
#include "core/profile_format.h"

using namespace starkv;

namespace {

const Profile& profile_of(const starkv_profile* p) {
  require_handle(p, "profile");
  return *p->profile;
}

const LayerProfile& layer_of(const Profile& p, int32_t layer) {
  require(layer >= 0 && layer < p.shape.n_layers, STARKV_ERR_INVALID_ARGUMENT,
          "layer " + std::to_string(layer) + " is out of range [0, " +
              std::to_string(p.shape.n_layers) + ")");
  return p.layers[static_cast<size_t>(layer)];
}

const std::vector<FactorGroup>& groups_of(const LayerProfile& l, starkv_tensor_kind kind) {
  require(enum_is_one_of(kind, STARKV_KEYS, STARKV_VALUES), STARKV_ERR_INVALID_ARGUMENT,
          "kind must be STARKV_KEYS or STARKV_VALUES");
  return kind == STARKV_KEYS ? l.keys : l.values;
}

starkv_profile* wrap(std::shared_ptr<const Profile> profile) {
  auto handle = std::make_unique<starkv_profile>();
  handle->profile = std::move(profile);
  return handle.release();
}

}  // namespace

extern "C" {

starkv_profile_params starkv_profile_params_default(void) {
  starkv_profile_params p{};
  p.struct_size = sizeof(p);
  p.rope_style = STARKV_ROPE_NEOX;
  p.rope_dim = 0;
  p.rope_theta = 10000.0f;
  p.rope_scaling = STARKV_ROPE_SCALING_NONE;
  p.rope_scaling_factor = 1.0f;
  p.rope_low_freq_factor = 1.0f;
  p.rope_high_freq_factor = 4.0f;
  p.rope_original_max_position = 8192;
  p.attention_scale = 0.0f;
  p.target_compression = 0.75f;
  p.key_compression = -1.0f;
  p.value_compression = -1.0f;
  p.allocator = STARKV_ALLOC_SOFT_THRESHOLD;
  p.key_decomposition = STARKV_DECOMP_HEADWISE;
  p.value_decomposition = STARKV_DECOMP_JOINT;
  p.min_key_rank = 8;
  p.key_rank_tile = 1;
  p.value_rank_tile = 1;
  p.uncompressed_layers = nullptr;
  p.n_uncompressed_layers = 0;
  p.target_counts_all_layers = 0;
  p.whitening_lambda = 1e-3f;
  p.max_calibration_tokens = 4096;
  p.st_max_steps = 400;
  p.st_sharpness = 50.0f;
  p.st_learning_rate = 1e-2f;
  p.st_key_pressure = 0.1f;
  p.st_value_pressure = 0.1f;
  p.st_distill_tokens = 256;
  p.seed = 0x5eedULL;
  p.inlier_bits = 16;
  p.outlier_bits = 16;
  p.outlier_fraction = 0.2f;
  p.hadamard = 1;
  p.pack_3bit_in_nibbles = 0;
  p.progress = nullptr;
  p.progress_user = nullptr;
  return p;
}

starkv_layer_data starkv_layer_data_default(void) {
  starkv_layer_data d{};
  d.struct_size = sizeof(d);
  d.weight_dtype = STARKV_DTYPE_F32;
  d.weight_layout = STARKV_WEIGHT_OUT_IN;
  d.calib_hidden_dtype = STARKV_DTYPE_F32;
  d.calib_kv_dtype = STARKV_DTYPE_F32;
  return d;
}

starkv_layer_factors starkv_layer_factors_default(void) {
  starkv_layer_factors f{};
  f.struct_size = sizeof(f);
  f.key_decomposition = STARKV_DECOMP_HEADWISE;
  f.value_decomposition = STARKV_DECOMP_JOINT;
  return f;
}

starkv_status starkv_profile_builder_create(starkv_context* ctx,
                                            const starkv_profile_params* params,
                                            starkv_profile_builder** out) {
  return guarded(__func__, [&] {
    require_out(out, "out");
    require(params != nullptr, STARKV_ERR_INVALID_ARGUMENT, "params must not be NULL");
    const starkv_profile_params p =
        merge_params(params, starkv_profile_params_default(), "starkv_profile_params");
    auto handle = std::make_unique<starkv_profile_builder>();
    // A CUDA context builds on its device (cuBLAS + cuSOLVER); otherwise LAPACK on the CPU.
    std::unique_ptr<SpectrumSolver> solver;
    if (ctx != nullptr && ctx->backend->kind() == STARKV_BACKEND_CUDA) {
      solver = make_cuda_spectrum_solver(ctx->params.device);
    }
    handle->builder = std::make_unique<ProfileBuilder>(p, std::move(solver));
    *out = handle.release();
  });
}

void starkv_profile_builder_destroy(starkv_profile_builder* builder) { delete builder; }

starkv_status starkv_profile_builder_add_layer(starkv_profile_builder* builder, int32_t layer,
                                               const starkv_layer_data* data) {
  return guarded(__func__, [&] {
    require_handle(builder, "builder");
    require(data != nullptr, STARKV_ERR_INVALID_ARGUMENT, "data must not be NULL");
    const starkv_layer_data d = merge_params(data, starkv_layer_data_default(), "starkv_layer_data");
    builder->builder->add_layer(layer, d);
  });
}

starkv_status starkv_profile_builder_set_layer_factors(starkv_profile_builder* builder,
                                                       int32_t layer,
                                                       const starkv_layer_factors* factors) {
  return guarded(__func__, [&] {
    require_handle(builder, "builder");
    require(factors != nullptr, STARKV_ERR_INVALID_ARGUMENT, "factors must not be NULL");
    const starkv_layer_factors f =
        merge_params(factors, starkv_layer_factors_default(), "starkv_layer_factors");
    builder->builder->set_layer_factors(layer, f);
  });
}

starkv_status starkv_profile_builder_finish(starkv_profile_builder* builder,
                                            starkv_profile** out) {
  return guarded(__func__, [&] {
    require_handle(builder, "builder");
    require_out(out, "out");
    std::shared_ptr<const Profile> profile = builder->builder->finish();
    *out = wrap(std::move(profile));
  });
}

void starkv_profile_destroy(starkv_profile* profile) { delete profile; }

starkv_status starkv_profile_save(const starkv_profile* profile, const char* path) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    require(path != nullptr, STARKV_ERR_INVALID_ARGUMENT, "path must not be NULL");
    save_profile_file(p, path);
  });
}

starkv_status starkv_profile_load(const char* path, starkv_profile** out) {
  return guarded(__func__, [&] {
    require_out(out, "out");
    require(path != nullptr, STARKV_ERR_INVALID_ARGUMENT, "path must not be NULL");
    *out = wrap(load_profile_file(path));
  });
}

starkv_status starkv_profile_save_to_buffer(const starkv_profile* profile, void* buffer,
                                            size_t capacity, size_t* size_out) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    require_out(size_out, "size_out");
    const std::vector<uint8_t> bytes = serialize_profile(p);
    *size_out = bytes.size();
    if (buffer == nullptr) return;  // a size query
    require(capacity >= bytes.size(), STARKV_ERR_BUFFER_TOO_SMALL,
            "the profile needs " + std::to_string(bytes.size()) + " bytes, the buffer holds " +
                std::to_string(capacity));
    std::copy(bytes.begin(), bytes.end(), static_cast<uint8_t*>(buffer));
  });
}

starkv_status starkv_profile_load_from_buffer(const void* buffer, size_t size,
                                              starkv_profile** out) {
  return guarded(__func__, [&] {
    require_out(out, "out");
    require(buffer != nullptr, STARKV_ERR_INVALID_ARGUMENT, "buffer must not be NULL");
    *out = wrap(deserialize_profile(buffer, size));
  });
}

starkv_profile_info starkv_profile_info_default(void) {
  starkv_profile_info i{};
  i.struct_size = sizeof(i);
  return i;
}

starkv_layer_info starkv_layer_info_default(void) {
  starkv_layer_info i{};
  i.struct_size = sizeof(i);
  return i;
}

starkv_status starkv_profile_get_info(const starkv_profile* profile, starkv_profile_info* info) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    require_out(info, "info");
    starkv_profile_info r = merge_params(info, starkv_profile_info_default(), "starkv_profile_info");
    r.n_layers = p.shape.n_layers;
    r.n_heads = p.shape.n_heads;
    r.n_kv_heads = p.shape.n_kv_heads;
    r.head_dim = p.shape.head_dim;
    r.inlier_bits = p.quant.inlier_bits;
    r.outlier_bits = p.quant.outlier_bits;
    const int64_t dense_layer_channels = 2LL * p.shape.kv_width();
    const int64_t dense_layer_bytes = 2 * dense_layer_channels;
    int64_t latent = 0, latent_compressed = 0, bytes_compressed = 0, n_compressed = 0;
    r.n_uncompressed_layers = 0;
    for (size_t l = 0; l < p.layers.size(); ++l) {
      const LayerProfile& layer = p.layers[l];
      latent += layer.latent_width();
      if (layer.compressed) {
        ++n_compressed;
        latent_compressed += layer.latent_width();
        bytes_compressed += p.row_layouts[l].row_bytes;
      } else {
        ++r.n_uncompressed_layers;
      }
    }
    r.latent_channels_per_token = latent;
    r.dense_channels_per_token = dense_layer_channels * p.shape.n_layers;
    r.bytes_per_token = p.bytes_per_token();
    r.dense_bytes_per_token = p.dense_bytes_per_token();
    r.low_rank_compression = 1.0 - static_cast<double>(latent) /
                                       static_cast<double>(r.dense_channels_per_token);
    r.compression = 1.0 - static_cast<double>(r.bytes_per_token) /
                              static_cast<double>(r.dense_bytes_per_token);
    r.compression_factor = static_cast<double>(r.dense_bytes_per_token) /
                           static_cast<double>(std::max<int64_t>(1, r.bytes_per_token));
    if (n_compressed > 0) {
      r.low_rank_compression_compressed_layers =
          1.0 - static_cast<double>(latent_compressed) /
                    static_cast<double>(dense_layer_channels * n_compressed);
      r.compression_compressed_layers =
          1.0 - static_cast<double>(bytes_compressed) /
                    static_cast<double>(dense_layer_bytes * n_compressed);
    }
    std::memcpy(static_cast<void*>(info), &r, info->struct_size);
  });
}

starkv_status starkv_profile_get_layer_info(const starkv_profile* profile, int32_t layer,
                                            starkv_layer_info* info) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    const LayerProfile& l = layer_of(p, layer);
    require_out(info, "info");
    starkv_layer_info r = merge_params(info, starkv_layer_info_default(), "starkv_layer_info");
    r.compressed = l.compressed ? 1 : 0;
    r.key_decomposition = l.key_decomposition;
    r.value_decomposition = l.value_decomposition;
    r.n_key_groups = static_cast<int32_t>(l.keys.size());
    r.n_value_groups = static_cast<int32_t>(l.values.size());
    r.key_rank_total = l.key_rank_total();
    r.value_rank_total = l.value_rank_total();
    r.bytes_per_token = p.row_layouts[static_cast<size_t>(layer)].row_bytes;
    std::memcpy(static_cast<void*>(info), &r, info->struct_size);
  });
}

starkv_status starkv_profile_get_ranks(const starkv_profile* profile, int32_t layer,
                                       starkv_tensor_kind kind, int32_t* ranks, int32_t capacity,
                                       int32_t* count) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    const std::vector<FactorGroup>& groups = groups_of(layer_of(p, layer), kind);
    require_out(count, "count");
    const int32_t n = static_cast<int32_t>(groups.size());
    *count = n;
    if (ranks == nullptr) return;
    require(capacity >= n, STARKV_ERR_BUFFER_TOO_SMALL,
            "the layer has " + std::to_string(n) + " groups, ranks holds " +
                std::to_string(capacity));
    for (int32_t g = 0; g < n; ++g) ranks[g] = groups[static_cast<size_t>(g)].rank;
  });
}

starkv_status starkv_profile_get_projection(const starkv_profile* profile, int32_t layer,
                                            starkv_tensor_kind kind, int32_t group,
                                            starkv_projection which, float* out,
                                            size_t capacity, size_t* count) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    const std::vector<FactorGroup>& groups = groups_of(layer_of(p, layer), kind);
    require(group >= 0 && group < static_cast<int32_t>(groups.size()),
            STARKV_ERR_INVALID_ARGUMENT,
            "group " + std::to_string(group) + " is out of range [0, " +
                std::to_string(groups.size()) + ")");
    require(enum_is_one_of(which, STARKV_DOWN, STARKV_UP), STARKV_ERR_INVALID_ARGUMENT,
            "which must be STARKV_DOWN or STARKV_UP");
    require_out(count, "count");
    const FactorGroup& g = groups[static_cast<size_t>(group)];
    const std::vector<float>& m = which == STARKV_DOWN ? g.down : g.up;
    *count = m.size();
    if (out == nullptr) return;
    require(capacity >= m.size(), STARKV_ERR_BUFFER_TOO_SMALL,
            "the projection has " + std::to_string(m.size()) + " elements, out holds " +
                std::to_string(capacity));
    std::copy(m.begin(), m.end(), out);
  });
}

starkv_status starkv_profile_latent_width(const starkv_profile* profile, int32_t layer,
                                          int32_t* width) {
  return guarded(__func__, [&] {
    const Profile& p = profile_of(profile);
    const LayerProfile& l = layer_of(p, layer);
    require_out(width, "width");
    *width = l.latent_width();
  });
}

}  // extern "C"
