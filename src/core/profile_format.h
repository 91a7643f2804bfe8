// Profiles as bytes: the payload (every field of a Profile) inside the file envelope
// (file_envelope.h). Loading validates every field, so a damaged or hostile file is rejected with
// a clear error instead of producing a profile that would crash a kernel later.
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
