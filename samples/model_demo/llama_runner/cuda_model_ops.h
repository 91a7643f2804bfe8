// The element-wise and row-wise steps of the Llama forward pass on the GPU (the GEMMs are
// cuBLAS, in cuda_llama_forward.cpp). Activations are fp32 where they accumulate (the residual
// stream, GEMM outputs) and fp16 where they feed a GEMM or the attention; weights are fp16.
// All launches go to `stream` and return at once.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace llama_runner {

// x[t] = table[tokens[t]] for n rows of width d (fp16 table, fp32 out).
void launch_embed_rows(const __half* table, const int32_t* tokens, int n, int d, float* x,
                       cudaStream_t stream);

// y[t] = x[t] / rms(x[t]) * w, fp32 in, fp16 out (the next GEMM's input).
void launch_rms_norm(const float* x, const float* w, int n, int d, float eps, __half* y,
                     cudaStream_t stream);

// RoPE tables on the device: cos/sin [positions × rope_dim/2]; `neox` picks the pairing
// (i, i + rope_dim/2) over (2i, 2i + 1).
struct RopeTables {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int positions = 0;
  int rope_dim = 0;
  bool neox = true;
};

// Splits the fused qkv GEMM output [n × (H + 2G)·D]: q rotated by RoPE at positions[t] into
// fp16 [n × H·D]; keys (pre-RoPE, as the caches take them) and values copied to fp32 [n × G·D].
void launch_split_qkv(const float* qkv, const int32_t* positions, int n, int n_heads,
                      int n_kv_heads, int head_dim, const RopeTables& rope, __half* q,
                      float* k, float* v, cudaStream_t stream);

// act[t] = silu(gate[t]) * up[t] from gate_up [n × 2F] (gate columns first), fp16 out.
void launch_silu_mul(const float* gate_up, int n, int f, __half* act, cudaStream_t stream);

// out[t] = argmax over the vocab of logits[t] (first index on ties, as std::max_element).
void launch_argmax_rows(const float* logits, int m, int vocab, int32_t* out,
                        cudaStream_t stream);

// Fills n floats with uniform values in [-scale, scale) from a counter-based hash of
// (seed, index): reproducible, no RNG state.
void launch_fill_uniform(float* x, int64_t n, float scale, uint64_t seed, cudaStream_t stream);

}  // namespace llama_runner
