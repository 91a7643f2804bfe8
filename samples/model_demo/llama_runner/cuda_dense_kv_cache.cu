#include "cuda_dense_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cuda_rope.cuh"

namespace llama_runner {
namespace {

constexpr int kMaxGroup = 8;      // query heads per KV head the attention kernel supports
constexpr int kMaxChunk = 512;    // tokens per work item (the scores live in shared memory)
constexpr int kWarps = 4;
constexpr int kPartialExtra = 2;  // running max and sum after the D accumulators

// Stores n rows' keys (rotated) and values into their sequences' slabs. One block per row.
__global__ void dense_append_kernel(const float* k, const float* v, const int32_t* seq_ids,
                                    const int32_t* positions, int n_kv_heads, int head_dim,
                                    int64_t capacity, int64_t layer_offset, RopeTables rope,
                                    __half* keys, __half* values) {
  const int t = blockIdx.x;
  const int width = n_kv_heads * head_dim;
  const int pos = positions[t];
  const int64_t slab = layer_offset + int64_t(seq_ids[t]) * n_kv_heads * capacity * head_dim;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    const int g = i / head_dim, j = i - g * head_dim;
    const int64_t at = slab + (int64_t(g) * capacity + pos) * head_dim + j;
    keys[at] = __float2half(rope_element(k + int64_t(t) * width + g * head_dim, j, pos, rope));
    values[at] = __float2half(v[int64_t(t) * width + i]);
  }
}

__device__ inline void load8(const __half* p, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// One work item: KV head g of row `row`, tokens [begin, end). Lanes are grouped D/8 per token,
// each lane holding 8 dimensions; a warp covers 32/(D/8) tokens per pass. Writes the item's
// unnormalized output, max and sum for each of its q_per_kv heads.
template <int D>
__global__ void __launch_bounds__(kWarps * 32)
dense_attention_kernel(const int32_t* items, const int32_t* seq_ids, const __half* q,
                       const __half* keys, const __half* values, int n_heads, int n_kv_heads,
                       int64_t capacity, int64_t layer_offset, float scale, float* partial) {
  constexpr int kLanesPerToken = D / 8;
  constexpr int kTokensPerPass = 32 / kLanesPerToken;
  __shared__ float scores[kMaxGroup][kMaxChunk];
  __shared__ float head_max[kMaxGroup], head_sum[kMaxGroup];
  __shared__ float reduce[kWarps][kMaxGroup][D];

  const int item = blockIdx.x;
  const int row = items[4 * item], g = items[4 * item + 1];
  const int begin = items[4 * item + 2], end = items[4 * item + 3];
  const int qpk = n_heads / n_kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / kLanesPerToken, part = lane % kLanesPerToken;
  const int64_t slab = layer_offset +
                       (int64_t(seq_ids[row]) * n_kv_heads + g) * capacity * D;
  const __half* k_base = keys + slab + part * 8;
  const __half* v_base = values + slab + part * 8;

  float qr[kMaxGroup][8];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h < qpk) {
      load8(q + (int64_t(row) * n_heads + g * qpk + h) * D + part * 8, qr[h]);
#pragma unroll
      for (int j = 0; j < 8; ++j) qr[h][j] *= scale;
    }
  }

  // Scores, two passes per iteration so each lane has two 16-byte loads in flight. The loop
  // bound is uniform across the warp, so the shuffles see every lane.
  constexpr int kStride = kWarps * kTokensPerPass;
  for (int base = begin + warp * kTokensPerPass; base < end; base += 2 * kStride) {
    float kv[2][8];
    bool valid[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int t = base + u * kStride + sub;
      valid[u] = t < end;
      if (valid[u]) load8(k_base + int64_t(t) * D, kv[u]);
    }
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int t = base + u * kStride + sub;
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        if (h >= qpk) break;
        float s = 0.0f;
        if (valid[u]) {
#pragma unroll
          for (int j = 0; j < 8; ++j) s += qr[h][j] * kv[u][j];
        }
#pragma unroll
        for (int o = kLanesPerToken / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (valid[u] && part == 0) scores[h][t - begin] = s;
      }
    }
  }
  __syncthreads();

  // The chunk's softmax, one warp per head: max, exp in place, sum.
  const int len = end - begin;
  for (int h = warp; h < qpk; h += kWarps) {
    float m = -INFINITY;
    for (int i = lane; i < len; i += 32) m = fmaxf(m, scores[h][i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.0f;
    for (int i = lane; i < len; i += 32) {
      const float p = __expf(scores[h][i] - m);
      scores[h][i] = p;
      sum += p;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) {
      head_max[h] = m;
      head_sum[h] = sum;
    }
  }
  __syncthreads();

  // Weighted values: each lane accumulates its 8 dimensions for every head.
  float acc[kMaxGroup][8];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[h][j] = 0.0f;
  for (int t = begin + warp * kTokensPerPass + sub; t < end; t += 2 * kStride) {
    float vv[2][8];
    const bool second = t + kStride < end;
    load8(v_base + int64_t(t) * D, vv[0]);
    if (second) load8(v_base + int64_t(t + kStride) * D, vv[1]);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      if (u == 1 && !second) break;
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        if (h >= qpk) break;
        const float p = scores[h][t + u * kStride - begin];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[h][j] += p * vv[u][j];
      }
    }
  }
  // Sum the lanes that hold the same dimensions (same `part`), then the warps.
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h >= qpk) break;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      float a = acc[h][j];
#pragma unroll
      for (int o = kLanesPerToken; o < 32; o <<= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
      if (sub == 0) reduce[warp][h][part * 8 + j] = a;
    }
  }
  __syncthreads();
  float* out = partial + int64_t(item) * qpk * (D + kPartialExtra);
  for (int i = threadIdx.x; i < qpk * D; i += blockDim.x) {
    const int h = i / D, d = i - h * D;
    float a = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) a += reduce[w][h][d];
    out[h * (D + kPartialExtra) + d] = a;
  }
  if (threadIdx.x < qpk) {
    out[threadIdx.x * (D + kPartialExtra) + D] = head_max[threadIdx.x];
    out[threadIdx.x * (D + kPartialExtra) + D + 1] = head_sum[threadIdx.x];
  }
}

// Merges a row's chunks for one query head: blockIdx.x = row, blockIdx.y = head, D threads.
__global__ void dense_combine_kernel(const int32_t* row_info, const float* partial, int n_heads,
                                     int n_kv_heads, int head_dim, __half* out) {
  const int row = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  const int qpk = n_heads / n_kv_heads, g = h / qpk, j = h - g * qpk;
  const int first = row_info[2 * row], chunks = row_info[2 * row + 1];
  const int stride = qpk * (head_dim + kPartialExtra);
  const float* p = partial + int64_t(first + g * chunks) * stride + j * (head_dim + kPartialExtra);
  float m = -INFINITY;
  for (int c = 0; c < chunks; ++c) m = fmaxf(m, p[int64_t(c) * stride + head_dim]);
  float sum = 0.0f, acc = 0.0f;
  for (int c = 0; c < chunks; ++c) {
    const float* pc = p + int64_t(c) * stride;
    const float w = __expf(pc[head_dim] - m);
    sum += w * pc[head_dim + 1];
    acc += w * pc[d];
  }
  out[(int64_t(row) * n_heads + h) * head_dim + d] = __float2half(acc / sum);
}

}  // namespace

CudaDenseKvCache::CudaDenseKvCache(const ModelConfig& cfg, const RopeTables& rope,
                                   int max_sequences, int64_t capacity_tokens,
                                   cudaStream_t stream)
    : n_layers_(cfg.n_layers), n_heads_(cfg.n_heads), n_kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim), max_sequences_(max_sequences), capacity_(capacity_tokens),
      rope_(rope), stream_(stream) {
  if (head_dim_ != 64 && head_dim_ != 128)
    throw std::runtime_error("the dense CUDA cache supports head_dim 64 and 128, not " +
                             std::to_string(head_dim_));
  if (cfg.q_per_kv() > kMaxGroup)
    throw std::runtime_error("the dense CUDA cache supports up to 8 query heads per KV head");
  if (max_sequences < 1 || capacity_tokens < 1)
    throw std::runtime_error("the dense CUDA cache needs at least one sequence and one token");
  const size_t elements = size_t(n_layers_) * size_t(layer_elements());
  keys_.resize(elements);
  values_.resize(elements);
  length_.assign(size_t(max_sequences_), -1);
}

size_t CudaDenseKvCache::bytes_per_sequence(const ModelConfig& cfg, int64_t capacity_tokens) {
  return size_t(2) * sizeof(__half) * size_t(cfg.n_layers) * size_t(cfg.n_kv_heads) *
         size_t(cfg.head_dim) * size_t(capacity_tokens);
}

int32_t CudaDenseKvCache::create_sequence() {
  for (int s = 0; s < max_sequences_; ++s) {
    if (length_[size_t(s)] < 0) {
      length_[size_t(s)] = 0;
      return s;
    }
  }
  throw std::runtime_error("the dense CUDA cache has no free sequence slot");
}

void CudaDenseKvCache::release_sequence(int32_t seq) {
  if (seq < 0 || seq >= max_sequences_ || length_[size_t(seq)] < 0)
    throw std::runtime_error("release of an unknown sequence");
  length_[size_t(seq)] = -1;
}

void CudaDenseKvCache::plan(const CudaRowBatch& rows) {
  // Chunk so that there are about four work items per SM over the whole batch (more would only
  // add combine work), within [64, kMaxChunk] tokens.
  static int n_sms = [] {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms > 0 ? sms : 100;
  }();
  int64_t total = 0;
  for (int i = 0; i < rows.n; ++i) {
    const int32_t seq = rows.seq_ids[i];
    if (seq < 0 || seq >= max_sequences_ || length_[size_t(seq)] < 0)
      throw std::runtime_error("attention row names an unknown sequence");
    if (rows.kv_lengths[i] < 1 || rows.kv_lengths[i] > capacity_)
      throw std::runtime_error("attention row length outside the slab");
    total += rows.kv_lengths[i];
  }
  const int64_t target_items = 4LL * n_sms;
  int64_t chunk = (total * n_kv_heads_ + target_items - 1) / target_items;
  chunk = std::clamp<int64_t>((chunk + 63) / 64 * 64, 64, kMaxChunk);

  item_host_.clear();
  row_host_.assign(size_t(2) * rows.n, 0);
  for (int i = 0; i < rows.n; ++i) {
    const int len = rows.kv_lengths[i];
    const int chunks = int((len + chunk - 1) / chunk);
    row_host_[2 * size_t(i)] = int32_t(item_host_.size() / 4);
    row_host_[2 * size_t(i) + 1] = chunks;
    for (int g = 0; g < n_kv_heads_; ++g) {
      for (int c = 0; c < chunks; ++c) {
        const int b = int(c * chunk), e = int(std::min<int64_t>(len, (c + 1) * chunk));
        item_host_.insert(item_host_.end(), {i, g, b, e});
      }
    }
  }
  planned_rows_ = rows.n;
  planned_items_ = int(item_host_.size() / 4);
  items_.upload(item_host_, stream_);
  row_info_.upload(row_host_, stream_);
  partial_.resize(size_t(planned_items_) * size_t(n_heads_ / n_kv_heads_) *
                  size_t(head_dim_ + kPartialExtra));
}

void CudaDenseKvCache::append(int layer, const CudaRowBatch& rows, const float* k_pre_rope,
                              const float* v) {
  for (int i = 0; i < rows.n; ++i) {
    const int32_t seq = rows.seq_ids[i];
    if (seq < 0 || seq >= max_sequences_ || length_[size_t(seq)] < 0)
      throw std::runtime_error("append to an unknown sequence");
    if (rows.positions[i] < 0 || rows.positions[i] >= capacity_)
      throw std::runtime_error("append past the dense cache's capacity of " +
                               std::to_string(capacity_) + " tokens");
    if (rows.positions[i] >= rope_.positions)
      throw std::runtime_error("position beyond the RoPE table");
  }
  const int64_t layer_offset = layer_elements() * layer;
  if (rows.n > 0)
    dense_append_kernel<<<rows.n, 128, 0, stream_>>>(k_pre_rope, v, rows.seq_ids_dev,
                                                     rows.positions_dev, n_kv_heads_, head_dim_,
                                                     capacity_, layer_offset, rope_, keys_.data(),
                                                     values_.data());
  cuda_check(cudaGetLastError(), "dense_append_kernel");
  if (layer == 0) {
    for (int i = 0; i < rows.n; ++i) {
      int64_t& len = length_[size_t(rows.seq_ids[i])];
      len = std::max<int64_t>(len, int64_t(rows.positions[i]) + 1);
    }
  }
}

void CudaDenseKvCache::attend(int layer, const CudaRowBatch& rows, const __half* q, __half* out) {
  if (rows.n != planned_rows_) throw std::runtime_error("attend without a matching plan");
  const int64_t layer_offset = layer_elements() * layer;
  const float scale = 1.0f / std::sqrt(float(head_dim_));
  if (planned_items_ == 0) return;
  if (head_dim_ == 64) {
    dense_attention_kernel<64><<<planned_items_, kWarps * 32, 0, stream_>>>(
        items_.data(), rows.seq_ids_dev, q, keys_.data(), values_.data(), n_heads_, n_kv_heads_,
        capacity_, layer_offset, scale, partial_.data());
  } else {
    dense_attention_kernel<128><<<planned_items_, kWarps * 32, 0, stream_>>>(
        items_.data(), rows.seq_ids_dev, q, keys_.data(), values_.data(), n_heads_, n_kv_heads_,
        capacity_, layer_offset, scale, partial_.data());
  }
  cuda_check(cudaGetLastError(), "dense_attention_kernel");
  dense_combine_kernel<<<dim3(unsigned(rows.n), unsigned(n_heads_)), head_dim_, 0, stream_>>>(
      row_info_.data(), partial_.data(), n_heads_, n_kv_heads_, head_dim_, out);
  cuda_check(cudaGetLastError(), "dense_combine_kernel");
}

size_t CudaDenseKvCache::bytes_per_token() const {
  return size_t(2) * sizeof(__half) * size_t(n_layers_) * size_t(n_kv_heads_) * size_t(head_dim_);
}

size_t CudaDenseKvCache::bytes_allocated() const { return keys_.bytes() + values_.bytes(); }

size_t CudaDenseKvCache::bytes_in_use() const {
  int64_t tokens = 0;
  for (int64_t len : length_) tokens += std::max<int64_t>(len, 0);
  return size_t(tokens) * bytes_per_token();
}

std::string CudaDenseKvCache::describe() const {
  char text[160];
  std::snprintf(text, sizeof text, "dense fp16 on CUDA (%d slots x %lld tokens)", max_sequences_,
                (long long)capacity_);
  return text;
}

}  // namespace llama_runner
