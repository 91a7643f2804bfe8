#include "core/profile.h"

#include "core/profile_format.h"

namespace starkv {

int32_t LayerProfile::key_rank_total() const {
  int32_t total = 0;
  for (const FactorGroup& g : keys) total += g.rank;
  return total;
}

int32_t LayerProfile::value_rank_total() const {
  int32_t total = 0;
  for (const FactorGroup& g : values) total += g.rank;
  return total;
}

void Profile::finalize_layouts() {
  row_layouts.clear();
  for (const LayerProfile& layer : layers) row_layouts.push_back(make_row_layout(layer, quant));
  // FNV-1a over the canonical serialized payload: everything that decides what a row means.
  const std::vector<uint8_t> bytes = serialize_profile_payload(*this);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  fingerprint_ = h;
}

int64_t Profile::bytes_per_token() const {
  int64_t total = 0;
  for (const RowLayout& r : row_layouts) total += r.row_bytes;
  return total;
}

int64_t Profile::dense_bytes_per_token() const {
  return static_cast<int64_t>(shape.n_layers) * 2 * shape.kv_width() * 2;
}

}  // namespace starkv
