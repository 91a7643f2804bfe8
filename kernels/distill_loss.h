// The host-callable entry points of the distillation loss's kernels (distill_loss.cu), used by
// src/cuda/cuda_attention_distill_loss.cpp. The products around them are cuBLAS sgemm calls; these
// kernels are the element-wise and row-wise steps between the products, written to round as the
// CPU loss (src/core/cpu_attention_distill_loss.cpp) does. All matrices are row-major fp32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace starkv {
namespace kernels {

// masked[t, i] = latent[t, i] · mask[i] for t < n, i < r; latent has row stride ld_latent,
// masked is dense [n x r].
cudaError_t launch_distill_mask_latents(const float* latent, int32_t ld_latent, const float* mask,
                                        int32_t n, int32_t r, float* masked, cudaStream_t stream);

// RoPE over every head of n rows of `in` ([n x n_kv_heads·head_dim], row t at position t) into
// `out` (not in place): pair i turns by sign · t · inv_freq[i] (sign -1: the inverse rotation),
// formed in double as core/rope.cpp does. neox pairs (i, i + pairs), gptj (2i, 2i + 1); channels
// at and beyond 2·pairs are copied; pairs = 0 copies everything (no RoPE).
cudaError_t launch_distill_rope(const float* in, float* out, int32_t n, int32_t n_kv_heads,
                                int32_t head_dim, int32_t pairs, bool neox, const float* inv_freq,
                                double sign, cudaStream_t stream);

// Causal softmax in place over `rows` score rows of n entries: row r is query row i = r mod
// rows_per_head of its head, at position first_position + i, and sees entries 0..that position;
// the rest of the row becomes 0.
cudaError_t launch_distill_causal_softmax(float* scores, int32_t rows, int32_t rows_per_head,
                                          int32_t n, int32_t first_position, cudaStream_t stream);

// The softmax's backward in place: d_scores ← P ⊙ (dP − rowsum(P ⊙ dP)) on the causal part of each
// row (layout as launch_distill_causal_softmax), 0 beyond it.
cudaError_t launch_distill_softmax_backward(const float* probs, float* d_scores, int32_t rows,
                                            int32_t rows_per_head, int32_t n,
                                            int32_t first_position, cudaStream_t stream);

// *sum_sq = Σ (out − ref)² in double over `count` entries (ref null: Σ out²), by one block in a
// fixed order. When d_out is not null it also receives d_out = 2 (out − ref) · grad_scale.
cudaError_t launch_distill_output_error(const float* out, const float* ref, int64_t count,
                                        double grad_scale, float* d_out, double* sum_sq,
                                        cudaStream_t stream);

// grad[i] = Σ_t a[t, i] · b[t, i] in double for i < cols, t < n (both dense [n x cols]).
cudaError_t launch_distill_column_dots(const float* a, const float* b, int32_t n, int32_t cols,
                                       double* grad, cudaStream_t stream);

}  // namespace kernels
}  // namespace starkv
