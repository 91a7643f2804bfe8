// Append: project new tokens onto latents and encode them into their page rows.
//
// project_latents_kernel  grid (32-channel tiles of the factor groups, ceil(n / 8), slices),
//   256 threads. Lane = latent channel (coalesced rows of the group's down matrix), 8 tokens per
//   thread; slice z takes a contiguous part of the group's input rows, and its 8 warps split that
//   part, their partial sums added in warp order through shared memory (deterministic; equal to
//   the CPU's sum up to fp32 rounding). Reads: down once per 8 tokens, the tokens' inputs (any
//   dtype) as warp-wide broadcasts; writes: the slice's f32 partial latents [n, W].
// encode_rows_kernel      grid n (one CTA per token), 256 threads. Stages the token's latents
//   (f32, the slices' partial sums added in slice order) and its output row in shared memory;
//   warp w quantizes blocks w, w+8, ...: warp-reduced absmax, the fp16 scale, one code per
//   channel; then every thread assembles whole bytes of the bit streams (one writer per byte),
//   and the row goes out as 16-byte stores. Reads: latents [W] per slice; writes: one row
//   (row_bytes, zero padded) per token.
#include <cstdint>

#include "kernels/dtype_io.cuh"
#include "kernels/kernel_api.h"
#include "kernels/latent_codec.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kProjectThreads = 256;
constexpr int kProjectWarps = kProjectThreads / 32;
constexpr int kProjectTokens = 8;
constexpr int kEncodeThreads = 256;
constexpr int kMaxProjectSlices = 16;  // project_slices' cap; the encode unrolls its sum to it

__global__ void to_float_kernel(const void* __restrict__ src, int dtype, int64_t n,
                                float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = load_elem(src, dtype, i);
  }
}

// DT: the inputs' starkv_dtype as a template argument, so that load_elem's dtype branches fold
// away and the inner loop's unrolled loads issue together.
template <int DT>
__global__ void __launch_bounds__(kProjectThreads)
    project_latents_kernel(LayerView layer, int32_t kv_width, int32_t n,
                           const void* __restrict__ keys, const void* __restrict__ values,
                           float* __restrict__ latents) {
  __shared__ float partial[kProjectWarps][kProjectTokens][32];
  const int2 tile = layer.proj_tiles[blockIdx.x];
  const DevGroup g = layer.groups[tile.x];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = tile.y + lane;
  const bool active = r < g.rank;
  const void* __restrict__ x = g.is_value ? values : keys;
  const float* __restrict__ w = layer.down + g.down_off + (active ? r : 0);
  const int t0 = blockIdx.y * kProjectTokens;
  // This slice's input rows [s0, s1); warp `warp` sums [i0, i1) of them, added in warp order.
  // A slice past the group's rows (small in_dim) writes zeros: the encode adds every slice.
  const int per_slice = (g.in_dim + static_cast<int>(gridDim.z) - 1) / static_cast<int>(gridDim.z);
  const int s0 = static_cast<int>(blockIdx.z) * per_slice;
  const int s1 = min(g.in_dim, s0 + per_slice);
  const int per = (max(s1 - s0, 0) + kProjectWarps - 1) / kProjectWarps;
  const int i0 = s0 + warp * per, i1 = min(s1, i0 + per);
  float acc[kProjectTokens];
#pragma unroll
  for (int t = 0; t < kProjectTokens; ++t) acc[t] = 0.0f;
#pragma unroll 4
  for (int i = i0; i < i1; ++i) {
    const float wi = active ? __ldg(w + static_cast<int64_t>(i) * g.rank) : 0.0f;
#pragma unroll
    for (int t = 0; t < kProjectTokens; ++t) {
      if (t0 + t < n)
        acc[t] += load_elem(x, DT, static_cast<int64_t>(t0 + t) * kv_width + g.in_offset + i) * wi;
    }
  }
#pragma unroll
  for (int t = 0; t < kProjectTokens; ++t) partial[warp][t][lane] = acc[t];
  __syncthreads();
  float* out = latents + static_cast<int64_t>(blockIdx.z) * n * layer.latent_width;
  for (int e = threadIdx.x; e < kProjectTokens * 32; e += kProjectThreads) {
    const int t = e / 32, l = e % 32;
    if (t0 + t < n && tile.y + l < g.rank) {
      float sum = 0.0f;
      for (int k = 0; k < kProjectWarps; ++k) sum += partial[k][t][l];
      out[static_cast<int64_t>(t0 + t) * layer.latent_width + g.lat_off + tile.y + l] = sum;
    }
  }
}

// Up to kInlineTargets (page, slot) pairs passed by value with the launch.
struct InlineTargets {
  int2 t[kInlineTargets];
};

__global__ void __launch_bounds__(kEncodeThreads)
    encode_rows_kernel(LayerView layer, int32_t page_tokens, int32_t n,
                       const void* __restrict__ latents, int dtype, int32_t slices,
                       InlineTargets inline_targets, const int2* __restrict__ targets) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int W = layer.latent_width;
  uint32_t* row_words = reinterpret_cast<uint32_t*>(smem);  // row_bytes
  uint8_t* row = smem;
  float* lat = reinterpret_cast<float*>(smem + layer.row_bytes);  // W floats
  uint8_t* codes = reinterpret_cast<uint8_t*>(lat + W);           // W bytes
  const int token = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  for (int i = tid; i < layer.row_bytes / 4; i += kEncodeThreads) row_words[i] = 0u;
  for (int c = tid; c < W; c += kEncodeThreads) {
    // Unrolled over the most slices there can be, the loads issue together and only the adds
    // (in slice order) wait: a one-token append's encode is a single CTA, and a runtime-bounded
    // loop waited for each of up to 16 slices' loads in turn.
    float v;
    if (slices == 1) {
      v = load_elem(latents, dtype, static_cast<int64_t>(token) * W + c);
    } else {  // f32 partial sums (launch_encode_rows checks the dtype)
      const float* part = static_cast<const float*>(latents) + static_cast<int64_t>(token) * W + c;
      v = 0.0f;
#pragma unroll
      for (int z = 0; z < kMaxProjectSlices; ++z) {
        if (z < slices) v += part[static_cast<int64_t>(z) * n * W];
      }
    }
    lat[c] = v;
  }
  __syncthreads();

  for (int b = warp; b < layer.n_blocks; b += kEncodeThreads / 32) {
    const DevBlock blk = layer.blocks[b];
    const float* x = lat + blk.first_channel;
    if (blk.bits == 16) {  // 2-byte aligned by the layout
      uint16_t* dst = reinterpret_cast<uint16_t*>(row + blk.byte_offset);
      for (int c = lane; c < blk.n_channels; c += 32) dst[c] = fp16_latent_bits(x[c]);
    } else if (blk.bits == 32) {  // 4-byte aligned by the layout
      uint32_t* dst = reinterpret_cast<uint32_t*>(row + blk.byte_offset);
      for (int c = lane; c < blk.n_channels; c += 32) dst[c] = __float_as_uint(x[c]);
    } else {
      float absmax = 0.0f;
      for (int c = lane; c < blk.n_channels; c += 32) absmax = fmaxf(absmax, fabsf(x[c]));
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
        absmax = fmaxf(absmax, __shfl_xor_sync(0xffffffffu, absmax, o));
      const uint16_t sbits = blk.n_channels > 0 ? quant_scale_bits(absmax, blk.bits) : 0;
      if (lane == 0 && blk.scale_offset >= 0) {  // scales sit at even offsets
        *reinterpret_cast<uint16_t*>(row + blk.scale_offset) = sbits;
      }
      const float scale = __half2float(__ushort_as_half(sbits));
      for (int c = lane; c < blk.n_channels; c += 32) {
        codes[blk.first_channel + c] = static_cast<uint8_t>(quant_code(x[c], scale, blk.bits));
      }
    }
  }
  __syncthreads();

  for (int b = 0; b < layer.n_blocks; ++b) {
    const DevBlock blk = layer.blocks[b];
    if (blk.bits == 16 || blk.bits == 32) continue;
    for (int k = tid; k < blk.byte_count; k += kEncodeThreads) {
      row[blk.byte_offset + k] =
          pack_byte(codes + blk.first_channel, blk.n_channels, blk.storage_bits, k);
    }
  }
  __syncthreads();

  const int2 t = n <= kInlineTargets ? inline_targets.t[token] : targets[token];
  uint4* dst = reinterpret_cast<uint4*>(
      layer.rows + (static_cast<int64_t>(t.x) * page_tokens + t.y) * layer.row_bytes);
  const uint4* src = reinterpret_cast<const uint4*>(smem);
  for (int i = tid; i < layer.row_bytes / 16; i += kEncodeThreads) dst[i] = src[i];
}

}  // namespace

cudaError_t configure_attention_kernels(int bytes);  // decode_attention.cu

cudaError_t configure_kernels(int bytes) {
  cudaError_t e =
      cudaFuncSetAttribute(encode_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e == cudaSuccess) e = configure_attention_kernels(bytes);
  return e == cudaSuccess ? configure_dense_layer_attention(bytes) : e;
}

cudaError_t launch_to_float(const void* src, int dtype, int64_t n, float* dst,
                            cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  to_float_kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), threads, 0, stream>>>(
      src, dtype, n, dst);
  return cudaGetLastError();
}

int32_t project_slices(const LayerView& layer, int32_t n, int32_t n_sms) {
  // About four CTAs per SM, at most 16 slices (a narrow group's slices may then hold a few rows,
  // or none: those write zero partial sums).
  const int64_t ctas = static_cast<int64_t>(layer.n_proj_tiles) *
                       ((n + kProjectTokens - 1) / kProjectTokens);
  int64_t slices = (4LL * n_sms + ctas - 1) / (ctas > 0 ? ctas : 1);
  if (slices > kMaxProjectSlices) slices = kMaxProjectSlices;
  return slices < 1 ? 1 : static_cast<int32_t>(slices);
}

cudaError_t launch_project_latents(const LayerView& layer, int32_t kv_width, int32_t n,
                                   const void* keys, const void* values, int dtype, float* latents,
                                   int32_t slices, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (slices < 1) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(layer.n_proj_tiles),
                  static_cast<unsigned>((n + kProjectTokens - 1) / kProjectTokens),
                  static_cast<unsigned>(slices));
  switch (dtype) {
    case 0:
      project_latents_kernel<0><<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys,
                                                                      values, latents);
      break;
    case 1:
      project_latents_kernel<1><<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys,
                                                                      values, latents);
      break;
    case 2:
      project_latents_kernel<2><<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys,
                                                                      values, latents);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_encode_rows(const LayerView& layer, int32_t page_tokens, int32_t n,
                               const void* latents, int dtype, int32_t slices,
                               const int2* host_targets, const int2* device_targets,
                               cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (slices < 1 || slices > kMaxProjectSlices || (slices > 1 && dtype != 0) ||
      (n <= kInlineTargets ? host_targets == nullptr : device_targets == nullptr))
    return cudaErrorInvalidValue;
  InlineTargets inline_targets{};
  if (n <= kInlineTargets) {
    for (int32_t i = 0; i < n; ++i) inline_targets.t[i] = host_targets[i];
  }
  const size_t smem =
      static_cast<size_t>(layer.row_bytes) + static_cast<size_t>(layer.latent_width) * 5 + 16;
  encode_rows_kernel<<<static_cast<unsigned>(n), kEncodeThreads, smem, stream>>>(
      layer, page_tokens, n, latents, dtype, slices, inline_targets, device_targets);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace starkv
