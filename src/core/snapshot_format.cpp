#include "core/snapshot_format.h"

#include <string>

#include "core/byte_io.h"
#include "core/error.h"
#include "core/file_envelope.h"

namespace starkv {

std::vector<uint8_t> encode_snapshot(const SequenceSnapshot& s) {
  // Refuse to write what decode_snapshot would reject.
  require(s.n_tokens >= 0 && !s.row_bytes.empty() && s.row_bytes.size() <= 4096 &&
              s.layer_rows.size() == s.row_bytes.size(),
          STARKV_ERR_INVALID_ARGUMENT, "a snapshot needs 1..4096 layers and a row count >= 0");
  for (size_t l = 0; l < s.row_bytes.size(); ++l) {
    require(s.row_bytes[l] > 0 && s.row_bytes[l] % 16 == 0 &&
                s.layer_rows[l].size() ==
                    static_cast<uint64_t>(s.n_tokens) * static_cast<uint64_t>(s.row_bytes[l]),
            STARKV_ERR_INVALID_ARGUMENT,
            "snapshot layer " + std::to_string(l) + " does not hold n_tokens rows of row_bytes");
  }
  ByteWriter w;
  w.put<uint64_t>(s.profile_fingerprint);
  w.put<int32_t>(s.n_tokens);
  w.put<uint32_t>(static_cast<uint32_t>(s.row_bytes.size()));
  for (int32_t b : s.row_bytes) w.put<int32_t>(b);
  for (const std::vector<uint8_t>& rows : s.layer_rows) w.put_bytes(rows);
  return seal_envelope(FileKind::kSnapshot, w.bytes());
}

SequenceSnapshot decode_snapshot(const void* data, size_t size) {
  require(data != nullptr || size == 0, STARKV_ERR_INVALID_ARGUMENT, "no data");
  const std::vector<uint8_t> payload = open_envelope(FileKind::kSnapshot, data, size);
  ByteReader r(payload.data(), payload.size(), "the sequence snapshot");
  SequenceSnapshot s;
  s.profile_fingerprint = r.get<uint64_t>();
  s.n_tokens = r.get<int32_t>();
  require(s.n_tokens >= 0, STARKV_ERR_CORRUPT_DATA, "the snapshot has a negative length");
  const uint32_t n_layers = r.get<uint32_t>();
  require(n_layers >= 1 && n_layers <= 4096, STARKV_ERR_CORRUPT_DATA,
          "the snapshot has an invalid layer count");
  for (uint32_t l = 0; l < n_layers; ++l) {
    const int32_t b = r.get<int32_t>();
    require(b > 0 && b % 16 == 0, STARKV_ERR_CORRUPT_DATA, "the snapshot has an invalid row size (layer " + std::to_string(l) + ": " + std::to_string(b) + " bytes)");
    s.row_bytes.push_back(b);
  }
  for (uint32_t l = 0; l < n_layers; ++l) {
    const uint64_t bytes = static_cast<uint64_t>(s.n_tokens) * static_cast<uint64_t>(s.row_bytes[l]);
    require(bytes <= r.remaining(), STARKV_ERR_CORRUPT_DATA,
            "the snapshot is truncated (layer " + std::to_string(l) + ")");
    s.layer_rows.push_back(r.get_bytes(static_cast<size_t>(bytes)));
  }
  r.expect_end();
  return s;
}

}  // namespace starkv
