// The reference backend: fp32 arithmetic over host memory. It is the oracle the CUDA backend is
// tested against, so it favors clarity over speed, but attention does the work the queries of a
// sequence share only once, in cache-blocked loops (src/cpu/sequence_attention.h), which keeps
// the real-model demo's prefill usable on a CPU.
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quantizer.h"
#include "cpu/latent_projection.h"
#include "cpu/sequence_attention.h"
#include "cpu/worker_threads.h"

namespace starkv {
namespace {

class CpuPoolStorage : public PoolStorage {
 public:
  std::vector<std::vector<uint8_t>> layers;  // [n_pages][page_tokens][row_bytes] per layer

  uint8_t* row(const Profile& p, int32_t layer, int32_t page, int32_t slot) {
    const size_t row_bytes = static_cast<size_t>(p.row_layouts[static_cast<size_t>(layer)].row_bytes);
    return layers[static_cast<size_t>(layer)].data() +
           (static_cast<size_t>(page) * static_cast<size_t>(page_tokens) +
            static_cast<size_t>(slot)) * row_bytes;
  }
  const uint8_t* row(const Profile& p, int32_t layer, int32_t page, int32_t slot) const {
    return const_cast<CpuPoolStorage*>(this)->row(p, layer, page, slot);
  }
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int32_t n_threads) : n_threads_(n_threads) {}
  starkv_backend kind() const override { return STARKV_BACKEND_CPU; }

  std::unique_ptr<PoolStorage> create_pool_storage(const Profile& profile, int64_t n_pages,
                                                   int32_t page_tokens) override {
    auto storage = std::make_unique<CpuPoolStorage>();
    storage->n_pages = n_pages;
    storage->page_tokens = page_tokens;
    for (const RowLayout& layout : profile.row_layouts) {
      storage->layers.emplace_back(static_cast<size_t>(n_pages) * static_cast<size_t>(page_tokens) *
                                       static_cast<size_t>(layout.row_bytes),
                                   uint8_t{0});
    }
    return storage;
  }

  void copy_page(const Profile& profile, PoolStorage& storage, int32_t src,
                 int32_t dst) override {
    auto& s = static_cast<CpuPoolStorage&>(storage);
    for (int32_t l = 0; l < profile.shape.n_layers; ++l) {
      const size_t bytes = static_cast<size_t>(s.page_tokens) *
                           static_cast<size_t>(profile.row_layouts[static_cast<size_t>(l)].row_bytes);
      std::memcpy(s.row(profile, l, dst, 0), s.row(profile, l, src, 0), bytes);
    }
  }

  void check_append_input(const void* data, int64_t count, starkv_dtype dtype) const override {
    for (int64_t i = 0; i < count; ++i) {
      const float x = load_as_float(data, dtype, static_cast<size_t>(i));
      // The message is built only on failure: formatting it for every element cost more than
      // the whole append.
      if (!std::isfinite(x)) {
        throw Error(STARKV_ERR_NUMERICAL, "the input holds a non-finite value (" +
                                              std::to_string(x) + ") at element " +
                                              std::to_string(i) + "; nothing was stored");
      }
    }
  }

  void append(const Profile& profile, PoolStorage& storage, int32_t layer,
              const std::vector<AppendTarget>& targets, const void* keys, const void* values,
              starkv_dtype dtype) override {
    auto& s = static_cast<CpuPoolStorage&>(storage);
    const LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
    const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
    const size_t kv_width = static_cast<size_t>(profile.shape.kv_width());
    const int64_t n = static_cast<int64_t>(targets.size());
#pragma omp parallel for num_threads(worker_threads(n_threads_)) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> k(kv_width), v(kv_width), latent(static_cast<size_t>(layout.latent_width));
      for (size_t c = 0; c < kv_width; ++c) {
        k[c] = load_as_float(keys, dtype, static_cast<size_t>(i) * kv_width + c);
        v[c] = load_as_float(values, dtype, static_cast<size_t>(i) * kv_width + c);
      }
      project_to_latents(lp, k.data(), v.data(), latent.data());
      const AppendTarget& t = targets[static_cast<size_t>(i)];
      encode_row(layout, latent.data(), s.row(profile, layer, t.page, t.slot));
    }
  }

  void append_latents(const Profile& profile, PoolStorage& storage, int32_t layer,
                      const std::vector<AppendTarget>& targets, const void* latents,
                      starkv_dtype dtype) override {
    auto& s = static_cast<CpuPoolStorage&>(storage);
    const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
    const size_t width = static_cast<size_t>(layout.latent_width);
    std::vector<float> latent(width);
    for (size_t i = 0; i < targets.size(); ++i) {
      for (size_t c = 0; c < width; ++c) latent[c] = load_as_float(latents, dtype, i * width + c);
      encode_row(layout, latent.data(), s.row(profile, layer, targets[i].page, targets[i].slot));
    }
  }

  void read_rows(const Profile& profile, const PoolStorage& storage, int32_t layer, int32_t page,
                 int32_t slot, int32_t n, uint8_t* host_dst) override {
    const auto& s = static_cast<const CpuPoolStorage&>(storage);
    const size_t row_bytes = static_cast<size_t>(profile.row_layouts[static_cast<size_t>(layer)].row_bytes);
    std::memcpy(host_dst, s.row(profile, layer, page, slot), static_cast<size_t>(n) * row_bytes);
  }

  void write_rows(const Profile& profile, PoolStorage& storage, int32_t layer, int32_t page,
                  int32_t slot, int32_t n, const uint8_t* host_src) override {
    auto& s = static_cast<CpuPoolStorage&>(storage);
    const size_t row_bytes = static_cast<size_t>(profile.row_layouts[static_cast<size_t>(layer)].row_bytes);
    std::memcpy(s.row(profile, layer, page, slot), host_src, static_cast<size_t>(n) * row_bytes);
  }

  std::unique_ptr<BackendPlan> plan(const Profile&, const PoolStorage&,
                                    const std::vector<AttendQuery>&) override {
    return nullptr;  // the CPU reads page tables live
  }

  void attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
              const std::vector<AttendQuery>& queries, BackendPlan*, const void* q,
              starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) override;

 private:
  int32_t n_threads_;
};

void CpuBackend::attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
                        const std::vector<AttendQuery>& queries, BackendPlan*, const void* q,
                        starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) {
  const auto& s = static_cast<const CpuPoolStorage&>(storage);
  LayerRows rows;
  rows.base = s.layers[static_cast<size_t>(layer)].data();
  rows.row_bytes = static_cast<size_t>(profile.row_layouts[static_cast<size_t>(layer)].row_bytes);
  rows.page_tokens = s.page_tokens;
  // Queries grouped by sequence, so each stored token is decoded and reconstructed once per call.
  std::map<int32_t, std::vector<size_t>> by_sequence;
  for (size_t i = 0; i < queries.size(); ++i) by_sequence[queries[i].seq_id].push_back(i);
  for (const auto& entry : by_sequence) {
    attend_sequence(profile, layer, rows, queries, entry.second, q, q_dtype, out, out_dtype,
                    n_threads_);
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int32_t n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace starkv
