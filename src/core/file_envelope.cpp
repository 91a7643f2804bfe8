#include "core/file_envelope.h"

#include <zstd.h>

#include <algorithm>
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

// One 64-bit checksum for the header and the compressed frame: 8 bytes at a time (little-endian
// words, the tail zero-padded), each step a bijection of the state (xor the word, multiply by an
// odd constant, xor-shift), so a change confined to one word always changes the result.
uint64_t mix(uint64_t h) {
  h *= 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 32);
}

uint64_t checksum64(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h ^ w);
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix(h ^ w);
  }
  return mix(h);
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
  w.put<uint64_t>(checksum64(frame.data(), frame.size()));
  w.put<uint64_t>(checksum64(w.bytes().data(), 40));
  w.put_bytes(frame);
  return std::move(w.bytes());
}

namespace {

// Decompresses the one zstd frame of a payload of exactly `payload_size` bytes. Streaming, with
// the output grown only as bytes actually come out, so a damaged or hostile size field costs no
// more memory than the frame really expands to; zstd verifies its content checksum at the end.
std::vector<uint8_t> decompress_payload(const uint8_t* frame, size_t frame_size,
                                        uint64_t payload_size, const std::string& what) {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  require(dctx != nullptr, STARKV_ERR_OUT_OF_MEMORY, "zstd: cannot create a decompression context");
  std::vector<uint8_t> payload;
  ZSTD_inBuffer in = {frame, frame_size, 0};
  size_t produced = 0;
  std::string failure;
  for (;;) {
    if (produced == payload.size() && payload.size() < payload_size) {
      const uint64_t step = std::max<uint64_t>(payload.size(), uint64_t{1} << 20);
      payload.resize(static_cast<size_t>(std::min<uint64_t>(payload_size, produced + step)));
    }
    ZSTD_outBuffer out = {payload.data(), payload.size(), produced};
    const size_t consumed_before = in.pos;
    const size_t status = ZSTD_decompressStream(dctx, &out, &in);
    if (ZSTD_isError(status)) {
      failure = ZSTD_getErrorName(status);
      break;
    }
    const bool progress = out.pos != produced || in.pos != consumed_before;
    produced = out.pos;
    if (status == 0) {  // the frame ended and its checksum matched
      if (produced != payload_size) failure = "it is shorter than its header says";
      else if (in.pos != in.size) failure = "data follows the compressed frame";
      break;
    }
    if (!progress) {
      failure = in.pos == in.size ? "the compressed data ends early"
                                  : "it is longer than its header says";
      break;
    }
  }
  ZSTD_freeDCtx(dctx);
  require(failure.empty(), STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: its compressed payload does not decompress (" + failure + ")");
  return payload;
}

}  // namespace

std::vector<uint8_t> open_envelope(FileKind kind, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const std::string what = std::string("the ") + name_of(kind);
  const FileKind other = kind == FileKind::kProfile ? FileKind::kSnapshot : FileKind::kProfile;
  require(size > 0, STARKV_ERR_CORRUPT_DATA, what + " is empty (0 bytes; a truncated file?)");

  // 1. What is it? A prefix of our magic is a truncated file; anything else is not ours.
  const size_t magic_bytes = std::min<size_t>(size, 8);
  if (std::memcmp(bytes, magic_of(kind), magic_bytes) != 0) {
    if (size >= 8 && std::memcmp(bytes, magic_of(other), 8) == 0) {
      throw Error(STARKV_ERR_FORMAT, std::string("this is a starkv ") + name_of(other) +
                                         ", not a " + name_of(kind));
    }
    throw Error(STARKV_ERR_FORMAT, std::string("not a starkv ") + name_of(kind) +
                                       " (the file does not start with the \"" +
                                       std::string(magic_of(kind), 8) + "\" magic bytes)");
  }
  require(size >= kHeaderSize, STARKV_ERR_CORRUPT_DATA,
          what + " is truncated: " + std::to_string(size) + " bytes, shorter than its " +
              std::to_string(kHeaderSize) + "-byte header");

  // 2. The header. It means the same in every format version, so its checksum is verified first:
  // a damaged version field is reported as damage, not as a newer format.
  ByteReader r(bytes, size, what);
  r.get_bytes(8);
  const uint32_t version = r.get<uint32_t>();
  const uint32_t header_size = r.get<uint32_t>();
  const uint64_t payload_size = r.get<uint64_t>();
  const uint64_t compressed_size = r.get<uint64_t>();
  const uint64_t frame_checksum = r.get<uint64_t>();
  const uint64_t header_checksum = r.get<uint64_t>();
  require(header_checksum == checksum64(bytes, 40), STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: its header checksum does not match");
  require(version <= version_of(kind), STARKV_ERR_VERSION,
          what + " has format version " + std::to_string(version) +
              ", but this starkv reads versions up to " + std::to_string(version_of(kind)) +
              " (written by a newer starkv?)");
  require(version >= 1, STARKV_ERR_CORRUPT_DATA, what + " is damaged: format version 0");
  require(header_size == kHeaderSize, STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: its header size is " + std::to_string(header_size));
  require(payload_size <= kMaxPayload, STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: it claims a payload of " + std::to_string(payload_size) + " bytes");
  require(compressed_size == size - kHeaderSize, STARKV_ERR_CORRUPT_DATA,
          what + (compressed_size > size - kHeaderSize ? " is truncated" : " has trailing bytes") +
              ": " + std::to_string(size - kHeaderSize) + " compressed bytes present, " +
              std::to_string(compressed_size) + " expected");
  const uint8_t* frame = bytes + kHeaderSize;
  // zstd's own checksum covers the decompressed bytes only; some compressed bits (padding, unused
  // table entries) do not affect them. This one covers every stored byte.
  require(frame_checksum == checksum64(frame, compressed_size), STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: its payload checksum does not match");

  // 3. The payload, with zstd's content checksum.
  const unsigned long long content = ZSTD_getFrameContentSize(frame, compressed_size);
  require(content == payload_size, STARKV_ERR_CORRUPT_DATA,
          what + " is damaged: its compressed frame does not match the header");
  return decompress_payload(frame, compressed_size, payload_size, what);
}

}  // namespace starkv
