// llama_runner: a small Llama-architecture decoder for the starkv model demo. It loads the
// fp16 safetensors + config.json that prepare_model.py writes, runs on the CPU in fp32 with
// cblas_sgemm, and measures perplexity (sliding windows over a token file) or greedy-generates
// from a prompt of token ids, reporting the KV cache's bytes per token and total memory.
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

using namespace llama_runner;

namespace {

const char* kUsage = R"(usage: llama_runner <command> [options]

commands:
  ppl        perplexity of a token file, with sliding windows
  generate   greedy generation from a prompt of token ids
  info       model shape and KV cache sizes
  calib      record calibration samples for `starkv build --calib-kv`

common options:
  --model-dir DIR      config.json + model.safetensors
                       (default: ${STARKV_CACHE:-~/.cache/starkv}/smollm2-135m)
  --kv KIND            KV cache: dense (= dense-fp16, the default), dense-fp32, or
                       starkv:PROFILE (a .starkv profile built for this model by `starkv build`)
  --rope-style STYLE   override config.json's rope_style: neox or gptj (a wrong one gives a
                       garbage perplexity, which is how the weight layout is checked)
  --threads N          OpenBLAS threads and starkv's CPU workers (default: all cores)
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
    else if (!a.empty() && a[0] == '-') usage_error("unknown option " + a);
    else if (o.command.empty()) o.command = a;
    else usage_error("unexpected argument " + a);
  }
  if (o.command.empty()) usage_error("no command given");
  if (o.command != "ppl" && o.command != "generate" && o.command != "info" &&
      o.command != "calib")
    usage_error("unknown command " + o.command);
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

// What the scripts need to label a result: the cache's cost and, for starkv, its profile.
nlohmann::json describe_kv(const KvAttention& kv) {
  nlohmann::json j = {{"kv_description", kv.describe()},
                      {"kv_bytes_per_token", kv.bytes_per_token()}};
  if (const auto* s = dynamic_cast<const StarkvKvAttention*>(&kv)) {
    const starkv_profile_info& p = s->profile_info();
    j.update({{"dense_bytes_per_token", p.dense_bytes_per_token},
              {"compression", p.compression},
              {"compression_factor", p.compression_factor},
              {"low_rank_compression", p.low_rank_compression},
              {"low_rank_compression_compressed_layers", p.low_rank_compression_compressed_layers},
              {"latent_channels_per_token", p.latent_channels_per_token},
              {"inlier_bits", p.inlier_bits},
              {"outlier_bits", p.outlier_bits},
              {"n_uncompressed_layers", p.n_uncompressed_layers}});
  }
  return j;
}

void print_kv(const KvAttention& kv, int n_layers, size_t dense_fp16_bytes) {
  std::printf("kv cache   %s: %zu bytes per token (%.1f per layer; dense fp16 %zu, %.2fx)\n",
              kv.describe().c_str(), kv.bytes_per_token(),
              double(kv.bytes_per_token()) / double(n_layers), dense_fp16_bytes,
              double(dense_fp16_bytes) / double(kv.bytes_per_token()));
}

double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

int64_t parameter_count(const ModelWeights& w) {
  int64_t n = int64_t(w.embed.size() + w.final_norm.size() + w.lm_head.size());
  for (const auto& L : w.layers)
    n += int64_t(L.attn_norm.size() + L.wqkv.size() + L.wo.size() + L.mlp_norm.size() +
                 L.w_gate_up.size() + L.w_down.size());
  return n;
}

int run(const Options& o) {
  set_threads(o.threads);
  ModelConfig cfg = load_model_config(o.model_dir + "/config.json");
  if (!o.rope_style.empty()) cfg.rope_style = parse_rope_style(o.rope_style);

  const auto t_load = std::chrono::steady_clock::now();
  const ModelWeights weights = load_model_weights(o.model_dir + "/model.safetensors", cfg);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const Rope rope(cfg, cfg.rope_style, std::max(cfg.max_positions, o.window));
  LlamaForward model(cfg, weights, rope);

  std::printf("model      %s: %d layers, d=%d, H=%d, G=%d, D=%d, F=%d, vocab=%d, rope %s "
              "theta=%g, %s lm_head, %.1fM parameters (fp32 in memory), loaded in %.1f s\n",
              o.model_dir.c_str(), cfg.n_layers, cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads,
              cfg.head_dim, cfg.intermediate_size, cfg.vocab_size,
              rope_style_name(cfg.rope_style), cfg.rope_theta,
              weights.lm_head.empty() ? "tied" : "separate", double(parameter_count(weights)) / 1e6,
              load_s);
  std::printf("compute    fp32 on CPU, %s, %u hardware threads\n", blas_description().c_str(),
              std::thread::hardware_concurrency());

  nlohmann::json result = {{"command", o.command}, {"kv", o.kv},
                           {"rope_style", rope_style_name(cfg.rope_style)}};
  const size_t dense_fp16_bytes = size_t(2) * 2 * size_t(cfg.n_layers) * size_t(cfg.n_kv_heads) *
                                  size_t(cfg.head_dim);

  if (o.command == "ppl") {
    const std::string path = o.tokens_file.empty() ? o.model_dir + "/eval_tokens.bin"
                                                   : o.tokens_file;
    std::vector<int32_t> tokens = read_token_file(path);
    if (o.max_tokens > 0 && int64_t(tokens.size()) > o.max_tokens) tokens.resize(size_t(o.max_tokens));
    auto kv = make_kv_attention(o.kv, cfg, rope, o.window, o.threads);
    print_kv(*kv, cfg.n_layers, dense_fp16_bytes);
    std::printf("ppl        %s: %zu tokens, window %d, stride %d\n", path.c_str(), tokens.size(),
                o.window, o.stride);
    std::fflush(stdout);
    PerplexityProgress progress = nullptr;
    if (!o.quiet)
      progress = [](int64_t windows, int64_t scored, double nll) {
        std::fprintf(stderr, "  window %lld: %lld tokens scored, running ppl %.4f\n",
                     (long long)windows, (long long)scored, std::exp(nll));
      };
    const PerplexityResult r =
        evaluate_perplexity(model, *kv, tokens, o.window, o.stride, progress);
    std::printf("result     tokens scored %lld in %lld windows, mean NLL %.5f nats, "
                "perplexity %.4f\n",
                (long long)r.tokens_scored, (long long)r.windows, r.mean_nll, r.perplexity);
    std::printf("memory     KV cache %.3f MiB allocated, %.3f MiB in use for the largest window "
                "of %lld tokens (%zu bytes/token; dense fp16 would hold it in %.3f MiB)\n",
                mib(r.kv_bytes_peak), mib(r.kv_bytes_in_use_peak), (long long)r.kv_tokens_peak,
                kv->bytes_per_token(), mib(size_t(r.kv_tokens_peak) * dense_fp16_bytes));
    std::printf("time       %.1f s, %.1f tokens/s processed, %.1f scored tokens/s\n", r.seconds,
                double(r.tokens_processed) / r.seconds, double(r.tokens_scored) / r.seconds);
    result.update({{"tokens_file", path}, {"window", o.window}, {"stride", o.stride},
                   {"tokens_scored", r.tokens_scored}, {"windows", r.windows},
                   {"mean_nll", r.mean_nll}, {"perplexity", r.perplexity},
                   {"seconds", r.seconds}, {"kv_bytes_allocated", r.kv_bytes_peak},
                   {"kv_bytes_in_use", r.kv_bytes_in_use_peak}});
    result.update(describe_kv(*kv));
  } else if (o.command == "generate") {
    std::vector<int32_t> prompt;
    if (!o.prompt_file.empty()) prompt = read_token_file(o.prompt_file);
    if (!o.prompt_ids.empty()) {
      const auto more = parse_token_list(o.prompt_ids);
      prompt.insert(prompt.end(), more.begin(), more.end());
    }
    if (prompt.empty()) usage_error("generate needs --prompt-ids or --prompt-file");
    auto kv = make_kv_attention(o.kv, cfg, rope, int64_t(prompt.size()) + o.n_new, o.threads);
    print_kv(*kv, cfg.n_layers, dense_fp16_bytes);
    const GenerationResult g = greedy_generate(model, *kv, prompt, o.n_new,
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
                (long long)g.cache_tokens, kv->bytes_per_token(), mib(kv->bytes_in_use()),
                mib(g.kv_bytes));
    if (!o.out_file.empty()) write_token_file(o.out_file, g.tokens);
    result.update({{"prompt", prompt}, {"generated", g.tokens},
                   {"prefill_seconds", g.prefill_seconds}, {"decode_seconds", g.decode_seconds},
                   {"kv_bytes_allocated", g.kv_bytes}, {"kv_bytes_in_use", kv->bytes_in_use()}});
    result.update(describe_kv(*kv));
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
    print_kv(*kv, cfg.n_layers, dense_fp16_bytes);
    std::printf("memory     a %d-token context needs %.3f MiB of KV cache, the model's %d-token "
                "maximum %.3f MiB (dense fp16: %.3f and %.3f MiB)\n",
                o.window, mib(size_t(o.window) * kv->bytes_per_token()), cfg.max_positions,
                mib(size_t(cfg.max_positions) * kv->bytes_per_token()),
                mib(size_t(o.window) * dense_fp16_bytes),
                mib(size_t(cfg.max_positions) * dense_fp16_bytes));
    result.update(describe_kv(*kv));
  }
  if (o.json) std::printf("RESULT %s\n", result.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_runner: %s\n", e.what());
    return 1;
  }
}
