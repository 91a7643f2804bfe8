// The CUDA backend: pool rows in device memory (one cudaMalloc per layer), append through a
// projection kernel (or cuBLAS for large batches) and the encode kernel, attention through the
// split-K decode kernel and its combine kernel (uncompressed layers: the dense kernels). Work goes
// to the context's stream; nothing here synchronizes the device except read_rows (the caller needs
// the bytes) and synchronize().
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/split_planning.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "cuda/device_layer.h"
#include "kernels/kernel_api.h"

namespace starkv {
namespace {

// Batches up to this many tokens are projected by the projection kernel (one launch for all
// groups); larger ones (prefill) by cuBLAS SGEMM per group. Both equal the CPU's latents up to
// fp32 rounding (summation order).
constexpr int32_t kSmallAppend = 64;

// Blocks per SM the plan aims at for a batch of dense layers only (one block per work item and KV
// head, 3-4 resident per SM): a few waves, so that the last, partly filled one costs little.
constexpr int64_t kDenseCtasPerSm = 16;

// Whether an on/off environment switch is on: set, non-empty and not "0".
bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

class CudaPoolStorage : public PoolStorage {
 public:
  CudaPoolStorage(const Profile& profile, int64_t pages, int32_t tokens, int32_t n_sms,
                  cudaStream_t stream)
      : model(profile, tokens, stream) {
    n_pages = pages;
    page_tokens = tokens;
    for (int32_t l = 0; l < profile.shape.n_layers; ++l) {
      layers.push_back(
          std::make_unique<DeviceLayer>(profile, l, model, pages, tokens, n_sms, stream));
    }
  }
  DeviceModel model;
  std::vector<std::unique_ptr<DeviceLayer>> layers;
  // The fold layers' launch shapes for the wave-filling split (core/split_planning.h), set at
  // pool creation; empty with no fold layer or with STARKV_NO_WAVE_SPLIT=1 (plain split).
  std::vector<SplitLayerShape> split_shapes;

  uint8_t* row(int32_t layer, int32_t page, int32_t slot) const {
    const DeviceLayer& d = *layers[static_cast<size_t>(layer)];
    return d.view.rows + (static_cast<int64_t>(page) * page_tokens + slot) *
                             static_cast<int64_t>(d.view.row_bytes);
  }
};

// A planned batch: device page tables, the split-K work list and the partial-result workspace,
// all allocated here so that attend() allocates nothing.
class CudaPlan : public BackendPlan {
 public:
  std::vector<int32_t> kv_lengths;  // what the plan was made for
  std::vector<int32_t> seq_ids;
  DeviceBuffer items, page_offsets, pages, query_items, acc, stats, probs, tile_max, vacc,
      dense_acc;
  kernels::AttendBatch batch{};
};

class CudaBackend : public Backend {
 public:
  CudaBackend(int32_t device, void* stream)
      : device_(device), stream_(static_cast<cudaStream_t>(stream)) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      cudaGetLastError();
      throw Error(STARKV_ERR_BACKEND_UNAVAILABLE, "no CUDA device is available");
    }
    require(device < count, STARKV_ERR_INVALID_ARGUMENT,
            "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                " present)");
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    cuda_check(cudaDeviceGetAttribute(&n_sms_, cudaDevAttrMultiProcessorCount, device_),
               "cudaDeviceGetAttribute");
    cuda_check(cudaDeviceGetAttribute(&max_smem_, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_),
               "cudaDeviceGetAttribute");
    cuda_check(cudaDeviceGetAttribute(&sm_smem_, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                      device_),
               "cudaDeviceGetAttribute");
    cuda_check(cudaDeviceGetAttribute(&reserved_smem_, cudaDevAttrReservedSharedMemoryPerBlock,
                                      device_),
               "cudaDeviceGetAttribute");
    cuda_check(kernels::configure_kernels(max_smem_), "configure_kernels");
  }
  ~CudaBackend() override {
    if (cublas_ != nullptr) cublasDestroy(cublas_);
  }

  starkv_backend kind() const override { return STARKV_BACKEND_CUDA; }

  std::unique_ptr<PoolStorage> create_pool_storage(const Profile& profile, int64_t n_pages,
                                                   int32_t page_tokens) override {
    select();
    auto storage =
        std::make_unique<CudaPoolStorage>(profile, n_pages, page_tokens, n_sms_, stream_);
    // Uncompressed layers whose rows are exactly fp16 K/V take the dense kernels, unless
    // STARKV_NO_DENSE=1 keeps them on the low-rank kernels (for A/B comparisons).
    const bool dense_allowed = !env_flag("STARKV_NO_DENSE") &&
                               kernels::dense_layer_attention_smem_bytes(profile.shape.head_dim) <=
                                   static_cast<size_t>(max_smem_);
    for (auto& layer : storage->layers) {
      layer->use_dense = dense_allowed && layer->dense_exact &&
                         kernels::dense_layer_attention_supported(storage->model.view,
                                                                  layer->dense_view.rope_mode);
      if (layer->use_dense) continue;  // the low-rank kernels' tiles need not fit
      const size_t scores =
          kernels::split_scores_smem_bytes(layer->scores_view, storage->model.view);
      const size_t values =
          kernels::split_values_smem_bytes(layer->values_view, storage->model.view);
      layer->use_split = storage->model.n_chunks > 1 && values > 0 &&
                         scores <= static_cast<size_t>(max_smem_) &&
                         values <= static_cast<size_t>(max_smem_);
      // GQA layers reconstruct each KV head's keys once (kernels::LayerView::recon_keys).
      layer->fold_view.recon_keys =
          storage->model.view.q_per_kv >= 2 && std::getenv("STARKV_NO_RECON") == nullptr ? 1 : 0;
      // Reconstructing keys, the fold takes chunks of 4 KV heads (DeviceLayer::wide_fold_view)
      // unless STARKV_NO_WIDE_RECON=1 keeps the model's 8-query-head chunks.
      // MHA layers whose quantized keys fold on the narrow wgmma instances (padded rank <= 48)
      // take chunks of 4 heads too, unless STARKV_NO_NARROW_FOLD=1 (kernels::fold_narrow says
      // why).
      bool wide = false;  // whether fold_view is now the wide one (its chunks' tensor maps)
      if (layer->fold_view.recon_keys != 0 && layer->has_wide_fold_view &&
          !env_flag("STARKV_NO_WIDE_RECON")) {
        layer->fold_view = layer->wide_fold_view;
        layer->fold_view.recon_keys = 1;
        wide = true;
      } else if (layer->fold_view.recon_keys == 0 && layer->has_wide_fold_view &&
                 !env_flag("STARKV_NO_NARROW_FOLD") &&
                 kernels::fold_runs_narrow(layer->wide_fold_view, storage->model.view)) {
        layer->fold_view = layer->wide_fold_view;
        wide = true;
      }
      // The fold stages each tile by one tensor copy where its tensor maps exist (fp16 keys, in
      // the model's chunks or in the wide chunks of reconstructed keys) and it runs the wgmma
      // instances (64-token tiles); STARKV_NO_TENSOR_STAGING=1 keeps cp.async. (Keys
      // reconstructed in the model's chunks, STARKV_NO_WIDE_RECON=1, keep cp.async too: that
      // comparison path was measured and tested with it.)
      const DeviceBuffer* maps = wide                               ? &layer->wide_fold_row_maps
                                 : layer->fold_view.recon_keys == 0 ? &layer->fold_row_maps
                                                                    : nullptr;
      layer->fold_view.key_row_maps = nullptr;
      if (maps != nullptr && maps->bytes() > 0 && !env_flag("STARKV_NO_TENSOR_STAGING") &&
          kernels::fold_uses_tensor_staging(layer->fold_view, storage->model.view)) {
        layer->fold_view.key_row_maps = maps->get<uint8_t>();
      }
      const size_t fold = kernels::fold_scores_smem_bytes(layer->fold_view, storage->model.view);
      layer->use_fold = layer->use_split && fold <= static_cast<size_t>(max_smem_) &&
                        std::getenv("STARKV_NO_FOLD") == nullptr;
      // The fused kernel runs only for layers that do not take the split path, so only they need
      // its tile to fit (a wide joint value group, e.g. rank 2458 of 32 heads x 128, does not,
      // and the split path's kernels handle it).
      const size_t smem = kernels::attention_smem_bytes(layer->view, storage->model.view);
      require(layer->use_split || smem <= static_cast<size_t>(max_smem_), STARKV_ERR_UNSUPPORTED,
              "a layer's attention tile needs " + std::to_string(smem) +
                  " bytes of shared memory, more than the device's " + std::to_string(max_smem_));
      if (layer->use_fold && std::getenv("STARKV_NO_WAVE_SPLIT") == nullptr) {
        storage->split_shapes.push_back(split_shape(*layer, storage->model.view, fold));
      }
    }
    return storage;
  }

  void copy_page(const Profile& profile, PoolStorage& storage, int32_t src, int32_t dst) override {
    select();
    auto& s = static_cast<CudaPoolStorage&>(storage);
    for (int32_t l = 0; l < profile.shape.n_layers; ++l) {
      const size_t bytes = static_cast<size_t>(s.page_tokens) *
                           static_cast<size_t>(s.layers[static_cast<size_t>(l)]->view.row_bytes);
      cuda_check(cudaMemcpyAsync(s.row(l, dst, 0), s.row(l, src, 0), bytes,
                                 cudaMemcpyDeviceToDevice, stream_),
                 "cudaMemcpyAsync (copy_page)");
    }
  }

  void append(const Profile& profile, PoolStorage& storage, int32_t layer,
              const std::vector<AppendTarget>& targets, const void* keys, const void* values,
              starkv_dtype dtype) override {
    select();
    auto& s = static_cast<CudaPoolStorage&>(storage);
    const DeviceLayer& d = *s.layers[static_cast<size_t>(layer)];
    const int32_t n = static_cast<int32_t>(targets.size());
    if (n == 0) return;
    const int32_t kv_width = profile.shape.kv_width();
    const size_t in_elems = static_cast<size_t>(n) * static_cast<size_t>(kv_width);
    const size_t lat_elems = static_cast<size_t>(n) * static_cast<size_t>(d.view.latent_width);
    if (n <= kSmallAppend) {
      // Decode-sized: the projection kernel reads the inputs in their dtype and writes one partial
      // sum per slice of the input rows (the layer's slicing is fixed at pool creation); the
      // encode adds them.
      const int32_t slices = d.view.proj_slices;
      scratch_.reserve(static_cast<size_t>(slices) * lat_elems * sizeof(float));
      float* lat = scratch_.get<float>();
      cuda_check(
          kernels::launch_project_latents(d.view, kv_width, n, keys, values, dtype, lat, stream_),
          "project_latents");
      encode(s, d, targets, lat, STARKV_DTYPE_F32, slices, true);
      return;
    }
    scratch_.reserve((2 * in_elems + lat_elems) * sizeof(float));
    float* k32 = scratch_.get<float>();
    float* v32 = k32 + in_elems;
    float* lat = v32 + in_elems;
    cuda_check(kernels::launch_to_float(keys, dtype, static_cast<int64_t>(in_elems), k32, stream_),
               "to_float (keys)");
    cuda_check(
        kernels::launch_to_float(values, dtype, static_cast<int64_t>(in_elems), v32, stream_),
        "to_float (values)");
    project_with_cublas(d, kv_width, n, k32, v32, lat);
    encode(s, d, targets, lat, STARKV_DTYPE_F32, 1, false);
  }

  void append_latents(const Profile&, PoolStorage& storage, int32_t layer,
                      const std::vector<AppendTarget>& targets, const void* latents,
                      starkv_dtype dtype) override {
    select();
    auto& s = static_cast<CudaPoolStorage&>(storage);
    encode(s, *s.layers[static_cast<size_t>(layer)], targets, latents, dtype, 1, false);
  }

  void read_rows(const Profile&, const PoolStorage& storage, int32_t layer, int32_t page,
                 int32_t slot, int32_t n, uint8_t* host_dst) override {
    select();
    const auto& s = static_cast<const CudaPoolStorage&>(storage);
    const size_t bytes = static_cast<size_t>(n) *
                         static_cast<size_t>(s.layers[static_cast<size_t>(layer)]->view.row_bytes);
    cuda_check(
        cudaMemcpyAsync(host_dst, s.row(layer, page, slot), bytes, cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync (read_rows)");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (read_rows)");
  }

  void write_rows(const Profile&, PoolStorage& storage, int32_t layer, int32_t page, int32_t slot,
                  int32_t n, const uint8_t* host_src) override {
    select();
    auto& s = static_cast<CudaPoolStorage&>(storage);
    const size_t bytes = static_cast<size_t>(n) *
                         static_cast<size_t>(s.layers[static_cast<size_t>(layer)]->view.row_bytes);
    // From pageable memory the call returns once the bytes are staged, so host_src may go away.
    cuda_check(
        cudaMemcpyAsync(s.row(layer, page, slot), host_src, bytes, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync (write_rows)");
  }

  std::unique_ptr<BackendPlan> plan(const Profile& profile, const PoolStorage& storage,
                                    const std::vector<AttendQuery>& queries) override;

  void attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
              const std::vector<AttendQuery>& queries, BackendPlan* plan, const void* q,
              starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) override;

  void synchronize() override {
    select();
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  void set_stream(void* stream) override { stream_ = static_cast<cudaStream_t>(stream); }

 private:
  void select() const { cuda_check(cudaSetDevice(device_), "cudaSetDevice"); }

  void encode(const CudaPoolStorage& s, const DeviceLayer& d,
              const std::vector<AppendTarget>& targets, const void* latents, starkv_dtype dtype,
              int32_t slices, bool after_projection) {
    const int32_t n = static_cast<int32_t>(targets.size());
    if (n == 0) return;
    // host_targets_ keeps its capacity: no allocation per decode step.
    std::vector<int2>& host = host_targets_;
    host.resize(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) host[i] = int2{targets[i].page, targets[i].slot};
    // A decode step's few targets travel in the launch's parameters; more go through target_buf_
    // (from pageable memory the copy is staged before the call returns, so `host` may be reused).
    const int2* device_targets = nullptr;
    if (n > kernels::kInlineTargets) {
      target_buf_.reserve(host.size() * sizeof(int2));
      cuda_check(cudaMemcpyAsync(target_buf_.get(), host.data(), host.size() * sizeof(int2),
                                 cudaMemcpyHostToDevice, stream_),
                 "cudaMemcpyAsync (targets)");
      device_targets = target_buf_.get<int2>();
    }
    // After the projection kernel the encode launches as its programmatic dependent, unless a
    // copy of the targets (n > kInlineTargets) sits between them on the stream.
    cuda_check(kernels::launch_encode_rows(d.view, s.page_tokens, n, latents, dtype, slices,
                                           host.data(), device_targets,
                                           after_projection && device_targets == nullptr, stream_),
               "encode_rows");
    // The next append reuses target_buf_; a pageable copy above already ordered on the stream.
  }

  void project_with_cublas(const DeviceLayer& d, int32_t kv_width, int32_t n, const float* k32,
                           const float* v32, float* lat) {
    if (cublas_ == nullptr) {
      cublas_check(cublasCreate(&cublas_), "cublasCreate");
    }
    cublas_check(cublasSetStream(cublas_, stream_), "cublasSetStream");
    const float one = 1.0f, zero = 0.0f;
    for (const kernels::DevGroup& g : d.host_groups) {
      if (g.rank == 0) continue;
      // Row-major lat[n x W] (cols lat_off..) = X[n x in] * down[in x rank]; in column-major terms
      // lat^T = down^T * X^T with down^T [rank x in] (ld rank) and X^T [in x n] (ld kv_width).
      const float* x = (g.is_value ? v32 : k32) + g.in_offset;
      cublas_check(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, g.rank, n, g.in_dim, &one,
                               d.view.down + g.down_off, g.rank, x, kv_width, &zero,
                               lat + g.lat_off, d.view.latent_width),
                   "cublasSgemm (projection)");
    }
  }

  // CTAs of a split-mode kernel that fit on one SM: both kernels are built for two
  // (__launch_bounds__(256, 2): up to 128 registers), so shared memory decides between 2 and 1.
  int split_ctas_per_sm(size_t smem) const {
    const size_t per_cta = smem + static_cast<size_t>(reserved_smem_);
    return per_cta * 2 <= static_cast<size_t>(sm_smem_) ? 2 : 1;
  }

  // A fold layer's launch shape for the wave-filling split: the fold and value kernels run their
  // CTAs in rounds of CTAs-per-SM x SMs (core/split_planning.h).
  SplitLayerShape split_shape(const DeviceLayer& layer, const kernels::ModelView& model,
                              size_t fold_smem) const {
    const int64_t sms = std::max(1, n_sms_);
    SplitLayerShape sh;
    sh.fold_slots = sms * split_ctas_per_sm(fold_smem);
    sh.fold_ctas_per_item = layer.fold_view.n_chunks;
    sh.value_slots =
        sms * split_ctas_per_sm(kernels::split_values_smem_bytes(layer.values_view, model));
    sh.value_ctas_per_item = layer.values_view.n_value_blocks;
    return sh;
  }

  int32_t device_;
  cudaStream_t stream_;
  int n_sms_ = 0;
  int max_smem_ = 0;
  int sm_smem_ = 0;        // shared memory per SM
  int reserved_smem_ = 0;  // shared memory the driver reserves per CTA
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer scratch_, target_buf_;
  std::vector<int2> host_targets_;  // encode()'s (page, slot) pairs, reused
};

std::unique_ptr<BackendPlan> CudaBackend::plan(const Profile& profile, const PoolStorage& storage,
                                               const std::vector<AttendQuery>& queries) {
  select();
  const auto& s = static_cast<const CudaPoolStorage&>(storage);
  auto p = std::make_unique<CudaPlan>();
  const int32_t nq = static_cast<int32_t>(queries.size());
  const int32_t pt = s.page_tokens;

  // Split-K: about four CTAs per SM over the batch, splits a multiple of the 32-token tile.
  int64_t total_tokens = 0;
  for (const AttendQuery& q : queries) total_tokens += q.kv_length;
  bool any_fold = false, any_low_rank = false, any_dense = false;
  for (const auto& layer : s.layers) {
    any_fold = any_fold || layer->use_fold;
    any_low_rank = any_low_rank || !layer->use_dense;
    any_dense = any_dense || layer->use_dense;
  }
  const int64_t target_ctas = (any_fold ? 8LL : 4LL) * std::max(1, n_sms_);
  // Work items are shared by all layers: size them for the score pass with the most chunks (the
  // fold kernel and the fused kernel use the 8-head chunks, the old score kernel wider ones).
  int64_t chunks = 1;
  for (const auto& layer : s.layers) {
    if (layer->use_dense) continue;
    chunks = std::max<int64_t>(chunks, layer->use_split && !layer->use_fold
                                           ? s.model.n_score_chunks
                                           : s.model.n_chunks);
  }
  int64_t split = (total_tokens * chunks + target_ctas - 1) / target_ctas;
  if (!any_low_rank) {
    // Dense layers only (one block per item and KV head): about kDenseCtasPerSm blocks per SM.
    // With low-rank layers the items are sized for those; the dense kernel then gets more,
    // smaller blocks, which it handles as well.
    const int64_t dense_ctas = kDenseCtasPerSm * std::max(1, n_sms_);
    split = (total_tokens * profile.shape.n_kv_heads + dense_ctas - 1) / dense_ctas;
  }
  split = std::max<int64_t>(split, 64);
  // Even items: the longest query in k equal pieces, each a multiple of 64 tokens (the fold score
  // kernel's tile; also a multiple of the 32-token tile of the other kernels).
  int64_t longest = 1;
  for (const AttendQuery& q : queries) longest = std::max<int64_t>(longest, q.kv_length);
  const int64_t pieces = (longest + split - 1) / split;
  split = (longest + pieces - 1) / pieces;
  split = (split + 63) / 64 * 64;
  if (!s.split_shapes.empty()) {
    std::vector<int64_t> lengths;
    lengths.reserve(queries.size());
    for (const AttendQuery& q : queries) lengths.push_back(q.kv_length);
    split = wave_filling_split(s.split_shapes, lengths, pieces, split);
  }
  // STARKV_SPLIT_TOKENS=N: items of N tokens (rounded up to 64, at most the longest query)
  // instead of the planner's choice, to measure that choice against the others
  // (bench/RESULTS.md).
  static const int64_t forced_split = [] {
    const char* e = std::getenv("STARKV_SPLIT_TOKENS");
    return e != nullptr ? std::max<int64_t>(0, std::atoll(e)) : 0;
  }();
  if (forced_split > 0) split = (std::min(forced_split, longest) + 63) / 64 * 64;

  std::vector<kernels::WorkItem> items;
  std::vector<int2> query_items(static_cast<size_t>(nq));
  std::vector<int32_t> offsets(static_cast<size_t>(nq));
  std::vector<int32_t> pages;
  for (int32_t i = 0; i < nq; ++i) {
    const AttendQuery& q = queries[static_cast<size_t>(i)];
    offsets[static_cast<size_t>(i)] = static_cast<int32_t>(pages.size());
    const int32_t needed = (q.kv_length + pt - 1) / pt;
    pages.insert(pages.end(), q.pages, q.pages + std::min(needed, q.n_pages));
    const int32_t first = static_cast<int32_t>(items.size());
    for (int64_t start = 0; start < q.kv_length; start += split) {
      items.push_back(kernels::WorkItem{
          i, static_cast<int32_t>(start),
          static_cast<int32_t>(std::min<int64_t>(q.kv_length, start + split)), 0});
    }
    query_items[static_cast<size_t>(i)] = int2{first, static_cast<int32_t>(items.size()) - first};
    p->kv_lengths.push_back(q.kv_length);
    p->seq_ids.push_back(q.seq_id);
  }
  if (pages.empty()) pages.push_back(0);

  const size_t n_items_real = items.size();
  int32_t slots = 1;
  for (const auto& layer : s.layers) {
    if (!layer->use_dense) slots = std::max(slots, layer->view.slots_per_item);
  }
  const size_t n_items = std::max<size_t>(1, items.size());
  if (items.empty()) items.resize(1);
  p->items = upload(items, stream_);
  p->page_offsets = upload(offsets, stream_);
  p->pages = upload(pages, stream_);
  p->query_items = upload(query_items, stream_);
  // The fused kernel's accumulators, when a low-rank layer may use it (a pool of dense layers only
  // needs none).
  p->acc.reset(any_low_rank ? n_items * static_cast<size_t>(slots) * kernels::kAttnValueChannels *
                                  kernels::kAttnHeadsPerCta * sizeof(float)
                            : 0);
  p->stats.reset(n_items * static_cast<size_t>(profile.shape.n_heads) * 2 * sizeof(float));
  if (any_dense) {
    p->dense_acc.reset(n_items * static_cast<size_t>(profile.shape.n_heads) *
                       static_cast<size_t>(profile.shape.head_dim) * sizeof(float));
  }

  // Split-mode buffers, when a layer uses it.
  bool split_mode = false;
  int32_t value_width = 1;
  for (const auto& layer : s.layers) {
    if (layer->use_dense) continue;
    split_mode = split_mode || layer->use_split;
    value_width = std::max(value_width, layer->view.value_width);
  }
  const int32_t H = profile.shape.n_heads;
  const int32_t heads_padded = kernels::padded_heads(H);
  const int32_t tiles =
      static_cast<int32_t>((split + kernels::kAttnTileTokens - 1) / kernels::kAttnTileTokens);
  if (split_mode) {
    p->probs.reset(n_items * static_cast<size_t>(tiles) * static_cast<size_t>(H) *
                   kernels::kAttnTileTokens * sizeof(__half));
    p->tile_max.reset(n_items * static_cast<size_t>(tiles) * static_cast<size_t>(H) *
                      sizeof(float));
    p->vacc.reset(n_items * static_cast<size_t>(value_width) * static_cast<size_t>(heads_padded) *
                  sizeof(float));
  }

  kernels::AttendBatch& b = p->batch;
  b.tiles_per_item = tiles;
  b.heads_padded = heads_padded;
  b.probs = p->probs.get<__half>();
  b.tile_max = p->tile_max.get<float>();
  b.vacc = p->vacc.get<float>();
  b.n_queries = nq;
  b.n_items = static_cast<int32_t>(n_items_real);
  b.items = p->items.get<kernels::WorkItem>();
  b.page_offsets = p->page_offsets.get<int32_t>();
  b.pages = p->pages.get<int32_t>();
  b.query_items = p->query_items.get<int2>();
  b.max_query_items = 0;
  for (const int2& qi : query_items) b.max_query_items = std::max(b.max_query_items, qi.y);
  b.acc = p->acc.get<float>();
  b.stats = p->stats.get<float>();
  b.dense_acc = p->dense_acc.get<float>();
  b.items_paired = 1;
  for (size_t i = 0; i + 1 < n_items_real; i += 2) {
    if (items[i].query != items[i + 1].query) b.items_paired = 0;
  }
  return p;
}

void CudaBackend::attend(const Profile& profile, const PoolStorage& storage, int32_t layer,
                         const std::vector<AttendQuery>& queries, BackendPlan* plan, const void* q,
                         starkv_dtype q_dtype, void* out, starkv_dtype out_dtype) {
  select();
  const auto& s = static_cast<const CudaPoolStorage&>(storage);
  auto* p = dynamic_cast<CudaPlan*>(plan);
  std::unique_ptr<BackendPlan> own;
  bool matches = p != nullptr && p->kv_lengths.size() == queries.size();
  for (size_t i = 0; matches && i < queries.size(); ++i) {
    matches = p->kv_lengths[i] == queries[i].kv_length && p->seq_ids[i] == queries[i].seq_id;
  }
  if (!matches) {  // no plan, or one made for another batch: plan now (allocates; not capturable)
    own = this->plan(profile, storage, queries);
    p = static_cast<CudaPlan*>(own.get());
  }
  const DeviceLayer& d = *s.layers[static_cast<size_t>(layer)];
  if (d.use_dense) {
    cuda_check(kernels::launch_dense_layer_attention(d.dense_view, s.model.view, p->batch, q,
                                                     q_dtype, out, out_dtype, stream_),
               "dense_layer_attention");
    if (own) cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (temporary plan)");
    return;
  }
  if (d.use_fold) {
    cuda_check(kernels::launch_fold_split_attention(d.fold_view, d.values_view, s.model.view,
                                                    p->batch, q, q_dtype, out, out_dtype, stream_),
               "fold_split_attention");
    if (own) cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (temporary plan)");
    return;
  }
  if (d.use_split) {
    cuda_check(kernels::launch_split_attention(d.scores_view, d.values_view, s.model.view, p->batch,
                                               q, q_dtype, out, out_dtype, stream_),
               "split_attention");
    if (own) cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (temporary plan)");
    return;
  }
  cuda_check(kernels::launch_decode_attention(d.view, s.model.view, p->batch, q, q_dtype, stream_),
             "decode_attention");
  cuda_check(
      kernels::launch_combine_splits(d.view, s.model.view, p->batch, out, out_dtype, stream_),
      "combine_splits");
  if (own) {
    // The temporary plan's buffers must outlive the kernels that read them.
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (temporary plan)");
  }
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int32_t device, void* stream) {
  return std::make_unique<CudaBackend>(device, stream);
}

bool cuda_backend_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

}  // namespace starkv
