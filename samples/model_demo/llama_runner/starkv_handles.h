// The starkv handles a runner cache holds (CPU or CUDA alike), opened together and closed
// dependents first: a context, the profile (its shape checked against the model's), one pool and
// one decode step. Plus the two helpers every starkv call site in the runner uses.
#pragma once

#include <cstdint>
#include <string>

#include "model_config.h"
#include "starkv/starkv.h"

namespace llama_runner {

// Every starkv call returns a status; the runner treats any failure as fatal, with starkv's own
// message (starkv_last_error is per thread and set by the failing call). Throws runtime_error.
void check_starkv(starkv_status status, const char* what);

// One line naming a profile's compression, e.g. "starkv 75.0% low-rank (...), fp16 latents, ...".
std::string describe_starkv_profile(const starkv_profile_info& info);

struct StarkvHandles {
  // Creates a context from `context`, loads the profile (a .starkv file built for this model:
  // a profile for another model would still load, its shape is what tells them apart), and
  // reserves a pool of capacity_tokens tokens for up to max_sequences sequences with one decode
  // step on it. Throws (with nothing left open) on any failure.
  StarkvHandles(const starkv_context_params& context, const std::string& profile_path,
                const ModelConfig& cfg, int64_t capacity_tokens, int max_sequences);
  ~StarkvHandles();
  StarkvHandles(const StarkvHandles&) = delete;
  StarkvHandles& operator=(const StarkvHandles&) = delete;

  starkv_context* ctx = nullptr;
  starkv_profile* profile = nullptr;
  starkv_cache_pool* pool = nullptr;
  starkv_decode_step* step = nullptr;
  starkv_profile_info info{};

 private:
  void close();
};

}  // namespace llama_runner
