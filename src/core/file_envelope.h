// The envelope shared by every starkv file and buffer (profiles, sequence snapshots): a fixed
// 48-byte header, then one zstd frame with zstd's own content checksum.
//
//   offset size  field
//        0    8  magic: "STARKVPF" (profile) or "STARKVSN" (sequence snapshot)
//        8    4  format version (little-endian uint32)
//       12    4  header size (48)
//       16    8  payload size, uncompressed
//       24    8  payload size, compressed (the zstd frame that follows)
//       32    8  checksum of the compressed frame (every stored byte; see below)
//       40    8  checksum of bytes 0..39
//       48       the zstd frame: content size in its frame header, zstd's content checksum on
//
// The checksum (file_envelope.cpp, checksum64) reads the bytes as little-endian 64-bit words,
// the last one zero-padded: h = 0xcbf29ce484222325; per word h = mix(h ^ w); result mix(h), where
// mix(h) = (h * 0x9e3779b97f4a7c15) ^ ((h * 0x9e3779b97f4a7c15) >> 32), arithmetic mod 2^64.
//
// The 48 header bytes mean the same in every format version (a later version may add fields after
// them and say so in the header size), so a reader can always tell a damaged header from a newer
// one. Opening checks, in order: the magic (a foreign file, or a starkv file of the other kind, is
// STARKV_ERR_FORMAT with a message naming what it is; a prefix of the magic is a truncated file),
// the header checksum (STARKV_ERR_CORRUPT_DATA), the version (newer is STARKV_ERR_VERSION with
// both versions in the message), then the sizes, the frame checksum, and the zstd frame with its
// content checksum (STARKV_ERR_CORRUPT_DATA). Memory is only ever allocated for bytes that
// actually decompress, never on the word of a size field.
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
