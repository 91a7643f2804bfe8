#include "perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace llama_runner {

namespace {

// Rows of logits computed at a time: bounds the logits buffer at kLogitRows × vocab floats.
constexpr int kLogitRows = 128;

}  // namespace

PerplexityResult evaluate_perplexity(CausalLm& model,
                                     const std::vector<int32_t>& tokens, int window, int stride,
                                     const PerplexityProgress& progress) {
  if (window < 2) throw std::invalid_argument("window must be at least 2 tokens");
  if (stride < 1 || stride > window) throw std::invalid_argument("stride must be in [1, window]");
  const int64_t N = int64_t(tokens.size());
  if (N < 2) throw std::invalid_argument("need at least 2 tokens to score");
  const int V = model.config().vocab_size;

  PerplexityResult r;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> positions(static_cast<size_t>(window));
  for (int i = 0; i < window; ++i) positions[size_t(i)] = i;
  std::vector<float> logits(size_t(kLogitRows) * size_t(V));
  double nll_sum = 0.0;
  int64_t scored_end = 1;  // tokens [1, scored_end) have been scored; token 0 never is

  for (int64_t begin = 0; scored_end < N; begin += stride) {
    const int64_t end = std::min(begin + window, N);
    const int n = int(end - begin);
    model.reset();
    model.forward(tokens.data() + begin, positions.data(), n);
    r.tokens_processed += n;
    r.kv_tokens_peak = std::max<int64_t>(r.kv_tokens_peak, n);
    r.kv_bytes_peak = std::max(r.kv_bytes_peak, model.kv_bytes_allocated());
    r.kv_bytes_in_use_peak = std::max(r.kv_bytes_in_use_peak, model.kv_bytes_in_use());

    // Hidden row i predicts token begin + i + 1; score targets [first, end). The window's own
    // first token has no context inside it (skipped when stride == window).
    const int64_t first = std::max(scored_end, begin + 1);
    for (int64_t target = first; target < end; target += kLogitRows) {
      const int m = int(std::min<int64_t>(kLogitRows, end - target));
      const int64_t row0 = target - 1 - begin;
      model.logits(int(row0), m, logits.data());
      double chunk = 0.0;
      for (int i = 0; i < m; ++i) {
        const float* z = logits.data() + size_t(i) * size_t(V);
        float mx = z[0];
        for (int j = 1; j < V; ++j) mx = std::max(mx, z[j]);
        double sum = 0.0;
        for (int j = 0; j < V; ++j) sum += std::exp(z[j] - mx);  // each term in (0, 1]
        chunk += std::log(sum) + mx - z[tokens[size_t(target + i)]];
      }
      nll_sum += chunk;
      r.tokens_scored += m;
    }
    scored_end = end;
    ++r.windows;
    if (progress) progress(r.windows, r.tokens_scored, nll_sum / double(r.tokens_scored));
  }
  r.mean_nll = nll_sum / double(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace llama_runner
