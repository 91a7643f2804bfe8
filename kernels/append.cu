// Append: project new tokens onto latents and encode them into their page rows.
//
// project_latents_kernel  decode-sized appends (any n; the backend sends n <= 64 here). Per
//   factor group this is latents[n][rank] = X[n][in_dim] * down[in_dim][rank] with few tokens: a
//   stream over `down` (20 MB of f32 for a Llama-2-7B-like layer) that must run at memory speed.
//   So every element of `down` is loaded once per 16 tokens (once per call for a decode step's
//   batch), and each thread keeps 16 to 32 independent loads in flight.
//   grid: one CTA per ProjectionItem (kernel_api.h), i.e. a 64-channel tile of a group times a
//     slice of its input rows, sized on the host (device_layer.cpp) for the shortest schedule on
//     two resident CTAs per SM, the largest first.
//   256 threads = 8 warps. Lane l owns the tile's channels l and l + 32: a row of the tile is two
//     coalesced 128-byte loads per warp, and each staged input read feeds both channels. Warp w
//     takes the slice's rows w, w + 8, w + 16, ... in order, 8 of them per batch of loads; the
//     next batch is in flight while the current one is multiplied. A thread accumulates its 2
//     channels x 16 tokens in registers.
//   The inputs of the slice's rows (any dtype, converted to f32) are staged in shared memory as
//     [row][16 tokens] with an 80-byte pitch, up to 512 rows per pass: one 16-byte load, the same
//     address in every lane (a broadcast), gives a warp 4 tokens of a row, and the staging stores
//     (one row of 16 tokens per thread) fall on 8 distinct bank groups per quarter warp. Tokens go
//     in chunks of 16; each further chunk goes over the slice again (its part of `down` then
//     comes from L1/L2).
//   The 8 warps' sums are added in warp order through shared memory (the staging buffer's
//     space): deterministic, and equal to the CPU's sum up to fp32 rounding (summation order).
//   Writes: the slice's f32 partial latents [n][tile channels], plus zeros in the partial-sum
//     buffers past a narrow group's last slice.
// encode_rows_kernel      grid n (one CTA per token), 256 threads. Stages the token's latents
//   (f32, the slices' partial sums added in slice order), the block descriptors and its output
//   row in shared memory; warp w encodes blocks n_blocks - 1 - w, n_blocks - 9 - w, ... (the
//   value groups' wide blocks first): warp-reduced absmax, the fp16 scale, one code per channel,
//   then the block's bytes of the bit stream (one writer per byte); the row goes out as 16-byte
//   stores. Reads: latents [W] per slice; writes: one row (row_bytes, zero padded) per token.
#include <cstdint>
#include <cstdlib>

#include "kernels/dtype_io.cuh"
#include "kernels/kernel_api.h"
#include "kernels/latent_codec.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kProjectThreads = 256;
constexpr int kProjectWarps = kProjectThreads / 32;
constexpr int kLaneChannels = kProjectTileChannels / 32;  // lane, lane + 32
constexpr int kChunkTokens = 16;  // tokens a thread accumulates per pass over the slice
constexpr int kRowsPerBatch = 8;  // rows per warp per batch of weight loads
constexpr int kStageRows = 512;   // input rows staged per pass
constexpr int kStagePitch = kChunkTokens + 4;  // floats per staged row (80 bytes, see above)
constexpr int kWarpSumFloats = kProjectWarps * kChunkTokens * kProjectTileChannels;
constexpr int kProjectSmemFloats =
    kStageRows * kStagePitch > kWarpSumFloats ? kStageRows * kStagePitch : kWarpSumFloats;
static_assert(kProjectTileChannels % 32 == 0, "a tile is whole warps of channels");
static_assert(kChunkTokens % 4 == 0, "staged rows are read 4 tokens at a time");
static_assert(kStageRows % (kProjectWarps * kRowsPerBatch) == 0,
              "the batches of a pass stay inside the staging buffer");
static_assert(kProjectSmemFloats * 4 <= 48 * 1024, "static shared memory");

constexpr int kEncodeThreads = 256;
constexpr int kEncodeWarps = kEncodeThreads / 32;

__global__ void to_float_kernel(const void* __restrict__ src, int dtype, int64_t n,
                                float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = load_elem(src, dtype, i);
  }
}

// Stages input rows [0, rows) of a pass (input column first_input + row) of tokens
// first_token .. first_token + kChunkTokens - 1 as f32 [row][token]; rows up to the next
// multiple of kProjectWarps * kRowsPerBatch and tokens past n are zeros (the batches read them).
template <int DT>
__device__ __forceinline__ void stage_inputs(float* __restrict__ staged, const void* __restrict__ x,
                                             int32_t kv_width, int64_t first_input, int rows,
                                             int first_token, int n) {
  constexpr int kBatchRows = kProjectWarps * kRowsPerBatch;
  const int padded_rows = (rows + kBatchRows - 1) / kBatchRows * kBatchRows;
  for (int row = threadIdx.x; row < padded_rows; row += kProjectThreads) {
    float v[kChunkTokens];
#pragma unroll
    for (int t = 0; t < kChunkTokens; ++t) {
      const int token = first_token + t;
      v[t] = row < rows && token < n
                 ? load_elem(x, DT, static_cast<int64_t>(token) * kv_width + first_input + row)
                 : 0.0f;
    }
    float4* dst = reinterpret_cast<float4*>(staged + row * kStagePitch);
#pragma unroll
    for (int q = 0; q < kChunkTokens / 4; ++q)
      dst[q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
  }
}

// One batch of this lane's weights: rows first_row, first_row + 8, ... (kRowsPerBatch of them,
// pass-relative; `lane_down` points at the pass's row 0 and the lane's first channel). A row at
// or past `rows` or a channel past the tile's reads as 0.
__device__ __forceinline__ void load_weight_batch(float (&w)[kRowsPerBatch][kLaneChannels],
                                                  const float* __restrict__ lane_down, int stride,
                                                  int first_row, int rows,
                                                  const bool (&channel_active)[kLaneChannels]) {
#pragma unroll
  for (int u = 0; u < kRowsPerBatch; ++u) {
    const int row = first_row + u * kProjectWarps;
#pragma unroll
    for (int c = 0; c < kLaneChannels; ++c) {
      w[u][c] = row < rows && channel_active[c] ? __ldg(lane_down + row * stride + 32 * c) : 0.0f;
    }
  }
}

// acc[c][t] += staged[row][t] * w[u][c] for the batch's rows (first_row + 8u), in row order.
__device__ __forceinline__ void accumulate_batch(float (&acc)[kLaneChannels][kChunkTokens],
                                                 const float (&w)[kRowsPerBatch][kLaneChannels],
                                                 const float* __restrict__ staged, int first_row) {
#pragma unroll
  for (int u = 0; u < kRowsPerBatch; ++u) {
    const float4* x =
        reinterpret_cast<const float4*>(staged + (first_row + u * kProjectWarps) * kStagePitch);
#pragma unroll
    for (int q = 0; q < kChunkTokens / 4; ++q) {
      const float4 xq = x[q];  // the same address in every lane: a broadcast
#pragma unroll
      for (int c = 0; c < kLaneChannels; ++c) {
        acc[c][4 * q + 0] = fmaf(xq.x, w[u][c], acc[c][4 * q + 0]);
        acc[c][4 * q + 1] = fmaf(xq.y, w[u][c], acc[c][4 * q + 1]);
        acc[c][4 * q + 2] = fmaf(xq.z, w[u][c], acc[c][4 * q + 2]);
        acc[c][4 * q + 3] = fmaf(xq.w, w[u][c], acc[c][4 * q + 3]);
      }
    }
  }
}

// DT: the inputs' starkv_dtype as a template argument, so that load_elem's dtype branches fold
// away.
template <int DT>
__global__ void __launch_bounds__(kProjectThreads, kProjectCtasPerSm)
    project_latents_kernel(LayerView layer, int32_t kv_width, int32_t n,
                           const void* __restrict__ keys, const void* __restrict__ values,
                           float* __restrict__ latents) {
  // Staged inputs [kStageRows][kStagePitch] while a pass runs; the warps' sums
  // [warp][token][channel] when a chunk of tokens is done.
  __shared__ __align__(16) float smem[kProjectSmemFloats];
  float* const staged = smem;
  float* const warp_sums = smem;

  // The encode launched after this kernel (programmatic dependent launch) may start once every
  // CTA of this grid has started: it waits for the whole grid (and its writes) before it reads
  // the latents, so it only needs to be resident, not to find them ready.
  cudaTriggerProgrammaticLaunchCompletion();
  const ProjectionItem item = layer.proj_items[blockIdx.x];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const void* __restrict__ x = item.is_value ? values : keys;
  const int stride = item.down_stride;
  bool channel_active[kLaneChannels];
#pragma unroll
  for (int c = 0; c < kLaneChannels; ++c) channel_active[c] = lane + 32 * c < item.channels;
  const int64_t W = layer.latent_width;

#pragma unroll 1
  for (int first_token = 0; first_token < n; first_token += kChunkTokens) {
    float acc[kLaneChannels][kChunkTokens];
#pragma unroll
    for (int c = 0; c < kLaneChannels; ++c) {
#pragma unroll
      for (int t = 0; t < kChunkTokens; ++t) acc[c][t] = 0.0f;
    }

#pragma unroll 1
    for (int pass_row = 0; pass_row < item.rows; pass_row += kStageRows) {
      const int rows = min(kStageRows, item.rows - pass_row);
      const float* __restrict__ lane_down =
          layer.down + item.down_offset + static_cast<int64_t>(pass_row) * stride + lane;
      // Warp w's rows of the pass: w + 8j, in batches of kRowsPerBatch; all warps run the same
      // number of batches (a warp's rows past the end read as zeros).
      const int batches = ((rows + kProjectWarps - 1) / kProjectWarps + kRowsPerBatch - 1) /
                          kRowsPerBatch;
      float w_next[kRowsPerBatch][kLaneChannels];
      // The first batch's loads go out before the barrier and the staging, overlapping them.
      load_weight_batch(w_next, lane_down, stride, warp, rows, channel_active);
      __syncthreads();  // the previous pass (or chunk of tokens) is done with the shared memory
      stage_inputs<DT>(staged, x, kv_width, static_cast<int64_t>(item.input_offset) + pass_row,
                       rows, first_token, n);
      __syncthreads();
#pragma unroll 1
      for (int b = 0; b < batches; ++b) {
        float w[kRowsPerBatch][kLaneChannels];
#pragma unroll
        for (int u = 0; u < kRowsPerBatch; ++u) {
#pragma unroll
          for (int c = 0; c < kLaneChannels; ++c) w[u][c] = w_next[u][c];
        }
        const int first_row = warp + b * kRowsPerBatch * kProjectWarps;
        if (b + 1 < batches) {
          load_weight_batch(w_next, lane_down, stride,
                            first_row + kRowsPerBatch * kProjectWarps, rows, channel_active);
        }
        accumulate_batch(acc, w, staged, first_row);
      }
    }

    __syncthreads();  // the staged inputs are no longer read: their space takes the warps' sums
#pragma unroll
    for (int c = 0; c < kLaneChannels; ++c) {
#pragma unroll
      for (int t = 0; t < kChunkTokens; ++t)
        warp_sums[(warp * kChunkTokens + t) * kProjectTileChannels + lane + 32 * c] = acc[c][t];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kChunkTokens * kProjectTileChannels; e += kProjectThreads) {
      const int t = e / kProjectTileChannels, channel = e % kProjectTileChannels;
      const int token = first_token + t;
      if (token >= n || channel >= item.channels) continue;
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kProjectWarps; ++k)
        sum += warp_sums[(k * kChunkTokens + t) * kProjectTileChannels + channel];
      float* dst = latents + (static_cast<int64_t>(item.slice) * n + token) * W +
                   item.latent_offset + channel;
      *dst = sum;
      for (int z = 1; z <= item.zero_slices; ++z) dst[z * static_cast<int64_t>(n) * W] = 0.0f;
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
  uint32_t* row_words = reinterpret_cast<uint32_t*>(smem);  // row_bytes (a multiple of 16)
  uint8_t* row = smem;
  float* lat = reinterpret_cast<float*>(smem + layer.row_bytes);  // W floats
  DevBlock* blocks = reinterpret_cast<DevBlock*>(lat + W);        // n_blocks descriptors
  uint8_t* codes = reinterpret_cast<uint8_t*>(blocks + layer.n_blocks);  // W bytes
  const int token = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  for (int i = tid; i < layer.row_bytes / 4; i += kEncodeThreads) row_words[i] = 0u;
  // The block descriptors, copied once by all threads (instead of a dependent global load per
  // block in every warp).
  static_assert(sizeof(DevBlock) % 4 == 0, "descriptors copy as words");
  constexpr int kBlockWords = static_cast<int>(sizeof(DevBlock) / 4);
  for (int i = tid; i < layer.n_blocks * kBlockWords; i += kEncodeThreads) {
    reinterpret_cast<int32_t*>(blocks)[i] = reinterpret_cast<const int32_t*>(layer.blocks)[i];
  }
  // After the projection (launched as its programmatic dependent): its grid has finished and its
  // writes are visible past this point. Launched the ordinary way, this returns at once.
  cudaGridDependencySynchronize();
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

  // Each warp encodes whole blocks, the last (widest: the value groups') first: 16/32-bit
  // values, or the scale and codes and then the block's bytes of the bit stream (blocks share no
  // bytes, so every byte has one writer).
  for (int b = layer.n_blocks - 1 - warp; b >= 0; b -= kEncodeWarps) {
    const DevBlock blk = blocks[b];
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
      uint8_t* block_codes = codes + blk.first_channel;
      for (int c = lane; c < blk.n_channels; c += 32) {
        block_codes[c] = static_cast<uint8_t>(quant_code(x[c], scale, blk.bits));
      }
      __syncwarp();  // the lanes' codes, visible to the lanes that pack them
      for (int k = lane; k < blk.byte_count; k += 32) {
        row[blk.byte_offset + k] = pack_byte(block_codes, blk.n_channels, blk.storage_bits, k);
      }
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

cudaError_t launch_project_latents(const LayerView& layer, int32_t kv_width, int32_t n,
                                   const void* keys, const void* values, int dtype, float* latents,
                                   cudaStream_t stream) {
  if (n <= 0 || layer.n_proj_items <= 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(layer.n_proj_items);
  switch (dtype) {
    case 0:
      project_latents_kernel<0>
          <<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys, values, latents);
      break;
    case 1:
      project_latents_kernel<1>
          <<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys, values, latents);
      break;
    case 2:
      project_latents_kernel<2>
          <<<grid, kProjectThreads, 0, stream>>>(layer, kv_width, n, keys, values, latents);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_encode_rows(const LayerView& layer, int32_t page_tokens, int32_t n,
                               const void* latents, int dtype, int32_t slices,
                               const int2* host_targets, const int2* device_targets,
                               bool after_projection, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (slices < 1 || slices > kMaxProjectSlices || (slices > 1 && dtype != 0) ||
      (n <= kInlineTargets ? host_targets == nullptr : device_targets == nullptr))
    return cudaErrorInvalidValue;
  InlineTargets inline_targets{};
  if (n <= kInlineTargets) {
    for (int32_t i = 0; i < n; ++i) inline_targets.t[i] = host_targets[i];
  }
  // Row, latents (f32), block descriptors, codes (one byte per channel).
  const size_t smem = static_cast<size_t>(layer.row_bytes) +
                      static_cast<size_t>(layer.latent_width) * 5 +
                      static_cast<size_t>(layer.n_blocks) * sizeof(DevBlock) + 16;
  // STARKV_NO_PDL=1: launched the ordinary way (for comparison).
  static const bool no_pdl = std::getenv("STARKV_NO_PDL") != nullptr;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(n));
  config.blockDim = dim3(kEncodeThreads);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (after_projection && !no_pdl) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, encode_rows_kernel, layer, page_tokens, n, latents, dtype,
                            slices, inline_targets, device_targets);
}

}  // namespace kernels
}  // namespace starkv
