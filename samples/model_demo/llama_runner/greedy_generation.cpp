#include "greedy_generation.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace llama_runner {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

GenerationResult greedy_generate(CausalLm& model,
                                 const std::vector<int32_t>& prompt, int n_new, int stop_token) {
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  const int V = model.config().vocab_size;
  GenerationResult r;
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<int32_t> positions(prompt.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t(i);
  model.reset();

  auto t0 = Clock::now();
  model.forward(prompt.data(), positions.data(), int(prompt.size()));
  model.logits(int(prompt.size()) - 1, 1, logits.data());
  r.prefill_seconds = seconds_since(t0);

  t0 = Clock::now();
  int32_t pos = int32_t(prompt.size());
  for (int step = 0; step < n_new; ++step) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    r.tokens.push_back(next);
    if (next == stop_token || step + 1 == n_new) break;
    model.forward(&next, &pos, 1);
    model.logits(0, 1, logits.data());
    ++pos;
  }
  r.decode_seconds = seconds_since(t0);
  r.cache_tokens = model.cache_tokens();
  r.kv_bytes = model.kv_bytes_allocated();
  return r;
}

}  // namespace llama_runner
