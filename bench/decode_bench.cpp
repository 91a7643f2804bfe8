// decode_bench: times starkv decode attention (one layer, one decode step) and append (per token)
// on the CUDA backend, for Llama-2-7B-like (H=G=32, D=128) and Llama-3-8B-like (H=32, G=8, D=128)
// layers, batches 1/16/64, contexts 4K..128K (where memory allows), ranks of a 75% (keys 80% /
// values 70%), a 60% (keys 70% / values 50%) and a 50% (keys 60% / values 40%) profile, latents
// fp16, 4-bit and 3-bit mixed
// (4-bit outliers, 3-bit inliers, true 3-bit packing); and "0%": an uncompressed layer, made as the
// profile builder makes one (identity factors at full rank, fp16, LayerProfile::compressed false),
// which the backend attends with its dense kernels (STARKV_NO_DENSE=1: with the low-rank ones),
// fp16 only. --shape smollm2-135m (H=9, G=3, D=64) runs a small model's layer (only on request);
// --batch N and --context N replace the lists of batches and contexts; --peak GB/s sets the HBM
// peak of the %peak column (default: the device's memory clock x 2 x bus width).
//
// Protocol (DESIGN §5): CUDA events around each decode_step_run, median of >= 20 timed runs after
// 3 warm-up runs; before every timed run a 256 MB buffer is overwritten so that L2 (50 MB) holds
// nothing of the cache. The "graph us" column times the same step captured into a CUDA graph and
// replayed (as an engine's decode loop runs it), by the same protocol. Bytes read per step = sum
// over queries of kv_length * row_bytes (the factors are not counted: they are a few MB and
// L2-resident).
//
// The ranks are static (the same per head), and factors are random: timing does not depend on
// the factor values. Each sequence is filled with append_latents from a buffer of random latents.
//
// Output: one JSON object per line on stdout and in --out FILE (for bench/merge_results.py).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "api/handles.h"
#include "core/profile.h"
#include "starkv/starkv.h"

namespace {

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)
#define SK(x)                                                             \
  do {                                                                    \
    starkv_status s_ = (x);                                               \
    if (s_ != STARKV_OK) {                                                \
      std::fprintf(stderr, "%s:%d %s: %s (%s)\n", __FILE__, __LINE__, #x, \
                   starkv_status_string(s_), starkv_last_error());        \
      std::exit(1);                                                       \
    }                                                                     \
  } while (0)

struct Shape {
  const char* name;
  int32_t H, G, D;
  float theta;
  bool on_request;  // only with --shape NAME
};

struct Compression {
  const char* name;
  float key_removed, value_removed;
  bool uncompressed;  // an uncompressed layer (identity factors, fp16), as the builder makes it
};

// What the profile builder makes for an uncompressed layer (profile_builder.cpp: identity_group):
// identity factors at full rank, one group per KV head for keys and one joint group for values (the
// builder's default decompositions), 16-bit, not compressed.
starkv::FactorGroup identity_group(int32_t in_offset, int32_t in_dim) {
  starkv::FactorGroup g;
  g.in_offset = in_offset;
  g.in_dim = g.rank = in_dim;
  g.down.assign(static_cast<size_t>(in_dim) * static_cast<size_t>(in_dim), 0.0f);
  for (int32_t i = 0; i < in_dim; ++i) g.down[static_cast<size_t>(i) * in_dim + i] = 1.0f;
  g.up = g.down;
  return g;
}

struct Bits {
  const char* name;
  int32_t inlier, outlier;
};

std::shared_ptr<starkv::Profile> make_profile(const Shape& s, const Compression& c, const Bits& b,
                                              int32_t* key_rank, int32_t* value_rank) {
  auto p = std::make_shared<starkv::Profile>();
  p->shape.n_layers = 1;
  p->shape.n_heads = s.H;
  p->shape.n_kv_heads = s.G;
  p->shape.head_dim = s.D;
  p->rope.style = STARKV_ROPE_NEOX;
  p->rope.rotary_dim = s.D;
  p->rope.theta = s.theta;
  p->attention_scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  p->quant.inlier_bits = b.inlier;
  p->quant.outlier_bits = b.outlier;
  if (c.uncompressed) {
    starkv::LayerProfile lp;
    lp.compressed = false;
    for (int32_t g = 0; g < s.G; ++g) lp.keys.push_back(identity_group(g * s.D, s.D));
    lp.values.push_back(identity_group(0, s.G * s.D));
    lp.inlier_bits = lp.outlier_bits = 16;
    *key_rank = s.D;
    *value_rank = s.G * s.D;
    p->layers.push_back(std::move(lp));
    p->finalize_layouts();
    return p;
  }
  const int32_t rk = std::max(8, static_cast<int32_t>(std::lround((1.0 - c.key_removed) * s.D)));
  const int32_t rv = static_cast<int32_t>(std::lround((1.0 - c.value_removed) * s.G * s.D));
  *key_rank = rk;
  *value_rank = rv;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  starkv::LayerProfile lp;
  lp.inlier_bits = b.inlier;
  lp.outlier_bits = b.inlier == 16 ? 16 : b.outlier;
  auto fill = [&](starkv::FactorGroup& g, int32_t in_offset, int32_t in_dim, int32_t rank) {
    g.in_offset = in_offset;
    g.in_dim = in_dim;
    g.rank = rank;
    g.n_outlier = static_cast<int32_t>(0.2f * rank);
    g.down.resize(static_cast<size_t>(in_dim) * rank);
    g.up.resize(static_cast<size_t>(rank) * in_dim);
    const float a = 1.0f / std::sqrt(static_cast<float>(in_dim));
    for (int32_t i = 0; i < in_dim; ++i)
      for (int32_t r = 0; r < rank; ++r) {
        const float v = nd(rng) * a;
        g.down[static_cast<size_t>(i) * rank + r] = v;
        g.up[static_cast<size_t>(r) * in_dim + i] = v;
      }
  };
  lp.keys.resize(static_cast<size_t>(s.G));
  for (int32_t g = 0; g < s.G; ++g) fill(lp.keys[static_cast<size_t>(g)], g * s.D, s.D, rk);
  lp.values.resize(1);
  fill(lp.values[0], 0, s.G * s.D, rv);
  p->layers.push_back(std::move(lp));
  p->finalize_layouts();
  return p;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Flusher {
  void* buf = nullptr;
  size_t bytes = 256u << 20;
  Flusher() { CK(cudaMalloc(&buf, bytes)); }
  ~Flusher() { cudaFree(buf); }
  void flush(cudaStream_t s) { CK(cudaMemsetAsync(buf, 0x5a, bytes, s)); }
};

// Times of reps runs of launch() on the stream, each after the L2 flush, in us.
template <typename Launch>
std::vector<float> flushed_times_us(cudaStream_t stream, Flusher& flusher, cudaEvent_t e0,
                                    cudaEvent_t e1, int reps, Launch&& launch) {
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    flusher.flush(stream);
    CK(cudaEventRecord(e0, stream));
    launch();
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    times.push_back(ms * 1000.0f);
  }
  return times;
}

// Median time of the planned step captured once into a CUDA graph and replayed, by the same
// protocol as the stream's launches (L2 flushed before each timed replay, 3 warm-up replays).
float time_graph_replay(starkv_decode_step* step, const void* dq, void* dout, cudaStream_t stream,
                        Flusher& flusher, cudaEvent_t e0, cudaEvent_t e1, int reps) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  SK(starkv_decode_step_run(step, 0, dq, STARKV_DTYPE_F16, dout, STARKV_DTYPE_F16));
  CK(cudaStreamEndCapture(stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  for (int w = 0; w < 3; ++w) CK(cudaGraphLaunch(exec, stream));
  const std::vector<float> times =
      flushed_times_us(stream, flusher, e0, e1, reps, [&]() { CK(cudaGraphLaunch(exec, stream)); });
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  return median(times);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "starkv_results.jsonl";
  int reps = 25;
  bool quick = false;
  std::string only_shape, only_comp, only_bits;
  int32_t only_batch = 0, only_context = 0;  // 0: the default lists
  double peak_gbs = 0.0;                     // 0: from the device (see below)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc)
      out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc)
      only_shape = argv[++i];
    else if (!std::strcmp(argv[i], "--comp") && i + 1 < argc)
      only_comp = argv[++i];
    else if (!std::strcmp(argv[i], "--bits") && i + 1 < argc)
      only_bits = argv[++i];
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc)
      only_batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--context") && i + 1 < argc)
      only_context = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--peak") && i + 1 < argc)
      peak_gbs = std::atof(argv[++i]);
  }
  FILE* out = std::fopen(out_path.c_str(), "w");
  if (!out) return 1;

  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("# device: %s, %d SMs, L2 %d MB, %.1f GB; driver API %d, runtime %d\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20,
              static_cast<double>(prop.totalGlobalMem) / 1e9, driver, runtime);
  // The HBM peak that the %peak column divides by: --peak GB/s, else the device's memory clock x 2
  // (double data rate) x bus width: an H200 reports 3201 MHz and 6016 bits, 4814 GB/s
  // (bench/results-2026-12-03s22/call7). The tables in bench/RESULTS.md pass the datasheet figure
  // (4800 for an H200, 3350 for an H100 SXM) to merge_results.py.
  if (peak_gbs <= 0.0) {
    int clock_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess &&
        clock_khz > 0 && bus_bits > 0) {
      peak_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
      std::printf(
          "# %%peak: of %.0f GB/s (memory clock %d MHz x 2 x %d-bit bus; --peak to override)\n",
          peak_gbs, clock_khz / 1000, bus_bits);
    } else {
      (void)cudaGetLastError();
      peak_gbs = 3350.0;
      std::printf("# %%peak: of 3350 GB/s (an H100 SXM; the device reports no memory clock)\n");
    }
  } else {
    std::printf("# %%peak: of %.0f GB/s (--peak)\n", peak_gbs);
  }
  std::fprintf(out,
               "{\"kind\":\"env\",\"device\":\"%s\",\"sms\":%d,\"driver\":%d,\"runtime\":%d,"
               "\"peak_gbs\":%.0f}\n",
               prop.name, prop.multiProcessorCount, driver, runtime, peak_gbs);
  // Read by the backend at pool creation: uncompressed layers then take the low-rank kernels.
  const char* no_dense_env = std::getenv("STARKV_NO_DENSE");
  const bool no_dense =
      no_dense_env != nullptr && no_dense_env[0] != '\0' && std::strcmp(no_dense_env, "0") != 0;
  if (no_dense)
    std::printf("# STARKV_NO_DENSE=1: uncompressed (0%%) layers use the low-rank kernels\n");

  const Shape shapes[] = {{"llama2-7b", 32, 32, 128, 10000.0f, false},
                          {"llama3-8b", 32, 8, 128, 500000.0f, false},
                          {"smollm2-135m", 9, 3, 64, 100000.0f, true}};
  const Compression comps[] = {{"75%", 0.80f, 0.70f, false},
                               {"60%", 0.70f, 0.50f, false},
                               {"50%", 0.60f, 0.40f, false},
                               {"0%", 0.0f, 0.0f, true}};
  const Bits bits[] = {{"fp16", 16, 16}, {"4/4", 4, 4}, {"4/3", 3, 4}};
  std::vector<int32_t> batches = {1, 16, 64};
  std::vector<int32_t> contexts = {4096, 16384, 32768, 131072};
  if (quick) {
    batches = {16};
    contexts = {32768};
  }
  if (only_batch > 0) batches = {only_batch};
  if (only_context > 0) contexts = {only_context};
  const double budget_bytes = 30e9;  // cache bytes per configuration

  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CUDA;
  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cp.stream = stream;
  starkv_context* ctx = nullptr;
  SK(starkv_context_create(&cp, &ctx));
  Flusher flusher;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));

  std::printf("%-10s %-4s %-5s %5s %7s %10s %10s %8s %9s %9s %9s\n", "shape", "comp", "bits",
              "batch", "context", "MB/step", "us", "GB/s", "%peak", "app us/t", "graph us");
  for (const Shape& shape : shapes) {
    for (const Compression& comp : comps) {
      for (const Bits& bit : bits) {
        if ((!only_shape.empty() && only_shape != shape.name) ||
            (only_shape.empty() && shape.on_request) ||
            (!only_comp.empty() && only_comp != comp.name) ||
            (!only_bits.empty() && only_bits != bit.name) ||
            (comp.uncompressed && bit.inlier != 16)) {  // uncompressed layers are fp16
          continue;
        }
        int32_t rk = 0, rv = 0;
        auto prof = make_profile(shape, comp, bit, &rk, &rv);
        const int32_t W = prof->layers[0].latent_width();
        const int64_t row_bytes = prof->row_layouts[0].row_bytes;
        starkv_profile* ph = new starkv_profile{prof};
        // Random latents to fill from (reused: timing does not depend on the values).
        const int32_t fill_tokens = 8192;
        std::vector<float> host(static_cast<size_t>(fill_tokens) * W);
        std::mt19937 rng(11);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (size_t i = 0; i < host.size(); ++i) host[i] = nd(rng) * (i % W < 8 ? 4.0f : 1.0f);
        float* dlat = nullptr;
        CK(cudaMalloc(&dlat, host.size() * sizeof(float)));
        CK(cudaMemcpy(dlat, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));

        for (int32_t batch : batches) {
          int32_t max_ctx = 0;
          for (int32_t c : contexts)
            if (static_cast<double>(batch) * c * row_bytes <= budget_bytes)
              max_ctx = std::max(max_ctx, c);
          if (max_ctx == 0) continue;
          const int32_t append_reps = 8;
          starkv_pool_params pp = starkv_pool_params_default();
          pp.page_tokens = 64;
          pp.capacity_tokens = static_cast<int64_t>(batch) * (max_ctx + 64 * (append_reps + 2));
          pp.max_sequences = batch;
          starkv_cache_pool* pool = nullptr;
          if (comp.uncompressed) {
            // With STARKV_NO_DENSE=1 a wide uncompressed layer may not fit the low-rank kernels'
            // tiles: report that and go on with the other configurations.
            const starkv_status st = starkv_cache_pool_create(ctx, ph, &pp, &pool);
            if (st != STARKV_OK) {
              std::printf("%-10s %-4s %-5s %5d not run: %s (%s)\n", shape.name, comp.name, bit.name,
                          batch, starkv_status_string(st), starkv_last_error());
              continue;
            }
          } else {
            SK(starkv_cache_pool_create(ctx, ph, &pp, &pool));
          }
          std::vector<int32_t> seqs(static_cast<size_t>(batch));
          for (int32_t& s : seqs) SK(starkv_seq_create(pool, &s));
          std::vector<int32_t> ids(fill_tokens), pos(fill_tokens);
          for (int32_t s : seqs) {
            for (int32_t t0 = 0; t0 < max_ctx; t0 += fill_tokens) {
              const int32_t n = std::min(fill_tokens, max_ctx - t0);
              for (int32_t i = 0; i < n; ++i) {
                ids[static_cast<size_t>(i)] = s;
                pos[static_cast<size_t>(i)] = t0 + i;
              }
              SK(starkv_append_latents(pool, 0, n, ids.data(), pos.data(), dlat, STARKV_DTYPE_F32));
            }
          }
          SK(starkv_context_synchronize(ctx));

          // Queries and outputs (fp16, as an engine would pass them).
          const size_t qn = static_cast<size_t>(batch) * shape.H * shape.D;
          std::vector<uint16_t> qh(qn);
          for (auto& v : qh) v = static_cast<uint16_t>(0x3c00u ^ (rng() & 0x83ffu));  // +-[1,2)
          void *dq = nullptr, *dout = nullptr;
          CK(cudaMalloc(&dq, qn * 2));
          CK(cudaMalloc(&dout, qn * 2));
          CK(cudaMemcpy(dq, qh.data(), qn * 2, cudaMemcpyHostToDevice));

          starkv_decode_step* step = nullptr;
          SK(starkv_decode_step_create(pool, &step));
          std::vector<float> append_us;
          for (int32_t context : contexts) {
            if (context > max_ctx) continue;
            std::vector<int32_t> lens(static_cast<size_t>(batch), context);
            SK(starkv_decode_step_plan(step, batch, seqs.data(), lens.data()));
            for (int w = 0; w < 3; ++w)
              SK(starkv_decode_step_run(step, 0, dq, STARKV_DTYPE_F16, dout, STARKV_DTYPE_F16));
            const std::vector<float> times = flushed_times_us(stream, flusher, e0, e1, reps, [&]() {
              SK(starkv_decode_step_run(step, 0, dq, STARKV_DTYPE_F16, dout, STARKV_DTYPE_F16));
            });
            const float us = median(times);
            // The same step replayed from a CUDA graph, as an engine's decode loop runs it: the
            // step's launches follow each other without the stream's per-launch gaps.
            const float graph_us = time_graph_replay(step, dq, dout, stream, flusher, e0, e1, reps);
            const double bytes = static_cast<double>(batch) * context * row_bytes;
            const double gbs = bytes / (us * 1e-6) / 1e9;
            std::printf("%-10s %-4s %-5s %5d %7d %10.1f %10.1f %8.0f %8.1f%% %9s %9.1f\n",
                        shape.name, comp.name, bit.name, batch, context, bytes / 1e6, us, gbs,
                        100.0 * gbs / peak_gbs, "", graph_us);
            std::fprintf(
                out,
                "{\"kind\":\"starkv\",\"shape\":\"%s\",\"H\":%d,\"G\":%d,\"D\":%d,"
                "\"compression\":\"%s\",\"bits\":\"%s\",\"key_rank\":%d,\"value_rank\":%d,"
                "\"row_bytes\":%lld,\"batch\":%d,\"context\":%d,\"bytes\":%.0f,\"us\":%.2f,"
                "\"us_min\":%.2f,\"us_graph\":%.2f%s}\n",
                shape.name, shape.H, shape.G, shape.D, comp.name, bit.name, rk, rv,
                static_cast<long long>(row_bytes), batch, context, bytes, us,
                *std::min_element(times.begin(), times.end()), graph_us,
                comp.uncompressed && no_dense ? ",\"no_dense\":true" : "");
            std::fflush(out);
          }

          // Append: one new token per sequence (a decode step's append), pre-RoPE fp16 K and V.
          {
            const size_t kvn = static_cast<size_t>(batch) * shape.G * shape.D;
            std::vector<uint16_t> kvh(kvn);
            for (auto& v : kvh) v = static_cast<uint16_t>(0x3800u ^ (rng() & 0x83ffu));
            void *dk = nullptr, *dv = nullptr;
            CK(cudaMalloc(&dk, kvn * 2));
            CK(cudaMalloc(&dv, kvn * 2));
            CK(cudaMemcpy(dk, kvh.data(), kvn * 2, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dv, kvh.data(), kvn * 2, cudaMemcpyHostToDevice));
            std::vector<int32_t> apos(static_cast<size_t>(batch), max_ctx);
            // The call's time on the stream from an idle GPU (the host's work inside the call
            // counts: the GPU waits for it), and the host's part of it alone.
            std::vector<float> times, host_times;
            for (int r = 0; r < append_reps; ++r) {
              CK(cudaEventRecord(e0, stream));
              const auto h0 = std::chrono::steady_clock::now();
              SK(starkv_append(pool, 0, batch, seqs.data(), apos.data(), dk, dv, STARKV_DTYPE_F16));
              const auto h1 = std::chrono::steady_clock::now();
              CK(cudaEventRecord(e1, stream));
              CK(cudaEventSynchronize(e1));
              float ms = 0;
              CK(cudaEventElapsedTime(&ms, e0, e1));
              if (r > 0) {
                times.push_back(ms * 1000.0f);
                host_times.push_back(std::chrono::duration<float, std::micro>(h1 - h0).count());
              }
              for (auto& p : apos) ++p;
            }
            const float us = median(times), host_us = median(host_times);
            std::printf(
                "%-10s %-4s %-5s %5d append: %.1f us per call, %.2f us/token (host %.1f us)\n",
                shape.name, comp.name, bit.name, batch, us, us / batch, host_us);
            std::fprintf(
                out,
                "{\"kind\":\"append\",\"shape\":\"%s\",\"compression\":\"%s\",\"bits\":\"%s\","
                "\"batch\":%d,\"us_call\":%.2f,\"us_token\":%.3f,\"us_host\":%.2f}\n",
                shape.name, comp.name, bit.name, batch, us, us / batch, host_us);
            std::fflush(out);
            cudaFree(dk);
            cudaFree(dv);
          }
          starkv_decode_step_destroy(step);
          cudaFree(dq);
          cudaFree(dout);
          starkv_cache_pool_destroy(pool);
        }
        cudaFree(dlat);
        starkv_profile_destroy(ph);
      }
    }
  }
  starkv_context_destroy(ctx);
  cudaStreamDestroy(stream);
  std::fclose(out);
  return 0;
}
