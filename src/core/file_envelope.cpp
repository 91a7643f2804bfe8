#include "core/file_envelope.h"

#include <zstd.h>

#include <cstring>
#include <string>

#include "core/byte_io.h"
#include "core/error.h"

namespace starkv {
namespace {

constexpr size_t kHeaderSize = 48;
constexpr char kProfileMagic[8] = {'S', 'T', 'A', 'R', 'K', 'V', 'P', 'F'};
constexpr char kSnapshotMagic[8] = {'S', 'T', 'A', 'R', 'K', 'V', 'S', 'N'};
// A payload larger than this is not something starkv wrote (a 70B model's profile is ~1 GiB).
constexpr uint64_t kMaxPayload = 64ULL << 30;

const char* magic_of(FileKind kind) { return kind == FileKind::kProfile ? kProfileMagic : kSnapshotMagic; }
const char* name_of(FileKind kind) { return kind == FileKind::kProfile ? "profile" : "sequence snapshot"; }
uint32_t version_of(FileKind kind) {
  return kind == FileKind::kProfile ? kProfileFormatVersion : kSnapshotFormatVersion;
}

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

std::vector<uint8_t> seal_envelope(FileKind kind, const std::vector<uint8_t>& payload) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  require(cctx != nullptr, STARKV_ERR_OUT_OF_MEMORY, "zstd: cannot create a compression context");
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::vector<uint8_t> frame(ZSTD_compressBound(payload.size()));
  const size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), payload.data(), payload.size());
  ZSTD_freeCCtx(cctx);
  require(!ZSTD_isError(n), STARKV_ERR_INTERNAL, std::string("zstd: ") + ZSTD_getErrorName(n));
  frame.resize(n);

  ByteWriter w;
  for (int i = 0; i < 8; ++i) w.put<char>(magic_of(kind)[i]);
  w.put<uint32_t>(version_of(kind));
  w.put<uint32_t>(static_cast<uint32_t>(kHeaderSize));
  w.put<uint64_t>(payload.size());
  w.put<uint64_t>(frame.size());
  w.put<uint64_t>(fnv1a(w.bytes().data(), 32));
  w.put<uint64_t>(0);
  w.put_bytes(frame);
  return std::move(w.bytes());
}

std::vector<uint8_t> open_envelope(FileKind kind, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const std::string what = std::string("the ") + name_of(kind);
  const FileKind other = kind == FileKind::kProfile ? FileKind::kSnapshot : FileKind::kProfile;
  if (size >= 8 && std::memcmp(bytes, magic_of(other), 8) == 0) {
    throw Error(STARKV_ERR_FORMAT, std::string("this is a starkv ") + name_of(other) + ", not a " +
                                       name_of(kind));
  }
  require(size >= 8 && std::memcmp(bytes, magic_of(kind), 8) == 0,
          size < 8 && size > 0 && std::memcmp(bytes, magic_of(kind), size) == 0
              ? STARKV_ERR_CORRUPT_DATA
              : STARKV_ERR_FORMAT,
          size < 8 ? what + " is truncated (" + std::to_string(size) + " bytes)"
                   : std::string("not a starkv ") + name_of(kind) + " (wrong magic bytes)");
  ByteReader r(bytes, size, what);
  r.get_bytes(8);
  const uint32_t version = r.get<uint32_t>();
  require(version <= version_of(kind), STARKV_ERR_VERSION,
          what + " has format version " + std::to_string(version) +
              "; this starkv reads versions up to " + std::to_string(version_of(kind)) +
              " (written by a newer starkv?)");
  require(version >= 1, STARKV_ERR_CORRUPT_DATA, what + " has format version 0");
  const uint32_t header_size = r.get<uint32_t>();
  const uint64_t payload_size = r.get<uint64_t>();
  const uint64_t compressed_size = r.get<uint64_t>();
  const uint64_t checksum = r.get<uint64_t>();
  r.get<uint64_t>();
  require(checksum == fnv1a(bytes, 32), STARKV_ERR_CORRUPT_DATA, what + " header checksum mismatch");
  require(header_size == kHeaderSize, STARKV_ERR_CORRUPT_DATA, what + " has a bad header size");
  require(payload_size <= kMaxPayload, STARKV_ERR_CORRUPT_DATA, what + " claims an absurd size");
  require(compressed_size == size - kHeaderSize, STARKV_ERR_CORRUPT_DATA,
          what + " is truncated or has trailing bytes (" + std::to_string(size - kHeaderSize) +
              " compressed bytes present, " + std::to_string(compressed_size) + " expected)");
  const uint8_t* frame = bytes + kHeaderSize;
  const unsigned long long content = ZSTD_getFrameContentSize(frame, compressed_size);
  require(content == payload_size, STARKV_ERR_CORRUPT_DATA,
          what + " payload is damaged (zstd frame header does not match)");
  std::vector<uint8_t> payload(payload_size);
  const size_t n = ZSTD_decompress(payload.data(), payload.size(), frame, compressed_size);
  require(!ZSTD_isError(n) && n == payload_size, STARKV_ERR_CORRUPT_DATA,
          what + " payload is damaged (" +
              (ZSTD_isError(n) ? std::string(ZSTD_getErrorName(n)) : std::string("short")) + ")");
  return payload;
}

}  // namespace starkv
