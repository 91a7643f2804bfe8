#include "decode_throughput.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <vector>

namespace llama_runner {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr int kFillRows = 16384;  // rows per append call while filling

}  // namespace

ThroughputResult measure_decode_throughput(CudaLlamaForward& model, CudaKvCache& kv,
                                           const ThroughputOptions& o) {
  if (o.batch < 1 || o.context < 1 || o.steps < 1 || o.warmup < 0)
    throw std::invalid_argument("throughput needs batch, context and steps of at least 1");
  const ModelConfig& cfg = model.config();
  const int kvd = cfg.n_kv_heads * cfg.head_dim;
  cudaStream_t stream = model.stream();
  ThroughputResult r;

  // Fill: every sequence gets `context` random tokens in every layer.
  std::vector<int32_t> seqs(size_t(o.batch));
  for (int b = 0; b < o.batch; ++b) seqs[size_t(b)] = kv.create_sequence();
  const auto t_fill = Clock::now();
  {
    const int rows_max = std::min<int64_t>(kFillRows, int64_t(o.batch) * o.context);
    DeviceArray<float> k(size_t(rows_max) * kvd), v(size_t(rows_max) * kvd);
    launch_fill_uniform(k.data(), int64_t(k.size()), 1.0f, o.seed, stream);
    launch_fill_uniform(v.data(), int64_t(v.size()), 1.0f, o.seed + 1, stream);
    DeviceArray<int32_t> seq_dev(static_cast<size_t>(rows_max)), pos_dev(static_cast<size_t>(rows_max));
    std::vector<int32_t> seq_ids, positions;
    // Rows in order: sequence by sequence, each in order of position (as append requires).
    int64_t next = 0;
    const int64_t total = int64_t(o.batch) * o.context;
    while (next < total) {
      const int n = int(std::min<int64_t>(rows_max, total - next));
      seq_ids.resize(size_t(n));
      positions.resize(size_t(n));
      for (int i = 0; i < n; ++i) {
        const int64_t flat = next + i;
        seq_ids[size_t(i)] = seqs[size_t(flat / o.context)];
        positions[size_t(i)] = int32_t(flat % o.context);
      }
      seq_dev.upload(seq_ids, stream);
      pos_dev.upload(positions, stream);
      const CudaRowBatch rows{n, seq_ids.data(), positions.data(), nullptr, seq_dev.data(),
                              pos_dev.data()};
      for (int l = 0; l < cfg.n_layers; ++l) kv.append(l, rows, k.data(), v.data());
      next += n;
    }
    cuda_check(cudaStreamSynchronize(stream), "fill");
  }
  r.fill_seconds = seconds_since(t_fill);

  // Decode: one row per sequence, greedy next tokens fed back.
  std::mt19937 rng(uint32_t(o.seed));
  std::vector<int32_t> tokens(size_t(o.batch)), positions(size_t(o.batch)),
      kv_lengths(size_t(o.batch));
  for (int32_t& t : tokens) t = int32_t(rng() % uint32_t(cfg.vocab_size));
  int32_t position = o.context;
  auto step = [&]() {
    std::fill(positions.begin(), positions.end(), position);
    std::fill(kv_lengths.begin(), kv_lengths.end(), position + 1);
    model.forward(tokens.data(), positions.data(), seqs.data(), kv_lengths.data(), o.batch, kv);
    model.next_tokens(o.batch, tokens.data());
    ++position;
  };
  for (int s = 0; s < o.warmup; ++s) step();
  const int32_t first_timed = position;
  const auto t0 = Clock::now();
  for (int s = 0; s < o.steps; ++s) step();
  const double seconds = seconds_since(t0);
  r.ms_per_step = 1e3 * seconds / o.steps;
  r.tokens_per_second = double(o.batch) * o.steps / seconds;
  // Mean cached tokens a timed step's attention reads, over all sequences and layers.
  const double mean_length = first_timed + 0.5 * (o.steps + 1);
  r.kv_bytes_read_per_step = double(o.batch) * mean_length * double(kv.bytes_per_token());

  // The attention alone: re-plan the last step's rows and time every layer's attend.
  if (o.attention_reps > 0) {
    // Random fp16 queries in [-1, 1), made on the host: one upload, no device round trip.
    std::vector<__half> q_host(size_t(o.batch) * cfg.n_heads * cfg.head_dim);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (__half& x : q_host) x = __float2half(uniform(rng));
    DeviceArray<__half> q, out(q_host.size());
    q.upload(q_host, stream);
    std::fill(kv_lengths.begin(), kv_lengths.end(), position);
    DeviceArray<int32_t> seq_dev;
    seq_dev.upload(seqs, stream);
    const CudaRowBatch rows{o.batch, seqs.data(), positions.data(), kv_lengths.data(),
                            seq_dev.data(), nullptr};
    cudaEvent_t start, stop;
    cuda_check(cudaEventCreate(&start), "cudaEventCreate");
    cuda_check(cudaEventCreate(&stop), "cudaEventCreate");
    kv.plan(rows);
    for (int l = 0; l < cfg.n_layers; ++l) kv.attend(l, rows, q.data(), out.data());  // warm
    cuda_check(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int rep = 0; rep < o.attention_reps; ++rep)
      for (int l = 0; l < cfg.n_layers; ++l) kv.attend(l, rows, q.data(), out.data());
    cuda_check(cudaEventRecord(stop, stream), "cudaEventRecord");
    cuda_check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    cuda_check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    r.attention_ms_per_step = double(ms) / o.attention_reps;
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }

  r.kv_bytes_allocated = kv.bytes_allocated();
  r.kv_bytes_in_use = kv.bytes_in_use();
  for (int32_t s : seqs) kv.release_sequence(s);
  return r;
}

}  // namespace llama_runner
