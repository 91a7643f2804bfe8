// The distillation loss's element-wise and row-wise steps (distill_loss.h); the products between
// them are cuBLAS calls in src/cuda/cuda_attention_distill_loss.cpp. Each kernel rounds as the CPU
// loss does (fp32 values, double where the CPU sums in double), so the two agree to fp32
// summation order. Nothing here is on a hot path: a profile is built once, offline.
//
// mask_latents_kernel     grid-stride, one thread per output entry. Reads latent[t, i], mask[i];
//                         writes masked[t, i].
// rope_kernel             grid-stride, one thread per output entry: reads the entry and its pair
//                         partner, rotates in double, writes the entry (out of place, so no thread
//                         reads what another writes).
// causal_softmax_kernel   one CTA (256 threads) per score row: max, exp and a double sum (fixed-
//                         order block reductions), scale; the masked tail is zeroed.
// softmax_backward_kernel one CTA per row: the double row sum of P ⊙ dP, then dS in place.
// output_error_kernel     one CTA (1024 threads): Σ (out − ref)² in double, and dO.
// column_dots_kernel      CTA of 32 columns x 8 row slices; the 8 partial sums of a column are
//                         added in slice order through shared memory.
#include <cstdint>

#include "kernels/block_reduce.cuh"
#include "kernels/distill_loss.h"

namespace starkv {
namespace kernels {
namespace {

constexpr int kRowThreads = 256;
constexpr int kErrorThreads = 1024;
constexpr int kDotColumns = 32;
constexpr int kDotSlices = 8;
constexpr int kElementThreads = 256;

unsigned element_blocks(int64_t count) {
  const int64_t blocks = (count + kElementThreads - 1) / kElementThreads;
  return static_cast<unsigned>(blocks < (1 << 16) ? (blocks > 0 ? blocks : 1) : (1 << 16));
}

__global__ void mask_latents_kernel(const float* __restrict__ latent, int32_t ld_latent,
                                    const float* __restrict__ mask, int32_t n, int32_t r,
                                    float* __restrict__ masked) {
  const int64_t count = static_cast<int64_t>(n) * r;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / r;
    const int32_t i = static_cast<int32_t>(e % r);
    masked[e] = latent[t * ld_latent + i] * mask[i];
  }
}

__global__ void rope_kernel(const float* __restrict__ in, float* __restrict__ out, int32_t n,
                            int32_t width, int32_t head_dim, int32_t pairs, bool neox,
                            const float* __restrict__ inv_freq, double sign) {
  const int64_t count = static_cast<int64_t>(n) * width;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / width;
    const int32_t d = static_cast<int32_t>(e % width) % head_dim;
    if (d >= 2 * pairs) {
      out[e] = in[e];
      continue;
    }
    // Pair i of this channel, its first (a) and second (b) member, as core/rope.cpp pairs them.
    const int32_t i = neox ? (d < pairs ? d : d - pairs) : d / 2;
    const int32_t a = neox ? i : 2 * i;
    const int32_t b = neox ? i + pairs : 2 * i + 1;
    const int64_t head = e - d;  // the head's channel 0 in this row
    const double angle = sign * static_cast<double>(t) * static_cast<double>(inv_freq[i]);
    double s, c;
    sincos(angle, &s, &c);
    const double xa = in[head + a], xb = in[head + b];
    out[e] = static_cast<float>(d == a ? xa * c - xb * s : xb * c + xa * s);
  }
}

__global__ void __launch_bounds__(kRowThreads)
    causal_softmax_kernel(float* __restrict__ scores, int32_t rows_per_head, int32_t n,
                          int32_t first_position) {
  float* row = scores + static_cast<int64_t>(blockIdx.x) * n;
  const int32_t last = first_position + static_cast<int32_t>(blockIdx.x) % rows_per_head;
  float row_max = -INFINITY;
  for (int32_t j = threadIdx.x; j <= last; j += blockDim.x) row_max = fmaxf(row_max, row[j]);
  row_max = block_reduce(row_max, MaxOp{});
  double sum = 0.0;
  for (int32_t j = threadIdx.x; j <= last; j += blockDim.x) {
    const float e = expf(row[j] - row_max);
    row[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, SumOp{});
  const float inv = static_cast<float>(1.0 / sum);
  // Each thread rescales the entries it wrote itself.
  for (int32_t j = threadIdx.x; j < n; j += blockDim.x) row[j] = j <= last ? row[j] * inv : 0.0f;
}

__global__ void __launch_bounds__(kRowThreads)
    softmax_backward_kernel(const float* __restrict__ probs, float* __restrict__ d_scores,
                            int32_t rows_per_head, int32_t n, int32_t first_position) {
  const float* p = probs + static_cast<int64_t>(blockIdx.x) * n;
  float* d = d_scores + static_cast<int64_t>(blockIdx.x) * n;
  const int32_t last = first_position + static_cast<int32_t>(blockIdx.x) % rows_per_head;
  double dot = 0.0;
  for (int32_t j = threadIdx.x; j <= last; j += blockDim.x) dot += static_cast<double>(p[j]) * d[j];
  const float row_dot = static_cast<float>(block_reduce(dot, SumOp{}));
  for (int32_t j = threadIdx.x; j < n; j += blockDim.x) {
    d[j] = j <= last ? p[j] * (d[j] - row_dot) : 0.0f;
  }
}

__global__ void __launch_bounds__(kErrorThreads)
    output_error_kernel(const float* __restrict__ out, const float* __restrict__ ref, int64_t count,
                        double grad_scale, float* __restrict__ d_out, double* __restrict__ sum_sq) {
  double acc = 0.0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const double diff = static_cast<double>(out[k]) - (ref != nullptr ? ref[k] : 0.0f);
    acc += diff * diff;
    if (d_out != nullptr) d_out[k] = static_cast<float>(2.0 * diff * grad_scale);
  }
  acc = block_reduce(acc, SumOp{});
  if (threadIdx.x == 0) *sum_sq = acc;
}

__global__ void column_dots_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                   int32_t n, int32_t cols, double* __restrict__ grad) {
  __shared__ double partial[kDotSlices][kDotColumns];
  const int32_t col = blockIdx.x * kDotColumns + threadIdx.x;
  double acc = 0.0;
  if (col < cols) {
    for (int32_t t = threadIdx.y; t < n; t += kDotSlices) {
      const int64_t k = static_cast<int64_t>(t) * cols + col;
      acc += static_cast<double>(a[k]) * b[k];
    }
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    double sum = partial[0][threadIdx.x];
    for (int s = 1; s < kDotSlices; ++s) sum += partial[s][threadIdx.x];
    grad[col] = sum;
  }
}

}  // namespace

cudaError_t launch_distill_mask_latents(const float* latent, int32_t ld_latent, const float* mask,
                                        int32_t n, int32_t r, float* masked, cudaStream_t stream) {
  mask_latents_kernel<<<element_blocks(static_cast<int64_t>(n) * r), kElementThreads, 0, stream>>>(
      latent, ld_latent, mask, n, r, masked);
  return cudaGetLastError();
}

cudaError_t launch_distill_rope(const float* in, float* out, int32_t n, int32_t n_kv_heads,
                                int32_t head_dim, int32_t pairs, bool neox, const float* inv_freq,
                                double sign, cudaStream_t stream) {
  const int32_t width = n_kv_heads * head_dim;
  rope_kernel<<<element_blocks(static_cast<int64_t>(n) * width), kElementThreads, 0, stream>>>(
      in, out, n, width, head_dim, pairs, neox, inv_freq, sign);
  return cudaGetLastError();
}

cudaError_t launch_distill_causal_softmax(float* scores, int32_t rows, int32_t rows_per_head,
                                          int32_t n, int32_t first_position, cudaStream_t stream) {
  causal_softmax_kernel<<<rows, kRowThreads, 0, stream>>>(scores, rows_per_head, n, first_position);
  return cudaGetLastError();
}

cudaError_t launch_distill_softmax_backward(const float* probs, float* d_scores, int32_t rows,
                                            int32_t rows_per_head, int32_t n,
                                            int32_t first_position, cudaStream_t stream) {
  softmax_backward_kernel<<<rows, kRowThreads, 0, stream>>>(probs, d_scores, rows_per_head, n,
                                                            first_position);
  return cudaGetLastError();
}

cudaError_t launch_distill_output_error(const float* out, const float* ref, int64_t count,
                                        double grad_scale, float* d_out, double* sum_sq,
                                        cudaStream_t stream) {
  output_error_kernel<<<1, kErrorThreads, 0, stream>>>(out, ref, count, grad_scale, d_out, sum_sq);
  return cudaGetLastError();
}

cudaError_t launch_distill_column_dots(const float* a, const float* b, int32_t n, int32_t cols,
                                       double* grad, cudaStream_t stream) {
  const dim3 block(kDotColumns, kDotSlices);
  column_dots_kernel<<<(cols + kDotColumns - 1) / kDotColumns, block, 0, stream>>>(a, b, n, cols,
                                                                                   grad);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace starkv
