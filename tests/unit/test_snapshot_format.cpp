// Sequence snapshots as bytes (core/snapshot_format.h): round trips, the documented payload, and
// the same rejection discipline as profiles (truncation at every length, flipped bytes, foreign
// data, a profile given as a snapshot, a future version, inconsistent fields).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_envelope.h"
#include "core/profile.h"
#include "core/profile_format.h"
#include "core/snapshot_format.h"

namespace starkv {
namespace {

SequenceSnapshot make_snapshot(int32_t n_tokens, std::vector<int32_t> row_bytes, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  SequenceSnapshot s;
  s.profile_fingerprint = 0xfeedfacecafebeefULL;
  s.n_tokens = n_tokens;
  s.row_bytes = std::move(row_bytes);
  for (int32_t b : s.row_bytes) {
    std::vector<uint8_t> rows(static_cast<size_t>(n_tokens) * static_cast<size_t>(b));
    for (uint8_t& x : rows) x = static_cast<uint8_t>(rng() % 7);  // compressible, like real rows
    s.layer_rows.push_back(std::move(rows));
  }
  return s;
}

void expect_identical(const SequenceSnapshot& a, const SequenceSnapshot& b) {
  EXPECT_EQ(a.profile_fingerprint, b.profile_fingerprint);
  EXPECT_EQ(a.n_tokens, b.n_tokens);
  EXPECT_EQ(a.row_bytes, b.row_bytes);
  EXPECT_EQ(a.layer_rows, b.layer_rows);
}

// f must throw starkv::Error with `status` and a message containing `needle`.
void expect_error(const std::function<void()>& f, starkv_status status, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << "message: " << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a non-starkv exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "no error thrown";
}

TEST(SnapshotFormat, RoundTripKeepsEveryByte) {
  for (int32_t n : {0, 1, 37, 300}) {
    const SequenceSnapshot s = make_snapshot(n, {16, 48, 32}, static_cast<uint32_t>(n));
    const std::vector<uint8_t> bytes = encode_snapshot(s);
    expect_identical(decode_snapshot(bytes.data(), bytes.size()), s);
    EXPECT_EQ(encode_snapshot(s), bytes);  // deterministic
  }
}

TEST(SnapshotFormat, HeaderAndPayloadHaveTheDocumentedLayout) {
  const SequenceSnapshot s = make_snapshot(3, {16, 32});
  const std::vector<uint8_t> bytes = encode_snapshot(s);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "STARKVSN");
  uint32_t version, header_size;
  uint64_t payload_size;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&header_size, bytes.data() + 12, 4);
  std::memcpy(&payload_size, bytes.data() + 16, 8);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(header_size, 48u);
  // fingerprint 8 + n_tokens 4 + n_layers 4 + row_bytes 2 x 4 + rows 3 x (16 + 32)
  EXPECT_EQ(payload_size, 8u + 4 + 4 + 8 + 3 * 48);
}

TEST(SnapshotFormat, EncodeRefusesAnInconsistentSnapshot) {
  SequenceSnapshot s = make_snapshot(4, {16, 32});
  s.layer_rows[1].pop_back();
  expect_error([&] { encode_snapshot(s); }, STARKV_ERR_INVALID_ARGUMENT, "layer 1");
  SequenceSnapshot t = make_snapshot(4, {16});
  t.row_bytes[0] = 4;
  t.layer_rows[0].resize(16);
  expect_error([&] { encode_snapshot(t); }, STARKV_ERR_INVALID_ARGUMENT, "row_bytes");
  SequenceSnapshot u = make_snapshot(1, {});
  expect_error([&] { encode_snapshot(u); }, STARKV_ERR_INVALID_ARGUMENT, "layers");
}

TEST(SnapshotFormat, TruncatedAtEveryLengthIsCorruptData) {
  const std::vector<uint8_t> bytes = encode_snapshot(make_snapshot(20, {16, 32}));
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE("length " + std::to_string(n));
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    expect_error([&] { decode_snapshot(cut.data(), cut.size()); }, STARKV_ERR_CORRUPT_DATA,
                 "truncated");
  }
}

TEST(SnapshotFormat, AnyFlippedByteIsDetected) {
  const std::vector<uint8_t> bytes = encode_snapshot(make_snapshot(20, {16, 32}));
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= mask;
      if (i < 8) {
        expect_error([&] { decode_snapshot(bad.data(), bad.size()); }, STARKV_ERR_FORMAT,
                     "not a starkv sequence snapshot");
      } else {
        expect_error([&] { decode_snapshot(bad.data(), bad.size()); }, STARKV_ERR_CORRUPT_DATA,
                     "damaged");
      }
    }
  }
}

TEST(SnapshotFormat, AProfileOrForeignDataIsNotASnapshot) {
  Profile p;
  p.shape = {1, 2, 1, 4, 0};
  p.attention_scale = 0.5f;
  p.rope.rotary_dim = 4;
  LayerProfile layer;
  FactorGroup g;
  g.in_dim = 4;
  g.rank = 2;
  g.down.assign(8, 0.5f);
  g.up.assign(8, 0.25f);
  layer.keys = {g};
  layer.values = {g};
  p.layers = {layer};
  p.finalize_layouts();
  const std::vector<uint8_t> profile = serialize_profile(p);
  expect_error([&] { decode_snapshot(profile.data(), profile.size()); }, STARKV_ERR_FORMAT,
               "this is a starkv profile, not a sequence snapshot");
  const std::string text = "just some text that is long enough to have a header's worth of bytes";
  expect_error([&] { decode_snapshot(text.data(), text.size()); }, STARKV_ERR_FORMAT,
               "not a starkv sequence snapshot");
}

// The envelope's checksum, from file_envelope.h (also spelled out in test_profile_format.cpp).
uint64_t envelope_checksum(const uint8_t* p, size_t n) {
  auto mix = [](uint64_t h) {
    h *= 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 32);
  };
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = 0;
    for (size_t k = 0; k < 8 && i + k < n; ++k) w |= static_cast<uint64_t>(p[i + k]) << (8 * k);
    h = mix(h ^ w);
  }
  return mix(h);
}

TEST(SnapshotFormat, AFutureVersionIsAVersionError) {
  std::vector<uint8_t> bytes = encode_snapshot(make_snapshot(2, {16}));
  const uint32_t version = 3;
  std::memcpy(bytes.data() + 8, &version, 4);
  const uint64_t checksum = envelope_checksum(bytes.data(), 40);
  std::memcpy(bytes.data() + 40, &checksum, 8);
  expect_error([&] { decode_snapshot(bytes.data(), bytes.size()); }, STARKV_ERR_VERSION,
               "format version 3, but this starkv reads versions up to 1");
}

// Inconsistent fields behind valid checksums. Payload offsets: fingerprint 0, n_tokens 8,
// n_layers 12, row_bytes from 16.
TEST(SnapshotFormat, InconsistentFieldsAreCorruptData) {
  const SequenceSnapshot s = make_snapshot(5, {16, 32});
  std::vector<uint8_t> payload;
  {
    // The payload, rebuilt from the documented layout.
    auto put = [&](const void* p, size_t n) {
      payload.insert(payload.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    const uint32_t n_layers = 2;
    put(&s.profile_fingerprint, 8);
    put(&s.n_tokens, 4);
    put(&n_layers, 4);
    for (int32_t b : s.row_bytes) put(&b, 4);
    for (const auto& rows : s.layer_rows) put(rows.data(), rows.size());
  }
  // Sealing the hand-built payload must give exactly what encode_snapshot writes.
  ASSERT_EQ(seal_envelope(FileKind::kSnapshot, payload), encode_snapshot(s));
  struct Edit {
    const char* name;
    std::function<void(std::vector<uint8_t>&)> edit;
    const char* text;
  };
  auto set_i32 = [](std::vector<uint8_t>& b, size_t offset, int32_t v) { std::memcpy(b.data() + offset, &v, 4); };
  const std::vector<Edit> edits = {
      {"negative length", [&](auto& b) { set_i32(b, 8, -1); }, "negative"},
      {"huge length", [&](auto& b) { set_i32(b, 8, 0x7fffffff); }, "truncated"},
      {"no layers", [&](auto& b) { set_i32(b, 12, 0); }, "layer count"},
      {"huge layer count", [&](auto& b) { set_i32(b, 12, -1); }, "layer count"},
      {"row size not a multiple of 16", [&](auto& b) { set_i32(b, 16, 24); }, "row size"},
      {"negative row size", [&](auto& b) { set_i32(b, 20, -16); }, "row size"},
      {"huge row size", [&](auto& b) { set_i32(b, 20, 0x7ffffff0); }, "truncated"},
      {"rows cut short", [](auto& b) { b.pop_back(); }, "truncated"},
      {"extra bytes", [](auto& b) { b.push_back(1); }, "trailing"},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.name);
    std::vector<uint8_t> edited = payload;
    e.edit(edited);
    const std::vector<uint8_t> file = seal_envelope(FileKind::kSnapshot, edited);
    expect_error([&] { decode_snapshot(file.data(), file.size()); }, STARKV_ERR_CORRUPT_DATA, e.text);
  }
}

}  // namespace
}  // namespace starkv
