// Profiles as bytes: the payload (every field of a Profile) inside the file envelope
// (file_envelope.h). Loading validates every field, so a damaged or hostile file is rejected with
// a clear error instead of producing a profile that would crash a kernel later.
//
// Payload (format version 1), little-endian, no padding; enums are int32, flags one byte (0/1):
//   shape      n_layers, n_heads, n_kv_heads, head_dim, hidden_dim          5 x int32
//   rope       style, rotary_dim (int32), theta (f32), scaling (int32), factor, low_freq_factor,
//              high_freq_factor (f32), original_max_position (int32)
//   attention_scale (f32)
//   quant      inlier_bits, outlier_bits (int32), outlier_fraction (f32), hadamard,
//              pack_3bit_in_nibbles (flags)
//   seed (uint64)
//   record     allocator (int32), target/key/value compression (f32), calibrated, imported (flags)
//   n_layers (uint32), then per layer:
//              compressed (flag), key_decomposition, value_decomposition, inlier_bits,
//              outlier_bits (int32), n_key_groups (uint32), key groups, n_value_groups (uint32),
//              value groups; a group is in_offset, in_dim, rank, n_outlier (int32),
//              down [in_dim x rank] f32, up [rank x in_dim] f32
// Row layouts are not stored: they are recomputed on load (finalize_layouts).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/profile.h"

namespace starkv {

std::vector<uint8_t> serialize_profile_payload(const Profile& profile);
std::vector<uint8_t> serialize_profile(const Profile& profile);  // envelope + payload
std::unique_ptr<Profile> deserialize_profile(const void* data, size_t size);

void save_profile_file(const Profile& profile, const char* path);
std::unique_ptr<Profile> load_profile_file(const char* path);

// Checks a profile's structure (shape, group partition, ranks, factor sizes, bits); throws
// Error(status, message). Used on load and by the builder on its own result.
void validate_profile(const Profile& profile, starkv_status status);

}  // namespace starkv
