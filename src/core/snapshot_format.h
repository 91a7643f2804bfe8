// A sequence snapshot as bytes: the profile's fingerprint, the token count, and every layer's
// stored rows, inside the file envelope (file_envelope.h).
//
// Payload (format version 1), little-endian: profile_fingerprint (uint64), n_tokens (int32),
// n_layers (uint32), row_bytes (int32 per layer), then each layer's rows, [n_tokens][row_bytes]
// bytes, layer after layer. The rows are the pool's stored bytes, unchanged: restoring needs the
// same profile (the fingerprint says so), not a re-encode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace starkv {

struct SequenceSnapshot {
  uint64_t profile_fingerprint = 0;
  int32_t n_tokens = 0;
  std::vector<int32_t> row_bytes;                // per layer
  std::vector<std::vector<uint8_t>> layer_rows;  // per layer: [n_tokens][row_bytes]
};

std::vector<uint8_t> encode_snapshot(const SequenceSnapshot& snapshot);
SequenceSnapshot decode_snapshot(const void* data, size_t size);

}  // namespace starkv
