#include "core/profile_format.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <unistd.h>  // fsync, getpid

#include "core/byte_io.h"
#include "core/error.h"
#include "core/file_envelope.h"

namespace starkv {
namespace {

void put_group(ByteWriter& w, const FactorGroup& g) {
  w.put<int32_t>(g.in_offset);
  w.put<int32_t>(g.in_dim);
  w.put<int32_t>(g.rank);
  w.put<int32_t>(g.n_outlier);
  w.put_floats(g.down);
  w.put_floats(g.up);
}

FactorGroup get_group(ByteReader& r) {
  FactorGroup g;
  g.in_offset = r.get<int32_t>();
  g.in_dim = r.get<int32_t>();
  g.rank = r.get<int32_t>();
  g.n_outlier = r.get<int32_t>();
  require(g.in_dim > 0 && g.rank > 0 && g.rank <= g.in_dim, STARKV_ERR_CORRUPT_DATA,
          "the profile has a factor group with rank " + std::to_string(g.rank) + " over " +
              std::to_string(g.in_dim) + " inputs");
  const size_t n = static_cast<size_t>(g.in_dim) * static_cast<size_t>(g.rank);
  g.down = r.get_floats(n);
  g.up = r.get_floats(n);
  return g;
}

std::string layer_name(size_t l) { return "layer " + std::to_string(l); }

// Reads an enum stored as int32, checking it against the enumerators [0, last] before the cast
// (an out-of-range value in an enum object is undefined behaviour, not just a wrong answer).
template <class Enum>
Enum get_enum(ByteReader& r, Enum last, const char* what) {
  const int32_t v = r.get<int32_t>();
  require(v >= 0 && v <= static_cast<int32_t>(last), STARKV_ERR_CORRUPT_DATA,
          std::string("the profile has an unknown ") + what + " (" + std::to_string(v) + ")");
  return static_cast<Enum>(v);
}

// Flags are stored as one byte, 0 or 1; anything else is damage.
bool get_flag(ByteReader& r) {
  const uint8_t v = r.get<uint8_t>();
  require(v <= 1, STARKV_ERR_CORRUPT_DATA, "the profile has a flag byte of " + std::to_string(v));
  return v == 1;
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

void validate_groups(const std::vector<FactorGroup>& groups, starkv_decomposition decomposition,
                     const ModelShape& shape, const std::string& what, starkv_status status) {
  const int32_t expected = decomposition == STARKV_DECOMP_HEADWISE ? shape.n_kv_heads : 1;
  require(static_cast<int32_t>(groups.size()) == expected, status,
          what + " has " + std::to_string(groups.size()) + " groups, its decomposition needs " +
              std::to_string(expected));
  int32_t next = 0;
  for (const FactorGroup& g : groups) {
    require(g.in_offset == next && g.in_dim > 0 && g.in_dim % shape.head_dim == 0 &&
                int64_t{g.in_offset} + g.in_dim <= shape.kv_width(),
            status, what + ": factor groups must cover the heads in order");
    require(g.rank >= 1 && g.rank <= g.in_dim && g.n_outlier >= 0 && g.n_outlier <= g.rank,
            status, what + ": a group has an invalid rank or outlier count");
    const size_t n = static_cast<size_t>(g.in_dim) * static_cast<size_t>(g.rank);
    require(g.down.size() == n && g.up.size() == n, status, what + ": factor sizes do not match");
    require(all_finite(g.down) && all_finite(g.up), status,
            what + ": a factor matrix holds inf or nan");
    next = g.in_offset + g.in_dim;
  }
  require(next == shape.kv_width(), status, what + ": factor groups do not cover every head");
}

}  // namespace

void validate_profile(const Profile& p, starkv_status status) {
  const ModelShape& s = p.shape;
  require(s.n_layers >= 1 && s.n_layers <= 4096 && s.n_kv_heads >= 1 && s.n_heads >= 1 &&
              s.n_heads <= 4096 && s.n_heads % s.n_kv_heads == 0 && s.head_dim >= 2 &&
              s.head_dim <= 1024 && s.head_dim % 2 == 0 && s.hidden_dim >= 0,
          status, "the profile's model shape is invalid");
  require(static_cast<int32_t>(p.layers.size()) == s.n_layers, status,
          "the profile's layer count does not match its shape");
  require(p.rope.style == STARKV_ROPE_NEOX || p.rope.style == STARKV_ROPE_GPTJ ||
              p.rope.style == STARKV_ROPE_NONE,
          status, "the profile's RoPE style is unknown");
  require(p.rope.rotary_dim >= 0 && p.rope.rotary_dim <= s.head_dim && p.rope.rotary_dim % 2 == 0,
          status, "the profile's rotary dimension is invalid");
  require(p.rope.scaling == STARKV_ROPE_SCALING_NONE || p.rope.scaling == STARKV_ROPE_SCALING_LINEAR ||
              p.rope.scaling == STARKV_ROPE_SCALING_LLAMA3,
          status, "the profile's RoPE scaling is unknown");
  require(std::isfinite(p.rope.theta) && p.rope.theta > 0.0f && std::isfinite(p.rope.factor) &&
              p.rope.factor > 0.0f && std::isfinite(p.rope.low_freq_factor) &&
              std::isfinite(p.rope.high_freq_factor) && p.rope.original_max_position > 0,
          status, "the profile's RoPE parameters are invalid");
  require(std::isfinite(p.attention_scale) && p.attention_scale > 0.0f, status,
          "the profile's attention scale is not a positive number");
  const int32_t qib = p.quant.inlier_bits, qob = p.quant.outlier_bits;
  // As for layers: outlier bits only mean something when the inliers are quantized (the builder
  // stores the inlier width there otherwise).
  require((qib == 2 || qib == 3 || qib == 4 || qib == 16 || qib == 32) &&
              (qib >= 16 || qob == 4 || qob == 8 || qob == 16) && p.quant.outlier_fraction >= 0.0f &&
              p.quant.outlier_fraction <= 1.0f,
          status, "the profile's quantization settings are invalid");
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const LayerProfile& layer = p.layers[l];
    for (starkv_decomposition d : {layer.key_decomposition, layer.value_decomposition}) {
      require(d == STARKV_DECOMP_HEADWISE || d == STARKV_DECOMP_JOINT, status,
              layer_name(l) + " has an unknown decomposition");
    }
    validate_groups(layer.keys, layer.key_decomposition, s, layer_name(l) + " keys", status);
    validate_groups(layer.values, layer.value_decomposition, s, layer_name(l) + " values", status);
    const int32_t ib = layer.inlier_bits, ob = layer.outlier_bits;
    require(ib == 2 || ib == 3 || ib == 4 || ib == 16 || ib == 32, status,
            layer_name(l) + " has invalid inlier bits " + std::to_string(ib));
    require(ib >= 16 || ob == 4 || ob == 8 || ob == 16, status,
            layer_name(l) + " has invalid outlier bits " + std::to_string(ob));
  }
}

std::vector<uint8_t> serialize_profile_payload(const Profile& p) {
  ByteWriter w;
  w.put<int32_t>(p.shape.n_layers);
  w.put<int32_t>(p.shape.n_heads);
  w.put<int32_t>(p.shape.n_kv_heads);
  w.put<int32_t>(p.shape.head_dim);
  w.put<int32_t>(p.shape.hidden_dim);
  w.put<int32_t>(p.rope.style);
  w.put<int32_t>(p.rope.rotary_dim);
  w.put<float>(p.rope.theta);
  w.put<int32_t>(p.rope.scaling);
  w.put<float>(p.rope.factor);
  w.put<float>(p.rope.low_freq_factor);
  w.put<float>(p.rope.high_freq_factor);
  w.put<int32_t>(p.rope.original_max_position);
  w.put<float>(p.attention_scale);
  w.put<int32_t>(p.quant.inlier_bits);
  w.put<int32_t>(p.quant.outlier_bits);
  w.put<float>(p.quant.outlier_fraction);
  w.put<uint8_t>(p.quant.hadamard ? 1 : 0);
  w.put<uint8_t>(p.quant.pack_3bit_in_nibbles ? 1 : 0);
  w.put<uint64_t>(p.seed);
  w.put<int32_t>(p.record.allocator);
  w.put<float>(p.record.target_compression);
  w.put<float>(p.record.key_compression);
  w.put<float>(p.record.value_compression);
  w.put<uint8_t>(p.record.calibrated ? 1 : 0);
  w.put<uint8_t>(p.record.imported ? 1 : 0);
  w.put<uint32_t>(static_cast<uint32_t>(p.layers.size()));
  for (const LayerProfile& layer : p.layers) {
    w.put<uint8_t>(layer.compressed ? 1 : 0);
    w.put<int32_t>(layer.key_decomposition);
    w.put<int32_t>(layer.value_decomposition);
    w.put<int32_t>(layer.inlier_bits);
    w.put<int32_t>(layer.outlier_bits);
    w.put<uint32_t>(static_cast<uint32_t>(layer.keys.size()));
    for (const FactorGroup& g : layer.keys) put_group(w, g);
    w.put<uint32_t>(static_cast<uint32_t>(layer.values.size()));
    for (const FactorGroup& g : layer.values) put_group(w, g);
  }
  return std::move(w.bytes());
}

std::vector<uint8_t> serialize_profile(const Profile& profile) {
  return seal_envelope(FileKind::kProfile, serialize_profile_payload(profile));
}

std::unique_ptr<Profile> deserialize_profile(const void* data, size_t size) {
  require(data != nullptr || size == 0, STARKV_ERR_INVALID_ARGUMENT, "no data");
  const std::vector<uint8_t> payload = open_envelope(FileKind::kProfile, data, size);
  ByteReader r(payload.data(), payload.size(), "the profile");
  auto p = std::make_unique<Profile>();
  p->shape.n_layers = r.get<int32_t>();
  p->shape.n_heads = r.get<int32_t>();
  p->shape.n_kv_heads = r.get<int32_t>();
  p->shape.head_dim = r.get<int32_t>();
  p->shape.hidden_dim = r.get<int32_t>();
  p->rope.style = get_enum(r, STARKV_ROPE_NONE, "RoPE style");
  p->rope.rotary_dim = r.get<int32_t>();
  p->rope.theta = r.get<float>();
  p->rope.scaling = get_enum(r, STARKV_ROPE_SCALING_LLAMA3, "RoPE scaling");
  p->rope.factor = r.get<float>();
  p->rope.low_freq_factor = r.get<float>();
  p->rope.high_freq_factor = r.get<float>();
  p->rope.original_max_position = r.get<int32_t>();
  p->attention_scale = r.get<float>();
  p->quant.inlier_bits = r.get<int32_t>();
  p->quant.outlier_bits = r.get<int32_t>();
  p->quant.outlier_fraction = r.get<float>();
  p->quant.hadamard = get_flag(r);
  p->quant.pack_3bit_in_nibbles = get_flag(r);
  p->seed = r.get<uint64_t>();
  p->record.allocator = get_enum(r, STARKV_ALLOC_GREEDY, "rank allocator");
  p->record.target_compression = r.get<float>();
  p->record.key_compression = r.get<float>();
  p->record.value_compression = r.get<float>();
  p->record.calibrated = get_flag(r);
  p->record.imported = get_flag(r);
  const uint32_t n_layers = r.get<uint32_t>();
  require(static_cast<int64_t>(n_layers) == p->shape.n_layers && n_layers <= 4096,
          STARKV_ERR_CORRUPT_DATA, "the profile's layer count is inconsistent");
  for (uint32_t l = 0; l < n_layers; ++l) {
    LayerProfile layer;
    layer.compressed = get_flag(r);
    layer.key_decomposition = get_enum(r, STARKV_DECOMP_JOINT, "key decomposition");
    layer.value_decomposition = get_enum(r, STARKV_DECOMP_JOINT, "value decomposition");
    layer.inlier_bits = r.get<int32_t>();
    layer.outlier_bits = r.get<int32_t>();
    const uint32_t n_keys = r.get<uint32_t>();
    require(n_keys <= 4096, STARKV_ERR_CORRUPT_DATA, "the profile has too many key groups");
    for (uint32_t g = 0; g < n_keys; ++g) layer.keys.push_back(get_group(r));
    const uint32_t n_values = r.get<uint32_t>();
    require(n_values <= 4096, STARKV_ERR_CORRUPT_DATA, "the profile has too many value groups");
    for (uint32_t g = 0; g < n_values; ++g) layer.values.push_back(get_group(r));
    p->layers.push_back(std::move(layer));
  }
  r.expect_end();
  validate_profile(*p, STARKV_ERR_CORRUPT_DATA);
  p->finalize_layouts();
  return p;
}

void save_profile_file(const Profile& profile, const char* path) {
  require(path != nullptr && path[0] != '\0', STARKV_ERR_INVALID_ARGUMENT, "no file path given");
  const std::vector<uint8_t> bytes = serialize_profile(profile);
  // Write beside the target and rename over it, so a reader (or a crash) never sees a half-written
  // profile. The process id keeps two processes saving the same path from sharing a temp file.
  const std::string tmp = std::string(path) + ".tmp." + std::to_string(static_cast<long>(getpid()));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  require(f != nullptr, STARKV_ERR_IO,
          "cannot open " + tmp + " for writing: " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
            fsync(fileno(f)) == 0;
  int err = errno;
  if (std::fclose(f) != 0 && ok) {  // a delayed write error can surface only here
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(STARKV_ERR_IO, "cannot write " + tmp + ": " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path) != 0) {
    const int rename_err = errno;
    std::remove(tmp.c_str());
    throw Error(STARKV_ERR_IO, std::string("cannot rename ") + tmp + " to " + path + ": " +
                                   std::strerror(rename_err));
  }
}

std::unique_ptr<Profile> load_profile_file(const char* path) {
  require(path != nullptr && path[0] != '\0', STARKV_ERR_INVALID_ARGUMENT, "no file path given");
  FILE* f = std::fopen(path, "rb");
  require(f != nullptr, STARKV_ERR_IO, std::string("cannot open ") + path + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  const int err = errno;
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  require(!failed, STARKV_ERR_IO, std::string("cannot read ") + path + ": " + std::strerror(err));
  try {
    return deserialize_profile(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(e.status(), std::string(path) + ": " + e.what());
  }
}

}  // namespace starkv
