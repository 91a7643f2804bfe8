// The envelope shared by every starkv file and buffer (profiles, sequence snapshots): a fixed
// 48-byte header, then one zstd frame with zstd's own content checksum.
//
//   offset size  field
//        0    8  magic: "STARKVPF" (profile) or "STARKVSN" (sequence snapshot)
//        8    4  format version (little-endian uint32)
//       12    4  header size (48)
//       16    8  payload size, uncompressed
//       24    8  payload size, compressed (the zstd frame that follows)
//       32    8  FNV-1a 64 of bytes 0..31: catches a damaged header before it is trusted
//       40    8  reserved, 0
//
// Opening checks, in order: the magic (a foreign file, or a starkv file of the other kind, is
// STARKV_ERR_FORMAT with a message naming what it is), the version (newer is STARKV_ERR_VERSION),
// then sizes and checksums (STARKV_ERR_CORRUPT_DATA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace starkv {

enum class FileKind { kProfile, kSnapshot };

constexpr uint32_t kProfileFormatVersion = 1;
constexpr uint32_t kSnapshotFormatVersion = 1;

std::vector<uint8_t> seal_envelope(FileKind kind, const std::vector<uint8_t>& payload);
// Returns the payload, or throws starkv::Error.
std::vector<uint8_t> open_envelope(FileKind kind, const void* data, size_t size);

}  // namespace starkv
