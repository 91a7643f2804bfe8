// End-to-end decode throughput on the GPU: `batch` sequences whose caches hold `context` tokens
// each, then `steps` greedy decode steps of the whole model (embedding, 30 layers with cache
// append and attention, lm_head, argmax, next tokens back to the host), timed on the host clock.
//
// The caches are filled with random pre-RoPE keys and values through the cache's own append
// (16K rows per call), not by a prefill of real text: what a decode step costs depends on how
// many tokens each cache holds and in which format, not on their values, and prefilling
// batch × context tokens would cost far more device time than the measurement. So this measures
// decode throughput at a given context, the way serving benchmarks report it, and says so.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_kv_cache.h"
#include "cuda_llama_forward.h"

namespace llama_runner {

struct ThroughputOptions {
  int batch = 1;
  int context = 8192;  // tokens cached per sequence before the first timed step
  int steps = 16;      // timed decode steps
  int warmup = 2;      // untimed steps first
  int attention_reps = 5;  // extra timing of the attention alone over all layers
  uint64_t seed = 1;
};

struct ThroughputResult {
  double fill_seconds = 0.0;
  double ms_per_step = 0.0;          // whole model, per decode step of the batch
  double tokens_per_second = 0.0;    // batch / step time
  double attention_ms_per_step = 0.0;  // plan + attention of all layers, no append (CUDA events)
  double kv_bytes_read_per_step = 0.0; // cached tokens × bytes per token: what attention reads
  size_t kv_bytes_allocated = 0;
  size_t kv_bytes_in_use = 0;
};

ThroughputResult measure_decode_throughput(CudaLlamaForward& model, CudaKvCache& kv,
                                           const ThroughputOptions& options);

}  // namespace llama_runner
