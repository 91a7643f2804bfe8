// Append: project new tokens onto latents and encode them into their page rows.
//
// project_latents_kernel  grid (32-channel tiles of the factor groups, ceil(n / 8)), 256 threads.
//   Lane = latent channel (coalesced rows of the group's down matrix), 8 tokens per thread; the
//   8 warps split the group's input rows and their partial sums are added in warp order through
//   shared memory (deterministic; equal to the CPU's sum up to fp32 rounding). Reads: down once per
//   8 tokens, the tokens' f32 inputs as warp-wide broadcasts; writes: f32 latents [n, W].
// encode_rows_kernel      grid n (one CTA per token), 256 threads. Stages the token's latents
//   (f32) and its output row in shared memory; warp w quantizes blocks w, w+8, ...: warp-reduced
//   absmax, the fp16 scale, one code per channel; then every thread assembles whole bytes of the
//   bit streams (one writer per byte), and the row goes out as 16-byte stores. Reads: latents
//   [W]; writes: one row (row_bytes, zero padded) per token.
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

__global__ void to_float_kernel(const void* __restrict__ src, int dtype, int64_t n,
                                float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = load_elem(src, dtype, i);
  }
}

__global__ void __launch_bounds__(kProjectThreads)
    project_latents_kernel(LayerView layer, int32_t kv_width, int32_t n,
                           const float* __restrict__ keys, const float* __restrict__ values,
                           float* __restrict__ latents) {
  __shared__ float partial[kProjectWarps][kProjectTokens][32];
  const int2 tile = layer.proj_tiles[blockIdx.x];
  const DevGroup g = layer.groups[tile.x];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = tile.y + lane;
  const bool active = r < g.rank;
  const float* __restrict__ x = g.is_value ? values : keys;
  const float* __restrict__ w = layer.down + g.down_off + (active ? r : 0);
  const int t0 = blockIdx.y * kProjectTokens;
  // Warp `warp` sums input rows [i0, i1) of the group; the slices are added in warp order.
  const int per = (g.in_dim + kProjectWarps - 1) / kProjectWarps;
  const int i0 = warp * per, i1 = min(g.in_dim, i0 + per);
  float acc[kProjectTokens];
#pragma unroll
  for (int t = 0; t < kProjectTokens; ++t) acc[t] = 0.0f;
#pragma unroll 4
  for (int i = i0; i < i1; ++i) {
    const float wi = active ? __ldg(w + static_cast<int64_t>(i) * g.rank) : 0.0f;
#pragma unroll
    for (int t = 0; t < kProjectTokens; ++t) {
      if (t0 + t < n) acc[t] += x[static_cast<int64_t>(t0 + t) * kv_width + g.in_offset + i] * wi;
    }
  }
#pragma unroll
  for (int t = 0; t < kProjectTokens; ++t) partial[warp][t][lane] = acc[t];
  __syncthreads();
  for (int e = threadIdx.x; e < kProjectTokens * 32; e += kProjectThreads) {
    const int t = e / 32, l = e % 32;
    if (t0 + t < n && tile.y + l < g.rank) {
      float sum = 0.0f;
      for (int k = 0; k < kProjectWarps; ++k) sum += partial[k][t][l];
      latents[static_cast<int64_t>(t0 + t) * layer.latent_width + g.lat_off + tile.y + l] = sum;
    }
  }
}

__global__ void __launch_bounds__(kEncodeThreads)
    encode_rows_kernel(LayerView layer, int32_t page_tokens, const void* __restrict__ latents,
                       int dtype, const int2* __restrict__ targets) {
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
    lat[c] = load_elem(latents, dtype, static_cast<int64_t>(token) * W + c);
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

  const int2 t = targets[token];
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

cudaError_t launch_project_latents(const LayerView& layer, int32_t kv_width, int32_t n,
                                   const void* keys, const void* values, int dtype, float* latents,
                                   cudaStream_t stream) {
  (void)dtype;  // inputs are f32 here (converted by launch_to_float first)
  if (n <= 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(layer.n_proj_tiles),
                  static_cast<unsigned>((n + kProjectTokens - 1) / kProjectTokens));
  project_latents_kernel<<<grid, kProjectThreads, 0, stream>>>(
      layer, kv_width, n, static_cast<const float*>(keys), static_cast<const float*>(values),
      latents);
  return cudaGetLastError();
}

cudaError_t launch_encode_rows(const LayerView& layer, int32_t page_tokens, int32_t n,
                               const void* latents, int dtype, const int2* targets,
                               cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const size_t smem =
      static_cast<size_t>(layer.row_bytes) + static_cast<size_t>(layer.latent_width) * 5 + 16;
  encode_rows_kernel<<<static_cast<unsigned>(n), kEncodeThreads, smem, stream>>>(
      layer, page_tokens, latents, dtype, targets);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace starkv
