// Greedy (argmax) generation: prefill the prompt in one forward call, then decode one token at
// a time, each step appending to the same KV cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "causal_lm.h"

namespace llama_runner {

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (prompt excluded)
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // all decode steps together
  int64_t cache_tokens = 0;     // tokens in the cache at the end
  size_t kv_bytes = 0;          // kv.bytes_allocated() at the end
};

// Generates up to n_new tokens after the prompt (stopping early at stop_token if it is >= 0).
// kv is reset first.
GenerationResult greedy_generate(CausalLm& model,
                                 const std::vector<int32_t>& prompt, int n_new, int stop_token);

}  // namespace llama_runner
