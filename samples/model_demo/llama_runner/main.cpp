// llama_runner: a small Llama-architecture decoder for the starkv model demo. It loads the
// fp16 safetensors + config.json that prepare_model.py writes, runs on the CPU in fp32 with
// cblas_sgemm or (--device cuda, in CUDA builds) on a GPU with cuBLAS, and measures perplexity
// (sliding windows over a token file) or greedy-generates from a prompt of token ids, reporting
// the KV cache's bytes per token and total memory. On the GPU, `throughput` measures batched
// decode speed and `compare` checks the GPU model against the CPU one.
//
// The KV cache is behind the KvAttention interface (kv_attention.h); make_kv_attention() below
// chooses the dense baseline or starkv (through its public C ABI, starkv_kv_attention.h). The
// `calib` command records the pre-RoPE keys/values and post-RoPE queries of a calibration text
// for `starkv build --calib-kv`.

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "calibration_recorder.h"
#include "dense_kv_attention.h"
#include "greedy_generation.h"
#include "llama_forward.h"
#include "model_config.h"
#include "model_weights.h"
#include "perplexity.h"
#include "rope.h"
#include "starkv_kv_attention.h"
#include "token_io.h"

#ifdef LLAMA_RUNNER_CUDA
#include "cuda_causal_lm.h"
#include "cuda_session.h"
#include "cuda_starkv_kv_cache.h"
#include "decode_throughput.h"
#endif

using namespace llama_runner;

namespace {

const char* kUsage = R"(usage: llama_runner <command> [options]

commands:
  ppl        perplexity of a token file, with sliding windows
  generate   greedy generation from a prompt of token ids
  info       model shape and KV cache sizes
  calib      record calibration samples for `starkv build --calib-kv`
  throughput (CUDA) decode throughput of a batch at a context length
  compare    (CUDA) logits of the GPU model vs the CPU model on the same tokens

common options:
  --model-dir DIR      config.json + model.safetensors
                       (default: ${STARKV_CACHE:-~/.cache/starkv}/smollm2-135m)
  --kv KIND            KV cache: dense (= dense-fp16, the default), dense-fp32, or
                       starkv:PROFILE (a .starkv profile built for this model by `starkv build`)
  --rope-style STYLE   override config.json's rope_style: neox or gptj (a wrong one gives a
                       garbage perplexity, which is how the weight layout is checked)
  --threads N          OpenBLAS threads and starkv's CPU workers (default: all cores)
  --device DEV         cpu (default) or cuda: where the model and its KV cache run
  --cuda-device N      CUDA device ordinal (default 0)
  --synthetic-weights SEED
                       random weights of config.json's shape instead of model.safetensors
                       (speed runs and CPU/GPU checks on machines without the checkpoint)
  --json               also print the results as one JSON line starting with "RESULT "
  -h, --help           this text

ppl options:
  --tokens FILE        int32 token ids (default: MODEL_DIR/eval_tokens.bin)
  --max-tokens N       use only the first N tokens of the file (default: all)
  --window W           tokens per window, i.e. the context length (default: 512)
  --stride S           tokens between window starts (default: W/2)
  --quiet              no per-window progress

generate options:
  --prompt-ids LIST    comma-separated prompt token ids, e.g. 1,504,3
  --prompt-file FILE   prompt as int32 token ids (alternative to --prompt-ids)
  --n N                tokens to generate (default: 32)
  --stop-at-eos        stop at the model's eos token
  --out FILE           also write the generated ids as int32 to FILE

calib options (dense fp32 cache):
  --tokens FILE        int32 token ids (default: MODEL_DIR/calib_tokens.bin, which is disjoint
                       from eval_tokens.bin)
  --max-tokens N       tokens to run (default: 4096, starkv build's default
                       max_calibration_tokens)
  --calib-window W     record independent windows of W tokens, each at positions 0..W-1
                       (default 256; 0 = one window of N tokens). Short windows weigh each
                       window's first token, the attention sink, as short sequences do: on
                       SmolLM2 at 75% they gave perplexity 84.9 vs 97.7 for one 4096-token
                       window (2,048 eval tokens, 256-token windows; dense 61.6)
  --out FILE           the safetensors file to write: layers.{i}.k and .v [N, G*D] (pre-RoPE
                       keys, values), layers.{i}.q [N, H*D] (post-RoPE queries), fp16

throughput options (CUDA; dense fp16 baseline or starkv):
  --context C          tokens cached per sequence before the timed steps (default 8192)
  --batch B            sequences decoded together (default 0: the most that fit the budget)
  --kv-budget-gib X    KV cache memory for --batch 0 (default 16)
  --steps N            timed decode steps (default 16)

compare options (CUDA): --tokens/--max-tokens as for ppl (default: 256 tokens; random ids
  with --synthetic-weights and no --tokens); runs the tokens as one window through the CPU and
  the GPU model with the same --kv kind and fails (exit 1) if the GPU's logits differ from the
  CPU's by more than --max-rel-rms (default 0.02) in relative RMS.

GPU commands exit with status 77 when the machine has no usable CUDA device.

Token ids come from tokenizer_cli.py (encode/decode) next to prepare_model.py.
)";

struct Options {
  std::string command;
  std::string model_dir;
  std::string kv = "dense-fp16";
  std::string rope_style;  // empty: from config.json
  int threads = 0;
  bool json = false;
  // ppl
  std::string tokens_file;
  int64_t max_tokens = 0;
  int window = 512;
  int calib_window = 256;  // calib: tokens per recorded window (0: all in one)
  int stride = 0;
  bool quiet = false;
  // generate
  std::string prompt_ids, prompt_file, out_file;
  int n_new = 32;
  bool stop_at_eos = false;
  // device
  std::string device = "cpu";
  int cuda_device = 0;
  int64_t synthetic_seed = -1;  // -1: load model.safetensors
  // throughput
  int context = 8192;
  int batch = 0;
  double kv_budget_gib = 16.0;
  int steps = 16;
  // compare
  double max_rel_rms = 0.02;
};

std::string default_model_dir() {
  const char* cache = std::getenv("STARKV_CACHE");
  if (cache && *cache) return std::string(cache) + "/smollm2-135m";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/starkv/smollm2-135m";
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "llama_runner: %s\n(run llama_runner --help for usage)\n", msg.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  o.model_dir = default_model_dir();
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    auto int_value = [&]() -> int64_t {
      const std::string v = value();
      char* end = nullptr;
      const long long x = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end) usage_error(a + " needs an integer, got '" + v + "'");
      return x;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--model-dir") o.model_dir = value();
    else if (a == "--kv") o.kv = value();
    else if (a == "--rope-style") o.rope_style = value();
    else if (a == "--threads") o.threads = int(int_value());
    else if (a == "--json") o.json = true;
    else if (a == "--tokens") o.tokens_file = value();
    else if (a == "--max-tokens") o.max_tokens = int_value();
    else if (a == "--window") o.window = int(int_value());
    else if (a == "--calib-window") o.calib_window = int(int_value());
    else if (a == "--stride") o.stride = int(int_value());
    else if (a == "--quiet") o.quiet = true;
    else if (a == "--prompt-ids") o.prompt_ids = value();
    else if (a == "--prompt-file") o.prompt_file = value();
    else if (a == "--out") o.out_file = value();
    else if (a == "--n") o.n_new = int(int_value());
    else if (a == "--stop-at-eos") o.stop_at_eos = true;
    else if (a == "--device") o.device = value();
    else if (a == "--cuda-device") o.cuda_device = int(int_value());
    else if (a == "--synthetic-weights") o.synthetic_seed = int_value();
    else if (a == "--context") o.context = int(int_value());
    else if (a == "--batch") o.batch = int(int_value());
    else if (a == "--steps") o.steps = int(int_value());
    else if (a == "--max-rel-rms") {
      const std::string v = value();
      char* end = nullptr;
      o.max_rel_rms = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(o.max_rel_rms > 0.0)) usage_error("--max-rel-rms needs a positive number");
    }
    else if (a == "--kv-budget-gib") {
      const std::string v = value();
      char* end = nullptr;
      o.kv_budget_gib = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(o.kv_budget_gib > 0.0)) usage_error("--kv-budget-gib needs a positive number");
    }
    else if (!a.empty() && a[0] == '-') usage_error("unknown option " + a);
    else if (o.command.empty()) o.command = a;
    else usage_error("unexpected argument " + a);
  }
  if (o.command.empty()) usage_error("no command given");
  if (o.command != "ppl" && o.command != "generate" && o.command != "info" &&
      o.command != "calib" && o.command != "throughput" && o.command != "compare")
    usage_error("unknown command " + o.command);
  if (o.device != "cpu" && o.device != "cuda") usage_error("--device must be cpu or cuda");
#ifndef LLAMA_RUNNER_CUDA
  if (o.device == "cuda" || o.command == "throughput" || o.command == "compare")
    usage_error("this llama_runner was built without CUDA");
#endif
  if (o.command == "throughput" || o.command == "compare") o.device = "cuda";
  if (o.context < 1 || o.batch < 0 || o.steps < 1) usage_error("--context, --steps must be >= 1, --batch >= 0");
  if (o.command == "compare" && o.max_tokens == 0) o.max_tokens = 256;
  if (o.window < 2) usage_error("--window must be at least 2");
  if (o.calib_window < 0) usage_error("--calib-window must not be negative");
  if (o.stride == 0) o.stride = std::max(1, o.window / 2);
  if (o.stride < 1 || o.stride > o.window) usage_error("--stride must be in [1, window]");
  if (o.n_new < 0) usage_error("--n must not be negative");
  if (o.command == "calib" && o.out_file.empty()) usage_error("calib needs --out FILE");
  if (o.command == "calib" && o.max_tokens == 0) o.max_tokens = 4096;
  return o;
}

// All parallelism is OpenBLAS's: the GEMMs are nearly all the work. (A second thread pool,
// e.g. OpenMP for the element-wise loops, fights OpenBLAS's spinning threads for 2 cores and
// was several times slower here.)
void set_threads(int threads) {
  if (threads <= 0) return;
#ifdef LLAMA_RUNNER_OPENBLAS
  openblas_set_num_threads(threads);
#else
  std::fprintf(stderr, "llama_runner: --threads needs OpenBLAS; ignored\n");
#endif
}

std::string blas_description() {
#ifdef LLAMA_RUNNER_OPENBLAS
  return std::string(openblas_get_config()) + ", " +
         std::to_string(openblas_get_num_threads()) + " threads";
#else
  return "CBLAS (not OpenBLAS)";
#endif
}

// The KV cache implementations this runner knows. reserve_tokens is the longest sequence the
// command will hold (a window, or prompt + generated tokens).
std::unique_ptr<KvAttention> make_kv_attention(const std::string& kind, const ModelConfig& cfg,
                                               const Rope& rope, int64_t reserve_tokens,
                                               int threads) {
  if (kind == "dense" || kind == "dense-fp16" || kind == "dense-fp32") {
    const KvStorage storage = kind == "dense" ? KvStorage::kFp16 : parse_kv_storage(kind.substr(6));
    return std::make_unique<DenseKvAttention>(cfg, rope, storage, reserve_tokens);
  }
  const std::string prefix = "starkv:";
  if (kind.compare(0, prefix.size(), prefix) == 0 && kind.size() > prefix.size()) {
    return std::make_unique<StarkvKvAttention>(kind.substr(prefix.size()), cfg, reserve_tokens,
                                               threads);
  }
  throw std::runtime_error("unknown --kv kind '" + kind +
                           "' (expected dense, dense-fp16, dense-fp32 or starkv:PROFILE)");
}

// The starkv profile behind a cache, if it is one.
const starkv_profile_info* starkv_info_of(const CausalLm& lm) {
  if (const auto* cpu = dynamic_cast<const CpuCausalLm*>(&lm)) {
    if (const auto* s = dynamic_cast<const StarkvKvAttention*>(&cpu->kv())) return &s->profile_info();
  }
#ifdef LLAMA_RUNNER_CUDA
  if (const auto* gpu = dynamic_cast<const CudaCausalLm*>(&lm)) {
    if (const auto* s = dynamic_cast<const CudaStarkvKvCache*>(&gpu->kv())) return &s->profile_info();
  }
#endif
  return nullptr;
}

// What the scripts need to label a result: the cache's cost and, for starkv, its profile.
nlohmann::json describe_kv(const std::string& description, size_t bytes_per_token,
                           const starkv_profile_info* p) {
  nlohmann::json j = {{"kv_description", description}, {"kv_bytes_per_token", bytes_per_token}};
  if (p != nullptr) {
    j.update({{"dense_bytes_per_token", p->dense_bytes_per_token},
              {"compression", p->compression},
              {"compression_factor", p->compression_factor},
              {"low_rank_compression", p->low_rank_compression},
              {"low_rank_compression_compressed_layers", p->low_rank_compression_compressed_layers},
              {"latent_channels_per_token", p->latent_channels_per_token},
              {"inlier_bits", p->inlier_bits},
              {"outlier_bits", p->outlier_bits},
              {"n_uncompressed_layers", p->n_uncompressed_layers}});
  }
  return j;
}

nlohmann::json describe_kv(const CausalLm& lm) {
  return describe_kv(lm.kv_description(), lm.kv_bytes_per_token(), starkv_info_of(lm));
}

void print_kv(const std::string& description, size_t bytes_per_token, int n_layers,
              size_t dense_fp16_bytes) {
  std::printf("kv cache   %s: %zu bytes per token (%.1f per layer; dense fp16 %zu, %.2fx)\n",
              description.c_str(), bytes_per_token, double(bytes_per_token) / double(n_layers),
              dense_fp16_bytes, double(dense_fp16_bytes) / double(bytes_per_token));
}

// The model and KV cache a ppl or generate command runs on: the CPU model over a KvAttention,
// or the CUDA model over a CudaKvCache, both seen as a CausalLm holding one sequence of up to
// reserve_tokens tokens.
struct LmSetup {
  std::unique_ptr<KvAttention> cpu_kv;
  std::unique_ptr<CpuCausalLm> cpu_lm;
#ifdef LLAMA_RUNNER_CUDA
  std::unique_ptr<CudaSession> cuda;
  std::unique_ptr<CudaKvCache> cuda_kv;
  std::unique_ptr<CudaCausalLm> cuda_lm;
#endif
  CausalLm* lm = nullptr;

  ~LmSetup() {  // the sequence before its cache, the cache before the model
#ifdef LLAMA_RUNNER_CUDA
    cuda_lm.reset();
    cuda_kv.reset();
    cuda.reset();
#endif
  }
};

double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

int64_t parameter_count(const ModelWeights& w) {
  int64_t n = int64_t(w.embed.size() + w.final_norm.size() + w.lm_head.size());
  for (const auto& L : w.layers)
    n += int64_t(L.attn_norm.size() + L.wqkv.size() + L.wo.size() + L.mlp_norm.size() +
                 L.w_gate_up.size() + L.w_down.size());
  return n;
}

// Builds the CausalLm a ppl/generate command runs on (see LmSetup).
void make_lm(const Options& o, const ModelConfig& cfg, const ModelWeights& weights,
             const Rope& rope, LlamaForward& cpu_model, int64_t reserve_tokens, LmSetup& setup) {
  if (o.device == "cpu") {
    setup.cpu_kv = make_kv_attention(o.kv, cfg, rope, reserve_tokens, o.threads);
    setup.cpu_lm = std::make_unique<CpuCausalLm>(cpu_model, *setup.cpu_kv);
    setup.lm = setup.cpu_lm.get();
    return;
  }
#ifdef LLAMA_RUNNER_CUDA
  setup.cuda = std::make_unique<CudaSession>(o.cuda_device, cfg, weights, rope,
                                             int(std::max<int64_t>(reserve_tokens, 1)));
  std::printf("compute    CUDA: %s; fp16 weights, cuBLAS GEMMs with fp32 accumulation\n",
              setup.cuda->device_description().c_str());
  setup.cuda_kv = setup.cuda->make_kv_cache(o.kv, 1, reserve_tokens);
  setup.cuda_lm = std::make_unique<CudaCausalLm>(setup.cuda->model(), *setup.cuda_kv);
  setup.lm = setup.cuda_lm.get();
#else
  (void)weights;
  throw std::runtime_error("this llama_runner was built without CUDA");
#endif
}

#ifdef LLAMA_RUNNER_CUDA
// `throughput`: decode speed of one --kv kind at --context, at --batch or the largest batch the
// --kv-budget-gib budget holds (decode_throughput.h says how the caches are filled).
void run_throughput(const Options& o, const ModelConfig& cfg, const ModelWeights& weights,
                    const Rope& rope, size_t dense_fp16_bytes, nlohmann::json& result) {
  constexpr int kWarmup = 2;
  const int64_t per_sequence = int64_t(o.context) + kWarmup + o.steps;
  CudaSession session(o.cuda_device, cfg, weights, rope, int(per_sequence));
  std::printf("compute    CUDA: %s; fp16 weights, cuBLAS GEMMs with fp32 accumulation\n",
              session.device_description().c_str());
  const size_t seq_bytes = session.bytes_per_sequence(o.kv, per_sequence);
  const double budget = o.kv_budget_gib * 1024.0 * 1024.0 * 1024.0;
  const int64_t fits = int64_t(budget / double(seq_bytes));
  const int batch = o.batch > 0 ? o.batch : int(std::min<int64_t>(fits, 1 << 20));
  if (batch < 1) throw std::runtime_error("not one sequence of this context fits the budget");
  auto kv = session.make_kv_cache(o.kv, batch, per_sequence);
  print_kv(kv->describe(), kv->bytes_per_token(), cfg.n_layers, dense_fp16_bytes);
  std::printf("throughput batch %d x context %d (%s), %d timed steps after %d warm-up; one "
              "sequence reserves %.2f MiB, so %lld fit in %.1f GiB\n",
              batch, o.context, o.batch > 0 ? "as asked" : "the most that fit the budget",
              o.steps, kWarmup, mib(seq_bytes), (long long)fits, o.kv_budget_gib);
  std::fflush(stdout);
  ThroughputOptions t;
  t.batch = batch;
  t.context = o.context;
  t.steps = o.steps;
  t.warmup = kWarmup;
  const ThroughputResult r = measure_decode_throughput(session.model(), *kv, t);
  std::printf("result     %.1f tokens/s, %.3f ms per decode step (attention alone %.3f ms over "
              "%d layers, %.1f%% of the step); cache filled in %.1f s\n",
              r.tokens_per_second, r.ms_per_step, r.attention_ms_per_step, cfg.n_layers,
              100.0 * r.attention_ms_per_step / r.ms_per_step, r.fill_seconds);
  std::printf("memory     KV cache %.1f MiB allocated, %.1f MiB in use; attention reads %.1f MiB "
              "per step (%.0f GB/s over the attention time); weights %.1f MiB\n",
              mib(r.kv_bytes_allocated), mib(r.kv_bytes_in_use), r.kv_bytes_read_per_step / 1048576.0,
              r.kv_bytes_read_per_step / (r.attention_ms_per_step * 1e6),
              mib(session.model().weight_bytes()));
  result.update({{"device", session.device_description()}, {"batch", batch},
                 {"context", o.context}, {"steps", o.steps}, {"kv_budget_gib", o.kv_budget_gib},
                 {"sequences_fit_budget", fits}, {"bytes_per_sequence", seq_bytes},
                 {"tokens_per_second", r.tokens_per_second}, {"ms_per_step", r.ms_per_step},
                 {"attention_ms_per_step", r.attention_ms_per_step},
                 {"kv_bytes_read_per_step", r.kv_bytes_read_per_step},
                 {"kv_bytes_allocated", r.kv_bytes_allocated}, {"fill_seconds", r.fill_seconds}});
  const starkv_profile_info* info = nullptr;
  if (const auto* s = dynamic_cast<const CudaStarkvKvCache*>(kv.get())) info = &s->profile_info();
  result.update(describe_kv(kv->describe(), kv->bytes_per_token(), info));
}

// `compare`: the same tokens through the CPU model and the GPU model (same --kv kind), one window;
// reports how far the GPU's logits are from the CPU's (fp16 weights and activations against
// fp32) and how often their argmax agrees.
void run_compare(const Options& o, const ModelConfig& cfg, const ModelWeights& weights,
                 const Rope& rope, LlamaForward& cpu_model, nlohmann::json& result) {
  const std::string path = o.tokens_file.empty() ? o.model_dir + "/eval_tokens.bin" : o.tokens_file;
  std::vector<int32_t> tokens;
  if (o.tokens_file.empty() && o.synthetic_seed >= 0) {
    // A synthetic model may have no token file beside it: random ids do.
    uint64_t x = uint64_t(o.synthetic_seed) * 2654435761u + 1;
    for (int64_t i = 0; i < o.max_tokens; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      tokens.push_back(int32_t((x >> 33) % uint64_t(cfg.vocab_size)));
    }
  } else {
    tokens = read_token_file(path);
    if (int64_t(tokens.size()) > o.max_tokens) tokens.resize(size_t(o.max_tokens));
  }
  const int n = int(tokens.size());
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) positions[size_t(i)] = i;
  Options cpu_options = o;
  cpu_options.device = "cpu";
  LmSetup cpu, gpu;
  make_lm(cpu_options, cfg, weights, rope, cpu_model, n, cpu);
  make_lm(o, cfg, weights, rope, cpu_model, n, gpu);
  cpu.lm->forward(tokens.data(), positions.data(), n);
  gpu.lm->forward(tokens.data(), positions.data(), n);
  const int V = cfg.vocab_size;
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
  double max_diff = 0.0, max_logit = 0.0, sum_sq_diff = 0.0, sum_sq = 0.0;
  int agree = 0;
  for (int i = 0; i < n; ++i) {
    cpu.lm->logits(i, 1, a.data());
    gpu.lm->logits(i, 1, b.data());
    for (int j = 0; j < V; ++j) {
      const double d = double(b[size_t(j)]) - double(a[size_t(j)]);
      max_diff = std::max(max_diff, std::fabs(d));
      max_logit = std::max(max_logit, std::fabs(double(a[size_t(j)])));
      sum_sq_diff += d * d;
      sum_sq += double(a[size_t(j)]) * a[size_t(j)];
    }
    agree += std::max_element(a.begin(), a.end()) - a.begin() ==
             std::max_element(b.begin(), b.end()) - b.begin();
  }
  const double rel_rms = std::sqrt(sum_sq_diff / sum_sq);
  std::printf("compare    %d tokens, kv %s: GPU vs CPU logits max |diff| %.4g (largest |logit| "
              "%.4g), relative RMS %.3g; argmax agrees on %d of %d rows\n",
              n, gpu.lm->kv_description().c_str(), max_diff, max_logit, rel_rms, agree, n);
  result.update({{"tokens", n}, {"max_abs_diff", max_diff}, {"max_abs_logit", max_logit},
                 {"relative_rms_diff", rel_rms}, {"argmax_agree", agree}});
  if (!(rel_rms <= o.max_rel_rms)) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "GPU logits differ from the CPU's by %.3g relative RMS, above "
                  "--max-rel-rms %.3g", rel_rms, o.max_rel_rms);
    throw std::runtime_error(msg);
  }
}
#endif

int run(const Options& o) {
  set_threads(o.threads);
  ModelConfig cfg = load_model_config(o.model_dir + "/config.json");
  if (!o.rope_style.empty()) cfg.rope_style = parse_rope_style(o.rope_style);

  const auto t_load = std::chrono::steady_clock::now();
  const ModelWeights weights =
      o.synthetic_seed >= 0 ? synthetic_model_weights(cfg, uint64_t(o.synthetic_seed))
                            : load_model_weights(o.model_dir + "/model.safetensors", cfg);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const Rope rope(cfg, cfg.rope_style, std::max(cfg.max_positions, o.window));
  LlamaForward model(cfg, weights, rope);

  std::printf("model      %s: %d layers, d=%d, H=%d, G=%d, D=%d, F=%d, vocab=%d, rope %s "
              "theta=%g, %s lm_head, %.1fM parameters%s, loaded in %.1f s\n",
              o.model_dir.c_str(), cfg.n_layers, cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads,
              cfg.head_dim, cfg.intermediate_size, cfg.vocab_size,
              rope_style_name(cfg.rope_style), cfg.rope_theta,
              weights.lm_head.empty() ? "tied" : "separate", double(parameter_count(weights)) / 1e6,
              o.synthetic_seed >= 0 ? " (SYNTHETIC random weights)" : "", load_s);
  if (o.device == "cpu")
    std::printf("compute    fp32 on CPU, %s, %u hardware threads\n", blas_description().c_str(),
                std::thread::hardware_concurrency());

  nlohmann::json result = {{"command", o.command}, {"kv", o.kv}, {"device", o.device},
                           {"synthetic_weights", o.synthetic_seed >= 0},
                           {"rope_style", rope_style_name(cfg.rope_style)}};
  const size_t dense_fp16_bytes = size_t(2) * 2 * size_t(cfg.n_layers) * size_t(cfg.n_kv_heads) *
                                  size_t(cfg.head_dim);

  if (o.command == "ppl") {
    const std::string path = o.tokens_file.empty() ? o.model_dir + "/eval_tokens.bin"
                                                   : o.tokens_file;
    std::vector<int32_t> tokens = read_token_file(path);
    if (o.max_tokens > 0 && int64_t(tokens.size()) > o.max_tokens) tokens.resize(size_t(o.max_tokens));
    LmSetup setup;
    make_lm(o, cfg, weights, rope, model, o.window, setup);
    CausalLm& lm = *setup.lm;
    print_kv(lm.kv_description(), lm.kv_bytes_per_token(), cfg.n_layers, dense_fp16_bytes);
    std::printf("ppl        %s: %zu tokens, window %d, stride %d\n", path.c_str(), tokens.size(),
                o.window, o.stride);
    std::fflush(stdout);
    PerplexityProgress progress = nullptr;
    if (!o.quiet)
      progress = [](int64_t windows, int64_t scored, double nll) {
        std::fprintf(stderr, "  window %lld: %lld tokens scored, running ppl %.4f\n",
                     (long long)windows, (long long)scored, std::exp(nll));
      };
    const PerplexityResult r = evaluate_perplexity(lm, tokens, o.window, o.stride, progress);
    std::printf("result     tokens scored %lld in %lld windows, mean NLL %.5f nats, "
                "perplexity %.4f\n",
                (long long)r.tokens_scored, (long long)r.windows, r.mean_nll, r.perplexity);
    std::printf("memory     KV cache %.3f MiB allocated, %.3f MiB in use for the largest window "
                "of %lld tokens (%zu bytes/token; dense fp16 would hold it in %.3f MiB)\n",
                mib(r.kv_bytes_peak), mib(r.kv_bytes_in_use_peak), (long long)r.kv_tokens_peak,
                lm.kv_bytes_per_token(), mib(size_t(r.kv_tokens_peak) * dense_fp16_bytes));
    std::printf("time       %.1f s, %.1f tokens/s processed, %.1f scored tokens/s\n", r.seconds,
                double(r.tokens_processed) / r.seconds, double(r.tokens_scored) / r.seconds);
    result.update({{"tokens_file", path}, {"window", o.window}, {"stride", o.stride},
                   {"tokens_scored", r.tokens_scored}, {"windows", r.windows},
                   {"mean_nll", r.mean_nll}, {"perplexity", r.perplexity},
                   {"seconds", r.seconds}, {"kv_bytes_allocated", r.kv_bytes_peak},
                   {"kv_bytes_in_use", r.kv_bytes_in_use_peak}});
    result.update(describe_kv(lm));
  } else if (o.command == "generate") {
    std::vector<int32_t> prompt;
    if (!o.prompt_file.empty()) prompt = read_token_file(o.prompt_file);
    if (!o.prompt_ids.empty()) {
      const auto more = parse_token_list(o.prompt_ids);
      prompt.insert(prompt.end(), more.begin(), more.end());
    }
    if (prompt.empty()) usage_error("generate needs --prompt-ids or --prompt-file");
    LmSetup setup;
    make_lm(o, cfg, weights, rope, model, int64_t(prompt.size()) + o.n_new, setup);
    CausalLm& lm = *setup.lm;
    print_kv(lm.kv_description(), lm.kv_bytes_per_token(), cfg.n_layers, dense_fp16_bytes);
    const GenerationResult g = greedy_generate(lm, prompt, o.n_new,
                                               o.stop_at_eos ? cfg.eos_token_id : -1);
    std::printf("prompt     %zu tokens: %s\n", prompt.size(), format_token_list(prompt).c_str());
    std::printf("generated  %zu tokens: %s\n", g.tokens.size(), format_token_list(g.tokens).c_str());
    const size_t steps = g.tokens.size() > 1 ? g.tokens.size() - 1 : 0;
    std::printf("time       prefill %.3f s (%.1f tokens/s), decode %.3f s for %zu steps "
                "(%.1f tokens/s)\n",
                g.prefill_seconds, double(prompt.size()) / g.prefill_seconds, g.decode_seconds, steps,
                steps ? double(steps) / g.decode_seconds : 0.0);
    std::printf("memory     KV cache %lld tokens x %zu bytes/token, %.3f MiB in use, %.3f MiB "
                "allocated\n",
                (long long)g.cache_tokens, lm.kv_bytes_per_token(), mib(lm.kv_bytes_in_use()),
                mib(g.kv_bytes));
    if (!o.out_file.empty()) write_token_file(o.out_file, g.tokens);
    result.update({{"prompt", prompt}, {"generated", g.tokens},
                   {"prefill_seconds", g.prefill_seconds}, {"decode_seconds", g.decode_seconds},
                   {"kv_bytes_allocated", g.kv_bytes}, {"kv_bytes_in_use", lm.kv_bytes_in_use()}});
    result.update(describe_kv(lm));
  } else if (o.command == "throughput" || o.command == "compare") {
#ifdef LLAMA_RUNNER_CUDA
    if (o.command == "throughput") run_throughput(o, cfg, weights, rope, dense_fp16_bytes, result);
    else run_compare(o, cfg, weights, rope, model, result);
#endif
  } else if (o.command == "calib") {
    const std::string path = o.tokens_file.empty() ? o.model_dir + "/calib_tokens.bin"
                                                   : o.tokens_file;
    std::vector<int32_t> tokens = read_token_file(path);
    if (int64_t(tokens.size()) < o.max_tokens)
      throw std::runtime_error(path + " holds " + std::to_string(tokens.size()) +
                               " tokens; --max-tokens asks for " + std::to_string(o.max_tokens));
    tokens.resize(size_t(o.max_tokens));
    // The samples are what an exact cache sees, so the model runs on the dense fp32 one.
    DenseKvAttention dense(cfg, rope, KvStorage::kFp32, int64_t(tokens.size()));
    CalibrationRecorder recorder(dense, cfg.n_layers, cfg.n_kv_heads * cfg.head_dim,
                                 cfg.n_heads * cfg.head_dim);
    // --calib-window W records independent windows of W tokens, each at positions 0..W-1, the
    // way the cache is used when every sequence is short: each window has its own first token
    // (the attention sink), so the samples weigh it as deployment does. Default: one window.
    const int64_t window = o.calib_window > 0 ? o.calib_window : int64_t(tokens.size());
    std::vector<int32_t> positions(static_cast<size_t>(window));
    for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t(i);
    const auto t0 = std::chrono::steady_clock::now();
    recorder.reset();
    for (int64_t start = 0; start < int64_t(tokens.size()); start += window) {
      const int n = int(std::min<int64_t>(window, int64_t(tokens.size()) - start));
      dense.reset();  // a fresh sequence; the recorder keeps what it has recorded
      model.forward(tokens.data() + start, positions.data(), n, recorder);
    }
    recorder.save(o.out_file);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("calib      %s: %lld tokens in windows of %lld -> %s (layers.{i}.k/.v [%lld, %d], "
                ".q [%lld, %d], fp16) in %.1f s\n",
                path.c_str(), (long long)recorder.tokens(), (long long)window, o.out_file.c_str(),
                (long long)recorder.tokens(), cfg.n_kv_heads * cfg.head_dim,
                (long long)recorder.tokens(), cfg.n_heads * cfg.head_dim, secs);
    result.update({{"tokens_file", path}, {"tokens", recorder.tokens()}, {"out", o.out_file},
                   {"seconds", secs}});
  } else {  // info
    auto kv = make_kv_attention(o.kv, cfg, rope, o.window, o.threads);
    print_kv(kv->describe(), kv->bytes_per_token(), cfg.n_layers, dense_fp16_bytes);
    std::printf("memory     a %d-token context needs %.3f MiB of KV cache, the model's %d-token "
                "maximum %.3f MiB (dense fp16: %.3f and %.3f MiB)\n",
                o.window, mib(size_t(o.window) * kv->bytes_per_token()), cfg.max_positions,
                mib(size_t(cfg.max_positions) * kv->bytes_per_token()),
                mib(size_t(o.window) * dense_fp16_bytes),
                mib(size_t(cfg.max_positions) * dense_fp16_bytes));
    const auto* starkv_kv = dynamic_cast<const StarkvKvAttention*>(kv.get());
    result.update(describe_kv(kv->describe(), kv->bytes_per_token(),
                              starkv_kv ? &starkv_kv->profile_info() : nullptr));
  }
  if (o.json) std::printf("RESULT %s\n", result.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  try {
    return run(o);
#ifdef LLAMA_RUNNER_CUDA
  } catch (const NoCudaDevice& e) {
    std::fprintf(stderr, "llama_runner: %s\n", e.what());
    return 77;
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_runner: %s\n", e.what());
    return 1;
  }
}
