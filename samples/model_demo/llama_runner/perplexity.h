// Perplexity over a token stream with sliding windows (the Hugging Face "strided" scheme):
// windows of `window` tokens start every `stride` tokens; each window is a fresh sequence
// (cache reset, positions from 0), and only the tokens not already scored by an earlier window
// are scored, so every token after the first is predicted once, with between window - stride
// and window - 1 tokens of context (all of it in the first window). With stride == window the
// windows do not overlap and each window's first token, which has no context, is not scored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "causal_lm.h"

namespace llama_runner {

struct PerplexityResult {
  int64_t tokens_scored = 0;  // predictions scored
  int64_t windows = 0;
  double mean_nll = 0.0;      // nats per scored token
  double perplexity = 0.0;    // exp(mean_nll)
  double seconds = 0.0;       // wall time of the evaluation
  int64_t tokens_processed = 0;  // tokens run through the model (windows overlap)
  size_t kv_bytes_peak = 0;      // kv.bytes_allocated() after the largest window
  size_t kv_bytes_in_use_peak = 0;  // kv.bytes_in_use() after the largest window
  int64_t kv_tokens_peak = 0;    // most tokens held in the cache at once
};

// Progress callback: (windows done, tokens scored so far, running mean NLL).
using PerplexityProgress = std::function<void(int64_t, int64_t, double)>;

PerplexityResult evaluate_perplexity(CausalLm& model,
                                     const std::vector<int32_t>& tokens, int window, int stride,
                                     const PerplexityProgress& progress = nullptr);

}  // namespace llama_runner
