#include "cuda_model_ops.h"

#include <cfloat>

#include "cuda_rope.cuh"

namespace llama_runner {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return int((n + kThreads - 1) / kThreads); }

__global__ void embed_rows_kernel(const __half* table, const int32_t* tokens, int n, int d,
                                  float* x) {
  const int t = blockIdx.x;
  const __half* row = table + int64_t(tokens[t]) * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) x[int64_t(t) * d + i] = __half2float(row[i]);
}

// One block per row: a block-wide sum of squares, then the scaled row.
__global__ void rms_norm_kernel(const float* x, const float* w, int d, float eps, __half* y) {
  __shared__ float warp_sums[32];
  const float* xr = x + int64_t(blockIdx.x) * d;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) warp_sums[0] = v;
  }
  __syncthreads();
  const float inv = rsqrtf(warp_sums[0] / float(d) + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x)
    y[int64_t(blockIdx.x) * d + i] = __float2half(xr[i] * inv * w[i]);
}

__global__ void split_qkv_kernel(const float* qkv, const int32_t* positions, int n_heads,
                                 int n_kv_heads, int head_dim, RopeTables rope, __half* q,
                                 float* k, float* v) {
  const int t = blockIdx.x;
  const int qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
  const float* row = qkv + int64_t(t) * (qd + 2 * kvd);
  const int pos = positions[t];
  for (int i = threadIdx.x; i < qd; i += blockDim.x) {
    const int h = i / head_dim, j = i - h * head_dim;
    q[int64_t(t) * qd + i] = __float2half(rope_element(row + h * head_dim, j, pos, rope));
  }
  for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
    k[int64_t(t) * kvd + i] = row[qd + i];
    v[int64_t(t) * kvd + i] = row[qd + kvd + i];
  }
}

__global__ void silu_mul_kernel(const float* gate_up, int64_t n, int f, __half* act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * f) return;
  const int64_t t = i / f, j = i - t * f;
  const float g = gate_up[t * 2 * f + j], u = gate_up[t * 2 * f + f + j];
  act[i] = __float2half(g / (1.0f + __expf(-g)) * u);
}

// One block per row; ties keep the lowest index.
__global__ void argmax_rows_kernel(const float* logits, int vocab, int32_t* out) {
  __shared__ float best_value[32];
  __shared__ int best_index[32];
  const float* row = logits + int64_t(blockIdx.x) * vocab;
  float bv = -FLT_MAX;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (row[i] > bv) { bv = row[i]; bi = i; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  if ((threadIdx.x & 31) == 0) {
    best_value[threadIdx.x >> 5] = bv;
    best_index[threadIdx.x >> 5] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x >> 5); ++w) {
      if (best_value[w] > bv || (best_value[w] == bv && best_index[w] < bi)) {
        bv = best_value[w];
        bi = best_index[w];
      }
    }
    out[blockIdx.x] = bi;
  }
}

__global__ void fill_uniform_kernel(float* x, int64_t n, float scale, uint64_t seed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  // splitmix64 of (seed, i): a well-mixed 64-bit value per element.
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * uint64_t(i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const float unit = float(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  x[i] = (2.0f * unit - 1.0f) * scale;
}

}  // namespace

void launch_embed_rows(const __half* table, const int32_t* tokens, int n, int d, float* x,
                       cudaStream_t stream) {
  if (n > 0) embed_rows_kernel<<<n, kThreads, 0, stream>>>(table, tokens, n, d, x);
}

void launch_rms_norm(const float* x, const float* w, int n, int d, float eps, __half* y,
                     cudaStream_t stream) {
  if (n > 0) rms_norm_kernel<<<n, kThreads, 0, stream>>>(x, w, d, eps, y);
}

void launch_split_qkv(const float* qkv, const int32_t* positions, int n, int n_heads,
                      int n_kv_heads, int head_dim, const RopeTables& rope, __half* q, float* k,
                      float* v, cudaStream_t stream) {
  if (n > 0)
    split_qkv_kernel<<<n, kThreads, 0, stream>>>(qkv, positions, n_heads, n_kv_heads, head_dim,
                                                 rope, q, k, v);
}

void launch_silu_mul(const float* gate_up, int n, int f, __half* act, cudaStream_t stream) {
  const int64_t total = int64_t(n) * f;
  if (total > 0) silu_mul_kernel<<<blocks_for(total), kThreads, 0, stream>>>(gate_up, n, f, act);
}

void launch_argmax_rows(const float* logits, int m, int vocab, int32_t* out,
                        cudaStream_t stream) {
  if (m > 0) argmax_rows_kernel<<<m, kThreads, 0, stream>>>(logits, vocab, out);
}

void launch_fill_uniform(float* x, int64_t n, float scale, uint64_t seed, cudaStream_t stream) {
  if (n > 0) fill_uniform_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, n, scale, seed);
}

}  // namespace llama_runner
