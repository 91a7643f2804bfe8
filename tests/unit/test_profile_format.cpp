// The `.starkv` profile format (core/profile_format.h, core/file_envelope.h): every field survives
// a round trip bit for bit, through a buffer and through a file; the fingerprint is stable; and
// every kind of bad input (truncated at every length, any byte flipped, foreign data, a snapshot,
// a future version, inconsistent fields behind a valid checksum) is rejected with the right status
// and a message that says what is wrong, without crashing or allocating on a corrupt size.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
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

// ---- a profile with every field set to something other than its default -------------------------

FactorGroup random_group(int32_t in_offset, int32_t in_dim, int32_t rank, int32_t n_outlier,
                         std::mt19937& rng) {
  std::normal_distribution<float> normal;
  FactorGroup g;
  g.in_offset = in_offset;
  g.in_dim = in_dim;
  g.rank = rank;
  g.n_outlier = n_outlier;
  g.down.resize(static_cast<size_t>(in_dim) * rank);
  g.up.resize(static_cast<size_t>(rank) * in_dim);
  for (float& x : g.down) x = normal(rng);
  for (float& x : g.up) x = normal(rng);
  return g;
}

// G = 2 KV heads of D = 8. Layer 0 uncompressed (16-bit, HD keys, JD values), layer 1 HD keys and
// JD values at 3/8 bits, layer 2 JD keys and HD values at 2/4 bits.
Profile make_profile(uint32_t seed = 1) {
  std::mt19937 rng(seed);
  Profile p;
  p.shape.n_layers = 3;
  p.shape.n_heads = 4;
  p.shape.n_kv_heads = 2;
  p.shape.head_dim = 8;
  p.shape.hidden_dim = 32;
  p.rope.style = STARKV_ROPE_GPTJ;
  p.rope.rotary_dim = 6;
  p.rope.theta = 500000.0f;
  p.rope.scaling = STARKV_ROPE_SCALING_LLAMA3;
  p.rope.factor = 8.0f;
  p.rope.low_freq_factor = 1.5f;
  p.rope.high_freq_factor = 3.5f;
  p.rope.original_max_position = 4096;
  p.attention_scale = 0.3535f;
  p.quant.inlier_bits = 3;
  p.quant.outlier_bits = 8;
  p.quant.outlier_fraction = 0.25f;
  p.quant.hadamard = false;
  p.quant.pack_3bit_in_nibbles = true;
  p.seed = 0x0123456789abcdefULL;
  p.record.allocator = STARKV_ALLOC_GREEDY;
  p.record.target_compression = 0.6f;
  p.record.key_compression = 0.7f;
  p.record.value_compression = 0.5f;
  p.record.calibrated = true;
  p.record.imported = true;

  LayerProfile l0;
  l0.compressed = false;
  l0.keys = {random_group(0, 8, 8, 0, rng), random_group(8, 8, 8, 0, rng)};
  l0.values = {random_group(0, 16, 16, 0, rng)};
  l0.inlier_bits = 16;
  l0.outlier_bits = 16;
  LayerProfile l1;
  l1.keys = {random_group(0, 8, 5, 1, rng), random_group(8, 8, 3, 0, rng)};
  l1.values = {random_group(0, 16, 9, 2, rng)};
  l1.inlier_bits = 3;
  l1.outlier_bits = 8;
  LayerProfile l2;
  l2.key_decomposition = STARKV_DECOMP_JOINT;
  l2.value_decomposition = STARKV_DECOMP_HEADWISE;
  l2.keys = {random_group(0, 16, 6, 1, rng)};
  l2.values = {random_group(0, 8, 4, 0, rng), random_group(8, 8, 7, 2, rng)};
  l2.inlier_bits = 2;
  l2.outlier_bits = 4;
  p.layers = {l0, l1, l2};
  p.finalize_layouts();
  return p;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same_block(const BlockLayout& a, const BlockLayout& b) {
  EXPECT_EQ(a.first_channel, b.first_channel);
  EXPECT_EQ(a.n_channels, b.n_channels);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.storage_bits, b.storage_bits);
  EXPECT_EQ(a.byte_offset, b.byte_offset);
  EXPECT_EQ(a.byte_count, b.byte_count);
  EXPECT_EQ(a.scale_offset, b.scale_offset);
}

void expect_same_groups(const std::vector<FactorGroup>& a, const std::vector<FactorGroup>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].in_offset, b[i].in_offset);
    EXPECT_EQ(a[i].in_dim, b[i].in_dim);
    EXPECT_EQ(a[i].rank, b[i].rank);
    EXPECT_EQ(a[i].n_outlier, b[i].n_outlier);
    EXPECT_TRUE(same_bits(a[i].down, b[i].down)) << "group " << i << " down";
    EXPECT_TRUE(same_bits(a[i].up, b[i].up)) << "group " << i << " up";
  }
}

// Every field of Profile, one by one; floats compared as bits.
void expect_identical(const Profile& a, const Profile& b) {
  EXPECT_EQ(a.shape.n_layers, b.shape.n_layers);
  EXPECT_EQ(a.shape.n_heads, b.shape.n_heads);
  EXPECT_EQ(a.shape.n_kv_heads, b.shape.n_kv_heads);
  EXPECT_EQ(a.shape.head_dim, b.shape.head_dim);
  EXPECT_EQ(a.shape.hidden_dim, b.shape.hidden_dim);
  EXPECT_EQ(a.rope.style, b.rope.style);
  EXPECT_EQ(a.rope.rotary_dim, b.rope.rotary_dim);
  EXPECT_TRUE(same_bits(a.rope.theta, b.rope.theta));
  EXPECT_EQ(a.rope.scaling, b.rope.scaling);
  EXPECT_TRUE(same_bits(a.rope.factor, b.rope.factor));
  EXPECT_TRUE(same_bits(a.rope.low_freq_factor, b.rope.low_freq_factor));
  EXPECT_TRUE(same_bits(a.rope.high_freq_factor, b.rope.high_freq_factor));
  EXPECT_EQ(a.rope.original_max_position, b.rope.original_max_position);
  EXPECT_TRUE(same_bits(a.attention_scale, b.attention_scale));
  EXPECT_EQ(a.quant.inlier_bits, b.quant.inlier_bits);
  EXPECT_EQ(a.quant.outlier_bits, b.quant.outlier_bits);
  EXPECT_TRUE(same_bits(a.quant.outlier_fraction, b.quant.outlier_fraction));
  EXPECT_EQ(a.quant.hadamard, b.quant.hadamard);
  EXPECT_EQ(a.quant.pack_3bit_in_nibbles, b.quant.pack_3bit_in_nibbles);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.record.allocator, b.record.allocator);
  EXPECT_TRUE(same_bits(a.record.target_compression, b.record.target_compression));
  EXPECT_TRUE(same_bits(a.record.key_compression, b.record.key_compression));
  EXPECT_TRUE(same_bits(a.record.value_compression, b.record.value_compression));
  EXPECT_EQ(a.record.calibrated, b.record.calibrated);
  EXPECT_EQ(a.record.imported, b.record.imported);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    EXPECT_EQ(a.layers[l].compressed, b.layers[l].compressed);
    EXPECT_EQ(a.layers[l].key_decomposition, b.layers[l].key_decomposition);
    EXPECT_EQ(a.layers[l].value_decomposition, b.layers[l].value_decomposition);
    EXPECT_EQ(a.layers[l].inlier_bits, b.layers[l].inlier_bits);
    EXPECT_EQ(a.layers[l].outlier_bits, b.layers[l].outlier_bits);
    expect_same_groups(a.layers[l].keys, b.layers[l].keys);
    expect_same_groups(a.layers[l].values, b.layers[l].values);
  }
  ASSERT_EQ(a.row_layouts.size(), b.row_layouts.size());
  for (size_t l = 0; l < a.row_layouts.size(); ++l) {
    const RowLayout &ra = a.row_layouts[l], &rb = b.row_layouts[l];
    EXPECT_EQ(ra.quantized, rb.quantized);
    EXPECT_EQ(ra.latent_width, rb.latent_width);
    EXPECT_EQ(ra.row_bytes, rb.row_bytes);
    ASSERT_EQ(ra.key_groups.size(), rb.key_groups.size());
    ASSERT_EQ(ra.value_groups.size(), rb.value_groups.size());
    for (size_t g = 0; g < ra.key_groups.size(); ++g) {
      expect_same_block(ra.key_groups[g].outlier, rb.key_groups[g].outlier);
      expect_same_block(ra.key_groups[g].inlier, rb.key_groups[g].inlier);
    }
    for (size_t g = 0; g < ra.value_groups.size(); ++g) {
      expect_same_block(ra.value_groups[g].outlier, rb.value_groups[g].outlier);
      expect_same_block(ra.value_groups[g].inlier, rb.value_groups[g].inlier);
    }
  }
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_EQ(a.bytes_per_token(), b.bytes_per_token());
}

// ---- helpers for the failure cases --------------------------------------------------------------

// Runs f, which must throw starkv::Error with `status` and a message containing every one of
// `needles` (case-sensitive). Anything else thrown, or nothing, fails the test. Returns the message.
std::string expect_error(const std::function<void()>& f, starkv_status status,
                         const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << "message: " << e.what();
    for (const std::string& n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << n << "\"";
    }
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a non-starkv exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

// The envelope's checksum, written out from the description in file_envelope.h.
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

template <class T>
T read_le(const std::vector<uint8_t>& b, size_t offset) {
  T v;
  std::memcpy(&v, b.data() + offset, sizeof v);
  return v;
}

template <class T>
void write_le(std::vector<uint8_t>& b, size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof v);
}

// A scratch directory, removed (with what is left in it) at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/starkv_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    for (const std::string& name : entries()) std::remove((path_ + "/" + name).c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      closedir(d);
    }
    return names;
  }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return bytes;
  int c;
  while ((c = std::fgetc(f)) != EOF) bytes.push_back(static_cast<uint8_t>(c));
  std::fclose(f);
  return bytes;
}

// ---- round trips --------------------------------------------------------------------------------

TEST(ProfileFormat, BufferRoundTripKeepsEveryFieldBitForBit) {
  const Profile original = make_profile();
  const std::vector<uint8_t> bytes = serialize_profile(original);
  const std::unique_ptr<Profile> loaded = deserialize_profile(bytes.data(), bytes.size());
  ASSERT_NE(loaded, nullptr);
  expect_identical(original, *loaded);
  // Writing the loaded profile again gives the very same bytes.
  EXPECT_EQ(serialize_profile(*loaded), bytes);
  EXPECT_EQ(serialize_profile(original), bytes);
}

// Unquantized profiles as the builder writes them: the outlier width repeats the inlier width
// (16 or 32), which is not a valid outlier width of its own but means "no outliers".
TEST(ProfileFormat, UnquantizedProfilesRoundTrip) {
  for (int32_t bits : {16, 32}) {
    Profile p = make_profile(5);
    p.quant.inlier_bits = p.quant.outlier_bits = bits;
    for (LayerProfile& layer : p.layers) layer.inlier_bits = layer.outlier_bits = bits;
    p.finalize_layouts();
    const std::vector<uint8_t> bytes = serialize_profile(p);
    expect_identical(p, *deserialize_profile(bytes.data(), bytes.size()));
    EXPECT_FALSE(p.row_layouts[1].quantized);
    EXPECT_EQ(p.row_layouts[0].row_bytes, 32 * bits / 8);
  }
}

TEST(ProfileFormat, FileRoundTripKeepsEveryFieldAndLeavesNoTemporaryFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/model.starkv";
  const Profile original = make_profile(7);
  save_profile_file(original, path.c_str());
  const std::unique_ptr<Profile> loaded = load_profile_file(path.c_str());
  expect_identical(original, *loaded);
  EXPECT_EQ(read_file(path), serialize_profile(original));  // a file is exactly the buffer form
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.starkv"});
  // Saving over an existing profile replaces it whole.
  const Profile other = make_profile(8);
  save_profile_file(other, path.c_str());
  expect_identical(other, *load_profile_file(path.c_str()));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.starkv"});
}

TEST(ProfileFormat, HeaderHasTheDocumentedLayout) {
  const Profile p = make_profile();
  const std::vector<uint8_t> bytes = serialize_profile(p);
  const std::vector<uint8_t> payload = serialize_profile_payload(p);
  ASSERT_GT(bytes.size(), 48u);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "STARKVPF");
  EXPECT_EQ(read_le<uint32_t>(bytes, 8), 1u);   // format version
  EXPECT_EQ(read_le<uint32_t>(bytes, 12), 48u);  // header size
  EXPECT_EQ(read_le<uint64_t>(bytes, 16), payload.size());
  EXPECT_EQ(read_le<uint64_t>(bytes, 24), bytes.size() - 48);
  EXPECT_EQ(read_le<uint64_t>(bytes, 32), envelope_checksum(bytes.data() + 48, bytes.size() - 48));
  EXPECT_EQ(read_le<uint64_t>(bytes, 40), envelope_checksum(bytes.data(), 40));
  EXPECT_EQ(read_le<uint32_t>(bytes, 48), 0xfd2fb528u);  // a zstd frame follows
}

TEST(ProfileFormat, PayloadHasTheDocumentedLayout) {
  const Profile p = make_profile();
  const std::vector<uint8_t> b = serialize_profile_payload(p);
  EXPECT_EQ(read_le<int32_t>(b, 0), 3);                                  // n_layers
  EXPECT_EQ(read_le<int32_t>(b, 16), 32);                                // hidden_dim
  EXPECT_EQ(read_le<int32_t>(b, 20), STARKV_ROPE_GPTJ);                  // rope style
  EXPECT_EQ(read_le<float>(b, 28), 500000.0f);                           // theta
  EXPECT_EQ(read_le<int32_t>(b, 48), 4096);                              // original_max_position
  EXPECT_EQ(read_le<float>(b, 52), 0.3535f);                             // attention_scale
  EXPECT_EQ(read_le<int32_t>(b, 56), 3);                                 // quant inlier bits
  EXPECT_EQ(b[68], 0);                                                   // hadamard
  EXPECT_EQ(b[69], 1);                                                   // 3-bit in nibbles
  EXPECT_EQ(read_le<uint64_t>(b, 70), 0x0123456789abcdefULL);           // seed
  EXPECT_EQ(read_le<int32_t>(b, 78), STARKV_ALLOC_GREEDY);
  EXPECT_EQ(read_le<uint32_t>(b, 96), 3u);                               // layer count
  EXPECT_EQ(b[100], 0);                                                  // layer 0 uncompressed
  EXPECT_EQ(read_le<uint32_t>(b, 117), 2u);                              // its key groups
  EXPECT_EQ(read_le<int32_t>(b, 125), 8);                                // group 0 in_dim
  EXPECT_EQ(read_le<float>(b, 137), p.layers[0].keys[0].down[0]);        // its first factor
}

TEST(ProfileFormat, SizesAndRankTotals) {
  const Profile p = make_profile();
  EXPECT_EQ(p.layers[1].key_rank_total(), 8);
  EXPECT_EQ(p.layers[1].value_rank_total(), 9);
  EXPECT_EQ(p.layers[2].key_rank_total(), 6);
  EXPECT_EQ(p.layers[2].value_rank_total(), 11);
  EXPECT_EQ(p.layers[0].latent_width(), 32);
  EXPECT_EQ(p.dense_bytes_per_token(), 3 * 2 * 2 * 8 * 2);  // layers x (K, V) x G x D x fp16
  int64_t rows = 0;
  for (const RowLayout& r : p.row_layouts) {
    EXPECT_EQ(r.row_bytes % 16, 0);
    rows += r.row_bytes;
  }
  EXPECT_EQ(p.bytes_per_token(), rows);
  EXPECT_EQ(p.row_layouts[0].row_bytes, 64);  // 32 fp16 latents
}

TEST(ProfileFormat, FingerprintIsStableAndSeesEveryStoredDetail) {
  const Profile a = make_profile(3), b = make_profile(3);
  EXPECT_EQ(a.fingerprint(), b.fingerprint());  // built twice, the same
  EXPECT_NE(a.fingerprint(), 0u);
  const std::vector<uint8_t> bytes = serialize_profile(a);
  EXPECT_EQ(deserialize_profile(bytes.data(), bytes.size())->fingerprint(), a.fingerprint());

  auto changed = [&](const std::function<void(Profile&)>& change) {
    Profile c = make_profile(3);
    change(c);
    c.finalize_layouts();
    return c.fingerprint() != a.fingerprint();
  };
  EXPECT_TRUE(changed([](Profile& c) {  // one ulp of one factor
    float& x = c.layers[2].values[1].up.back();
    x = std::nextafter(x, 1e9f);
  }));
  EXPECT_TRUE(changed([](Profile& c) { c.layers[1].inlier_bits = 4; }));
  EXPECT_TRUE(changed([](Profile& c) { c.layers[1].outlier_bits = 4; }));
  EXPECT_TRUE(changed([](Profile& c) { c.quant.pack_3bit_in_nibbles = false; }));
  EXPECT_TRUE(changed([](Profile& c) { c.layers[1].keys[0].n_outlier = 2; }));
  EXPECT_TRUE(changed([](Profile& c) { c.rope.theta = 10000.0f; }));
  EXPECT_TRUE(changed([](Profile& c) { c.attention_scale = 0.25f; }));
  EXPECT_FALSE(changed([](Profile&) {}));
}

// ---- failures -------------------------------------------------------------------------------------

TEST(ProfileFormat, TruncatedAtEveryLengthIsCorruptData) {
  const std::vector<uint8_t> bytes = serialize_profile(make_profile());
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE("length " + std::to_string(n) + " of " + std::to_string(bytes.size()));
    // A copy of exactly n bytes, so that ASan sees any read past the end.
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    expect_error([&] { deserialize_profile(cut.data(), cut.size()); }, STARKV_ERR_CORRUPT_DATA,
                 {"profile", "truncated"});
  }
}

TEST(ProfileFormat, AnyFlippedByteIsDetected) {
  const std::vector<uint8_t> bytes = serialize_profile(make_profile());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= mask;
      if (i < 8) {  // the magic: no longer a starkv file at all
        expect_error([&] { deserialize_profile(bad.data(), bad.size()); }, STARKV_ERR_FORMAT,
                     {"not a starkv profile"});
      } else {
        expect_error([&] { deserialize_profile(bad.data(), bad.size()); }, STARKV_ERR_CORRUPT_DATA,
                     {"profile", "damaged"});
      }
    }
  }
}

TEST(ProfileFormat, ForeignDataIsNotAProfile) {
  const std::vector<std::vector<uint8_t>> foreign = {
      {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'},
      {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'},
      {0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00},  // a bare zstd frame
      {'X'},
      std::vector<uint8_t>(100, 0),
  };
  for (const std::vector<uint8_t>& data : foreign) {
    expect_error([&] { deserialize_profile(data.data(), data.size()); }, STARKV_ERR_FORMAT,
                 {"not a starkv profile"});
  }
  std::mt19937 rng(4);
  std::vector<uint8_t> noise(4096);
  for (uint8_t& b : noise) b = static_cast<uint8_t>(rng());
  expect_error([&] { deserialize_profile(noise.data(), noise.size()); }, STARKV_ERR_FORMAT,
               {"not a starkv profile"});
}

TEST(ProfileFormat, ASnapshotIsNotAProfile) {
  SequenceSnapshot s;
  s.profile_fingerprint = 42;
  s.n_tokens = 2;
  s.row_bytes = {16};
  s.layer_rows = {std::vector<uint8_t>(32, 7)};
  const std::vector<uint8_t> bytes = encode_snapshot(s);
  expect_error([&] { deserialize_profile(bytes.data(), bytes.size()); }, STARKV_ERR_FORMAT,
               {"this is a starkv sequence snapshot, not a profile"});
}

// A header as a newer starkv might write it: a valid checksum over a version this one lacks.
std::vector<uint8_t> with_version(std::vector<uint8_t> bytes, uint32_t version, uint32_t header_size) {
  write_le<uint32_t>(bytes, 8, version);
  write_le<uint32_t>(bytes, 12, header_size);
  write_le<uint64_t>(bytes, 40, envelope_checksum(bytes.data(), 40));
  return bytes;
}

TEST(ProfileFormat, AFutureVersionIsAVersionError) {
  const std::vector<uint8_t> bytes = serialize_profile(make_profile());
  const std::vector<uint8_t> v2 = with_version(bytes, 2, 48);
  expect_error([&] { deserialize_profile(v2.data(), v2.size()); }, STARKV_ERR_VERSION,
               {"version 2", "up to 1", "newer"});
  // A future header may be longer; the version is still what the reader reports.
  const std::vector<uint8_t> v7 = with_version(bytes, 7, 64);
  expect_error([&] { deserialize_profile(v7.data(), v7.size()); }, STARKV_ERR_VERSION,
               {"version 7"});
  // A version field damaged in transit is damage, not a newer format: the checksum says so.
  std::vector<uint8_t> damaged = bytes;
  damaged[8] = 2;
  expect_error([&] { deserialize_profile(damaged.data(), damaged.size()); },
               STARKV_ERR_CORRUPT_DATA, {"header checksum"});
  // Version 0 never existed.
  const std::vector<uint8_t> v0 = with_version(bytes, 0, 48);
  expect_error([&] { deserialize_profile(v0.data(), v0.size()); }, STARKV_ERR_CORRUPT_DATA,
               {"version 0"});
}

TEST(ProfileFormat, TrailingBytesAreCorruptData) {
  std::vector<uint8_t> bytes = serialize_profile(make_profile());
  bytes.push_back(0);
  expect_error([&] { deserialize_profile(bytes.data(), bytes.size()); }, STARKV_ERR_CORRUPT_DATA,
               {"trailing"});
}

// Inconsistent fields behind valid checksums: a hostile or buggy writer, not transmission damage.
// Each case edits the payload at a documented offset (see PayloadHasTheDocumentedLayout) and seals
// it in a fresh envelope.
struct PayloadEdit {
  const char* name;
  std::function<void(std::vector<uint8_t>&)> edit;
  const char* expected_text;
};

TEST(ProfileFormat, InconsistentFieldsAreCorruptData) {
  const std::vector<uint8_t> payload = serialize_profile_payload(make_profile());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<PayloadEdit> edits = {
      {"layer count vs shape", [](auto& b) { write_le<int32_t>(b, 0, 4); }, "layer count"},
      {"no KV heads", [](auto& b) { write_le<int32_t>(b, 8, 0); }, "shape"},
      {"KV heads do not divide heads", [](auto& b) { write_le<int32_t>(b, 8, 3); }, "shape"},
      {"absurd head_dim", [](auto& b) { write_le<int32_t>(b, 12, 0x7fffffff); }, "shape"},
      {"unknown RoPE style", [](auto& b) { write_le<int32_t>(b, 20, 9); }, "RoPE style"},
      {"negative enum", [](auto& b) { write_le<int32_t>(b, 32, -1); }, "RoPE scaling"},
      {"rotary dim past head dim", [](auto& b) { write_le<int32_t>(b, 24, 10); }, "rotary"},
      {"nan theta", [nan](auto& b) { write_le<float>(b, 28, nan); }, "RoPE"},
      {"nan attention scale", [nan](auto& b) { write_le<float>(b, 52, nan); }, "attention scale"},
      {"zero attention scale", [](auto& b) { write_le<float>(b, 52, 0.0f); }, "attention scale"},
      {"quant bits", [](auto& b) { write_le<int32_t>(b, 56, 5); }, "quantization"},
      {"flag byte 2", [](auto& b) { b[68] = 2; }, "flag"},
      {"unknown allocator", [](auto& b) { write_le<int32_t>(b, 78, 3); }, "allocator"},
      {"huge layer count", [](auto& b) { write_le<uint32_t>(b, 96, 0xffffffffu); }, "layer count"},
      {"unknown decomposition", [](auto& b) { write_le<int32_t>(b, 101, 2); }, "decomposition"},
      {"layer bits", [](auto& b) { write_le<int32_t>(b, 109, 7); }, "bits"},
      {"huge group count", [](auto& b) { write_le<uint32_t>(b, 117, 1000000); }, "groups"},
      {"group count vs decomposition", [](auto& b) { write_le<uint32_t>(b, 117, 1); }, ""},
      {"group offset", [](auto& b) { write_le<int32_t>(b, 121, 8); }, "heads"},
      {"huge in_dim", [](auto& b) { write_le<int32_t>(b, 125, 0x40000000); }, "truncated"},
      {"negative in_dim", [](auto& b) { write_le<int32_t>(b, 125, -8); }, "rank"},
      {"rank above in_dim", [](auto& b) { write_le<int32_t>(b, 129, 9); }, "rank"},
      {"zero rank", [](auto& b) { write_le<int32_t>(b, 129, 0); }, "rank"},
      {"outliers above rank", [](auto& b) { write_le<int32_t>(b, 133, 9); }, "outlier"},
      {"nan factor", [nan](auto& b) { write_le<float>(b, 137, nan); }, "nan"},
      {"payload cut short", [](auto& b) { b.resize(b.size() - 4); }, "truncated"},
      {"payload with extra bytes", [](auto& b) { b.push_back(0); }, "trailing"},
  };
  for (const PayloadEdit& e : edits) {
    SCOPED_TRACE(e.name);
    std::vector<uint8_t> edited = payload;
    e.edit(edited);
    const std::vector<uint8_t> file = seal_envelope(FileKind::kProfile, edited);
    expect_error([&] { deserialize_profile(file.data(), file.size()); }, STARKV_ERR_CORRUPT_DATA,
                 {e.expected_text});
  }
}

TEST(ProfileFormat, FileErrorsNameThePathAndTheReason) {
  TempDir dir;
  const std::string missing = dir.path() + "/missing.starkv";
  expect_error([&] { load_profile_file(missing.c_str()); }, STARKV_ERR_IO,
               {missing, "No such file"});
  const std::string no_dir = dir.path() + "/no/such/dir/model.starkv";
  expect_error([&] { save_profile_file(make_profile(), no_dir.c_str()); }, STARKV_ERR_IO,
               {"no/such/dir/model.starkv", "No such file"});
  expect_error([&] { load_profile_file(dir.path().c_str()); }, STARKV_ERR_IO, {dir.path()});
  // A damaged file: the status of the damage, the message prefixed with the path.
  std::vector<uint8_t> bytes = serialize_profile(make_profile());
  bytes.resize(bytes.size() / 2);
  const std::string half = dir.path() + "/half.starkv";
  write_file(half, bytes);
  expect_error([&] { load_profile_file(half.c_str()); }, STARKV_ERR_CORRUPT_DATA,
               {half + ": ", "truncated"});
  const std::string snap = dir.path() + "/seq.snapshot";
  SequenceSnapshot s;
  s.row_bytes = {16};
  s.layer_rows = {{}};
  write_file(snap, encode_snapshot(s));
  expect_error([&] { load_profile_file(snap.c_str()); }, STARKV_ERR_FORMAT,
               {snap, "sequence snapshot, not a profile"});
}

}  // namespace
}  // namespace starkv
