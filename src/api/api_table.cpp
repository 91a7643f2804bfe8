// starkv_get_api: the function table for programs that dlopen the library.
#include <string>

#include "api/guard.h"

namespace {

starkv_api make_table() {
  starkv_api t{};
  t.struct_size = sizeof(t);
  t.abi_version = STARKV_ABI_VERSION;
  t.version_number = starkv_version_number;
  t.version_string = starkv_version_string;
  t.status_string = starkv_status_string;
  t.last_error = starkv_last_error;
  t.context_params_default = starkv_context_params_default;
  t.backend_available = starkv_backend_available;
  t.context_create = starkv_context_create;
  t.context_destroy = starkv_context_destroy;
  t.context_set_stream = starkv_context_set_stream;
  t.context_synchronize = starkv_context_synchronize;
  t.profile_params_default = starkv_profile_params_default;
  t.layer_data_default = starkv_layer_data_default;
  t.layer_factors_default = starkv_layer_factors_default;
  t.profile_builder_create = starkv_profile_builder_create;
  t.profile_builder_destroy = starkv_profile_builder_destroy;
  t.profile_builder_add_layer = starkv_profile_builder_add_layer;
  t.profile_builder_set_layer_factors = starkv_profile_builder_set_layer_factors;
  t.profile_builder_finish = starkv_profile_builder_finish;
  t.profile_destroy = starkv_profile_destroy;
  t.profile_save = starkv_profile_save;
  t.profile_load = starkv_profile_load;
  t.profile_save_to_buffer = starkv_profile_save_to_buffer;
  t.profile_load_from_buffer = starkv_profile_load_from_buffer;
  t.profile_info_default = starkv_profile_info_default;
  t.profile_get_info = starkv_profile_get_info;
  t.profile_get_ranks = starkv_profile_get_ranks;
  t.profile_get_projection = starkv_profile_get_projection;
  t.profile_latent_width = starkv_profile_latent_width;
  t.pool_params_default = starkv_pool_params_default;
  t.pool_usage_default = starkv_pool_usage_default;
  t.cache_pool_create = starkv_cache_pool_create;
  t.cache_pool_destroy = starkv_cache_pool_destroy;
  t.cache_pool_get_usage = starkv_cache_pool_get_usage;
  t.seq_create = starkv_seq_create;
  t.seq_fork = starkv_seq_fork;
  t.seq_release = starkv_seq_release;
  t.seq_length = starkv_seq_length;
  t.seq_export = starkv_seq_export;
  t.seq_import = starkv_seq_import;
  t.append = starkv_append;
  t.append_latents = starkv_append_latents;
  t.decode_step_create = starkv_decode_step_create;
  t.decode_step_destroy = starkv_decode_step_destroy;
  t.decode_step_plan = starkv_decode_step_plan;
  t.decode_step_run = starkv_decode_step_run;
  t.attend = starkv_attend;
  t.layer_info_default = starkv_layer_info_default;
  t.profile_get_layer_info = starkv_profile_get_layer_info;
  t.clear_error = starkv_clear_error;
  t.dtype_size = starkv_dtype_size;
  return t;
}

const starkv_api api_table = make_table();

}  // namespace

extern "C" const starkv_api* starkv_get_api(uint32_t abi_version) {
  starkv::clear_last_error();
  if (abi_version != STARKV_ABI_VERSION) {
    starkv::set_last_error("starkv_get_api: this library serves ABI version " +
                           std::to_string(STARKV_ABI_VERSION) + ", not " +
                           std::to_string(abi_version));
    return nullptr;
  }
  return &api_table;
}
