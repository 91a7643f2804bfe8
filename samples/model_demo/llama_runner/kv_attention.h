// KvAttention: the seam between the decoder and whatever holds its KV cache.
//
// The forward pass computes, for each layer, the new tokens' keys (before RoPE), values and
// queries (after RoPE). It hands the keys and values to append(), then asks attend() for the
// attention output of the new queries over everything cached so far, and multiplies that by
// W_O itself. Nothing else about the cache leaks into the forward pass, so a compressed cache
// (starkv through its C ABI: append = starkv's append, attend = its decode step) slots in as a
// second implementation next to DenseKvAttention.
//
// Why keys arrive pre-RoPE: a low-rank cache must project the key before the rotation (RoPE
// does not commute with the projection) and re-applies RoPE after reconstructing it. A dense
// cache just rotates on append and stores post-RoPE keys.
//
// One object caches one sequence, all layers. Calls for a step go layer by layer: append(l),
// attend(l), append(l+1), ... Shapes (row-major, fp32, contiguous):
//   k, v   [n × G·D]  (token t's KV head g at t·G·D + g·D)
//   q, out [n × H·D]  (query head h uses KV head h / (H/G), as in Hugging Face repeat_kv)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace llama_runner {

class KvAttention {
 public:
  virtual ~KvAttention() = default;

  // Drops every cached token of every layer (a new sequence or a new evaluation window).
  virtual void reset() = 0;

  // Tokens cached for this layer.
  virtual int64_t length(int layer) const = 0;

  // Caches n new tokens of this layer: pre-RoPE keys, values, and their absolute positions
  // (the positions RoPE must use). The new tokens follow the ones already cached.
  virtual void append(int layer, int n, const float* k_pre_rope, const float* v,
                      const int32_t* positions) = 0;

  // Causal attention for the n most recently appended tokens of this layer: query i (post-RoPE,
  // scaled inside by 1/sqrt(D)) sees cached tokens 0 .. length - n + i. Writes out.
  virtual void attend(int layer, int n, const float* q_post_rope, float* out) = 0;

  // Bytes stored per cached token, summed over all layers (what the cache format costs).
  virtual size_t bytes_per_token() const = 0;
  // Bytes currently allocated for cached tokens (capacity, not just what is in use).
  virtual size_t bytes_allocated() const = 0;
  // Bytes holding the tokens cached now (a paged cache counts whole pages in use).
  virtual size_t bytes_in_use() const = 0;
  // One line for reports, e.g. "dense fp16".
  virtual std::string describe() const = 0;
};

}  // namespace llama_runner
