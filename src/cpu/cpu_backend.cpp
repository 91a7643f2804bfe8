// The reference backend: plain loops with fp32 arithmetic over host memory. It is the oracle the
// CUDA backend is tested against, so it favors clarity over speed, but it still shares key
// reconstruction across all queries of a sequence (a causal prefill chunk reads each stored token
// once per chunk, not once per query), which keeps the real-model demo usable on a CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quantizer.h"
#include "core/rope.h"
#include "cpu/latent_projection.h"
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

// Attention state of one query while the tokens of its sequence stream past (online softmax).
struct QueryState {
  std::vector<float> q;            // [H, D]
  std::vector<float> running_max;  // [H]
  std::vector<float> running_sum;  // [H]
  std::vector<float> value_acc;    // [H, value latent width]: sum_t p_t * value latent_t
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
      require(std::isfinite(x), STARKV_ERR_NUMERICAL,
              "the input holds a non-finite value (" + std::to_string(x) + ") at element " +
                  std::to_string(i) + "; nothing was stored");
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

// The value group (and its first channel within the layer's value latents) covering each KV head.
struct HeadValueGroup {
  const FactorGroup* group = nullptr;
  int32_t channel_offset = 0;
};

std::vector<HeadValueGroup> value_group_per_head(const LayerProfile& lp, int32_t n_kv_heads,
                                                 int32_t head_dim) {
  std::vector<HeadValueGroup> per_head(static_cast<size_t>(n_kv_heads));
  int32_t offset = 0;
  for (const FactorGroup& g : lp.values) {
    for (int32_t h = g.in_offset / head_dim; h < (g.in_offset + g.in_dim) / head_dim; ++h) {
      per_head[static_cast<size_t>(h)] = {&g, offset};
    }
    offset += g.rank;
  }
  return per_head;
}

void CpuBackend::attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
                        const std::vector<AttendQuery>& queries, BackendPlan*, const void* q,
                        starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) {
  const auto& s = static_cast<const CpuPoolStorage&>(storage);
  const LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const RowLayout& layout = profile.row_layouts[static_cast<size_t>(layer)];
  const int32_t H = profile.shape.n_heads, D = profile.shape.head_dim;
  const int32_t kv_width = profile.shape.kv_width();
  const int32_t q_per_kv = profile.shape.queries_per_kv();
  const int32_t key_width = lp.key_rank_total();
  const int32_t latent_width = layout.latent_width;
  const int32_t pt = s.page_tokens;
  const float scale = profile.attention_scale;
  const std::vector<HeadValueGroup> vgroups = value_group_per_head(lp, profile.shape.n_kv_heads, D);
  std::vector<float> inv_freq(static_cast<size_t>(std::max(1, profile.rope.rotary_dim / 2)));
  rope_inverse_frequencies(profile.rope, D, inv_freq.data());

  // Queries grouped by sequence, so each stored token is reconstructed once per call.
  std::map<int32_t, std::vector<size_t>> by_sequence;
  for (size_t i = 0; i < queries.size(); ++i) by_sequence[queries[i].seq_id].push_back(i);

  for (const auto& [seq_id, members] : by_sequence) {
    (void)seq_id;
    const AttendQuery& first = queries[members.front()];
    int32_t kv_max = 0;
    for (size_t i : members) kv_max = std::max(kv_max, queries[i].kv_length);

    std::vector<QueryState> states(members.size());
    for (size_t m = 0; m < members.size(); ++m) {
      QueryState& st = states[m];
      st.q.resize(static_cast<size_t>(H) * static_cast<size_t>(D));
      for (size_t c = 0; c < st.q.size(); ++c) {
        st.q[c] = load_as_float(q, q_dtype, members[m] * st.q.size() + c);
      }
      st.running_max.assign(static_cast<size_t>(H), -std::numeric_limits<float>::infinity());
      st.running_sum.assign(static_cast<size_t>(H), 0.0f);
      st.value_acc.assign(static_cast<size_t>(H) * static_cast<size_t>(latent_width), 0.0f);
    }

    std::vector<float> latents(static_cast<size_t>(pt) * static_cast<size_t>(latent_width));
    std::vector<float> keys(static_cast<size_t>(pt) * static_cast<size_t>(kv_width));
    for (int32_t start = 0; start < kv_max; start += pt) {
      const int32_t count = std::min(pt, kv_max - start);
      const int32_t page = first.pages[start / pt];
      // Decode and reconstruct this page's tokens (RoPE at their positions).
#pragma omp parallel for num_threads(worker_threads(n_threads_)) schedule(static)
      for (int32_t j = 0; j < count; ++j) {
        float* lat = latents.data() + static_cast<size_t>(j) * static_cast<size_t>(latent_width);
        float* key = keys.data() + static_cast<size_t>(j) * static_cast<size_t>(kv_width);
        decode_row(layout, s.row(profile, layer, page, j), lat);
        reconstruct_key(lp, kv_width, lat, key);
        for (int32_t g = 0; g < profile.shape.n_kv_heads; ++g) {
          apply_rope(profile.rope, D, start + j, inv_freq.data(), key + static_cast<size_t>(g) * D);
        }
      }
      // Fold the page into every query's online softmax.
#pragma omp parallel for num_threads(worker_threads(n_threads_)) schedule(dynamic)
      for (int64_t m = 0; m < static_cast<int64_t>(members.size()); ++m) {
        QueryState& st = states[static_cast<size_t>(m)];
        const int32_t limit = std::min(count, queries[members[static_cast<size_t>(m)]].kv_length - start);
        if (limit <= 0) continue;
        std::vector<float> scores(static_cast<size_t>(limit));
        for (int32_t h = 0; h < H; ++h) {
          const int32_t g = h / q_per_kv;
          const float* qh = st.q.data() + static_cast<size_t>(h) * D;
          float page_max = -std::numeric_limits<float>::infinity();
          for (int32_t j = 0; j < limit; ++j) {
            const float* key = keys.data() + static_cast<size_t>(j) * kv_width + static_cast<size_t>(g) * D;
            float dot = 0.0f;
            for (int32_t c = 0; c < D; ++c) dot += qh[c] * key[c];
            scores[static_cast<size_t>(j)] = dot * scale;
            page_max = std::max(page_max, scores[static_cast<size_t>(j)]);
          }
          float& run_max = st.running_max[static_cast<size_t>(h)];
          const float new_max = std::max(run_max, page_max);
          const float rescale = std::exp(run_max - new_max);  // 0 on the first page
          const HeadValueGroup& vg = vgroups[static_cast<size_t>(g)];
          float* acc = st.value_acc.data() + static_cast<size_t>(h) * latent_width;
          float sum = st.running_sum[static_cast<size_t>(h)] * rescale;
          for (int32_t r = 0; r < vg.group->rank; ++r) acc[r] *= rescale;
          for (int32_t j = 0; j < limit; ++j) {
            const float p = std::exp(scores[static_cast<size_t>(j)] - new_max);
            sum += p;
            const float* vlat = latents.data() + static_cast<size_t>(j) * latent_width + key_width +
                                vg.channel_offset;
            for (int32_t r = 0; r < vg.group->rank; ++r) acc[r] += p * vlat[r];
          }
          st.running_sum[static_cast<size_t>(h)] = sum;
          run_max = new_max;
        }
      }
    }

    // o_h = (sum_t p_t latent_t / sum_t p_t) · (head g's slice of the value up-projection).
    for (size_t m = 0; m < members.size(); ++m) {
      const QueryState& st = states[m];
      for (int32_t h = 0; h < H; ++h) {
        const int32_t g = h / q_per_kv;
        const HeadValueGroup& vg = vgroups[static_cast<size_t>(g)];
        const float* acc = st.value_acc.data() + static_cast<size_t>(h) * latent_width;
        const float inv_sum = 1.0f / st.running_sum[static_cast<size_t>(h)];
        const int32_t col0 = g * D - vg.group->in_offset;
        for (int32_t c = 0; c < D; ++c) {
          float o = 0.0f;
          for (int32_t r = 0; r < vg.group->rank; ++r) {
            o += acc[r] * vg.group->up[static_cast<size_t>(r) * vg.group->in_dim + col0 + c];
          }
          store_from_float(out, out_dtype,
                           (members[m] * static_cast<size_t>(H) + static_cast<size_t>(h)) * D + c,
                           o * inv_sum);
        }
      }
    }
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int32_t n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace starkv
