// `starkv selftest`: the library end to end through its public API on a synthetic model, against a
// dense attention computed here. Prints a PASS/FAIL line per check and a summary; exit 0 only if
// every check passes (77 when the requested backend is not available).
//
// Tolerances, and where they come from:
//   - full rank, fp32 latents: the factors are orthonormal to fp32 rounding (~1e-6 after an SVD of
//   a
//     64-wide block), so keys and values come back to ~1e-6 relative; 1e-4 leaves room for the
//     softmax's sensitivity (scores of order 1-5) without hiding a real error (>= 1e-2).
//   - full rank, fp16 latents: one fp16 rounding per latent channel, unit 2^-11 = 4.9e-4 relative,
//     about 3e-4 RMS; 3e-3 allows the same softmax amplification.
//   - 75% low-rank: the synthetic spectra lose about 0.1% of their energy at the ranks a 75% target
//     gives, so the fp16 run must stay under 5% (measured 2.6%). Quantization adds, per block, an
//     error of step/sqrt(12) with step = absmax/(2^(b-1)-1): for 3-bit inliers (a third of the key
//     energy here) about 20% of their magnitude, 10-12% on the keys; the measured output error is
//     16%, and 25% is the bound. A broken quantizer, packing or rotation gives errors near 100%,
//     and the check that error grows monotonically as bits fall catches subtler mix-ups.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"
#include "device_memory.h"
#include "half_float.h"
#include "safetensors_file.h"
#include "synthetic_model.h"

namespace starkv_cli {
namespace {

// ---- reporting ----------------------------------------------------------------------------------

class Report {
 public:
  void check(bool ok, const std::string& name, const std::string& detail = "") {
    (ok ? passed_ : failed_)++;
    std::printf("%s  %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : "  ",
                detail.empty() ? "" : ("(" + detail + ")").c_str());
    std::fflush(stdout);
  }
  void info(const std::string& text) {
    std::printf("info  %s\n", text.c_str());
    std::fflush(stdout);
  }
  // Runs a section; an exception inside it is one failed check named after the section.
  void section(const std::string& name, const std::function<void()>& body) {
    try {
      body();
    } catch (const std::exception& e) {
      check(false, name, e.what());
    }
  }
  int passed() const { return passed_; }
  int failed() const { return failed_; }

 private:
  int passed_ = 0, failed_ = 0;
};

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// ---- the synthetic workload ---------------------------------------------------------------------

// Two token streams over the same model: B shares A's first kShared tokens (a fork), then differs.
constexpr int32_t kTokens = 100;
constexpr int32_t kShared = 60;

struct Workload {
  SyntheticModel model;
  std::vector<LayerActivations> a, b;  // per layer, [kTokens, ...] each
};

Workload make_workload(uint64_t seed) {
  Workload w;
  w.model = make_synthetic_model(SyntheticShape{}, seed);
  const int32_t d = w.model.shape.hidden;
  const std::vector<float> xa = synthetic_hidden(kTokens, d, seed + 1);
  std::vector<float> xb = synthetic_hidden(kTokens, d, seed + 2);
  std::copy(xa.begin(), xa.begin() + static_cast<ptrdiff_t>(kShared) * d, xb.begin());
  for (int32_t l = 0; l < w.model.shape.n_layers; ++l) {
    w.a.push_back(layer_activations(w.model, l, xa, kTokens));
    w.b.push_back(layer_activations(w.model, l, xb, kTokens));
  }
  return w;
}

struct Query {
  int stream;  // 0 = A, 1 = B
  int32_t kv_length;
};
// Causal queries at several lengths: inside the shared prefix, at the fork, across page boundaries.
const std::vector<Query> kQueries = {{0, 1},   {0, 37}, {0, 60}, {0, 61},
                                     {0, 100}, {1, 60}, {1, 77}, {1, 100}};

struct Backend {
  starkv_context* ctx;
  DeviceMemory* memory;
};

// Builds a profile of the model through the public builder; returns the first failing status
// (and the call that failed in *what), or STARKV_OK with the profile in *out.
starkv_status try_build_profile(starkv_context* ctx, const SyntheticModel& model,
                                starkv_profile_params p, const Workload* calib, ProfilePtr* out,
                                std::string* what) {
  const SyntheticShape& s = model.shape;
  p.n_layers = s.n_layers;
  p.n_heads = s.n_heads;
  p.n_kv_heads = s.n_kv_heads;
  p.head_dim = s.head_dim;
  p.hidden_dim = s.hidden;
  p.rope_style = STARKV_ROPE_NEOX;
  p.rope_theta = s.rope_theta;
  starkv_profile_builder* raw = nullptr;
  *what = "profile_builder_create";
  starkv_status st = starkv_profile_builder_create(ctx, &p, &raw);
  if (st != STARKV_OK) return st;
  BuilderPtr builder(raw);
  for (int32_t l = 0; l < s.n_layers; ++l) {
    starkv_layer_data d = starkv_layer_data_default();
    d.w_k = model.layers[l].w_k.data();
    d.w_v = model.layers[l].w_v.data();
    d.w_q = model.layers[l].w_q.data();
    d.weight_dtype = STARKV_DTYPE_F32;
    d.weight_layout = STARKV_WEIGHT_OUT_IN;
    if (calib) {
      d.calib_k = calib->a[l].keys.data();
      d.calib_v = calib->a[l].values.data();
      d.calib_q = calib->a[l].queries.data();
      d.n_calib_kv = kTokens;
      d.calib_kv_dtype = STARKV_DTYPE_F32;
    }
    *what = "profile_builder_add_layer " + std::to_string(l);
    st = starkv_profile_builder_add_layer(builder.get(), l, &d);
    if (st != STARKV_OK) return st;
  }
  starkv_profile* profile = nullptr;
  *what = "profile_builder_finish";
  st = starkv_profile_builder_finish(builder.get(), &profile);
  if (st == STARKV_OK) out->reset(profile);
  return st;
}

ProfilePtr build_profile(starkv_context* ctx, const SyntheticModel& model, starkv_profile_params p,
                         const Workload* calib = nullptr, int64_t* progress_calls = nullptr) {
  if (progress_calls) {
    p.progress = [](void* user, const char*, int64_t, int64_t) -> int32_t {
      ++*static_cast<int64_t*>(user);
      return 0;
    };
    p.progress_user = progress_calls;
  }
  ProfilePtr profile;
  std::string what;
  check(try_build_profile(ctx, model, p, calib, &profile, &what), what);
  return profile;
}

PoolPtr make_pool(starkv_context* ctx, starkv_profile* profile, int64_t pages = 64) {
  starkv_pool_params pp = starkv_pool_params_default();
  pp.page_tokens = 16;  // small pages: the 100-token sequences span several, the fork splits one
  pp.capacity_pages = pages;
  pp.max_sequences = 16;
  starkv_cache_pool* pool = nullptr;
  check(starkv_cache_pool_create(ctx, profile, &pp, &pool), "cache_pool_create");
  return PoolPtr(pool);
}

// Appends tokens [begin, end) of stream A to seq_a and, if seq_b >= 0, the same positions of
// stream B to seq_b, in one call per layer (a mixed batch).
void append_range(const Backend& be, starkv_cache_pool* pool, const Workload& w, int32_t seq_a,
                  int32_t seq_b, int32_t begin, int32_t end) {
  const int32_t kv = w.model.shape.n_kv_heads * w.model.shape.head_dim;
  for (int32_t l = 0; l < w.model.shape.n_layers; ++l) {
    std::vector<int32_t> seqs, positions;
    std::vector<float> k, v;
    for (int stream = 0; stream < (seq_b >= 0 ? 2 : 1); ++stream) {
      const LayerActivations& act = stream == 0 ? w.a[l] : w.b[l];
      for (int32_t t = begin; t < end; ++t) {
        seqs.push_back(stream == 0 ? seq_a : seq_b);
        positions.push_back(t);
        k.insert(k.end(), act.keys.begin() + static_cast<ptrdiff_t>(t) * kv,
                 act.keys.begin() + static_cast<ptrdiff_t>(t + 1) * kv);
        v.insert(v.end(), act.values.begin() + static_cast<ptrdiff_t>(t) * kv,
                 act.values.begin() + static_cast<ptrdiff_t>(t + 1) * kv);
      }
    }
    check(starkv_append(pool, l, static_cast<int32_t>(seqs.size()), seqs.data(), positions.data(),
                        be.memory->upload(k), be.memory->upload(v), STARKV_DTYPE_F32),
          "append layer " + std::to_string(l));
  }
}

// The two sequences of the workload in a pool: A appended in two uneven chunks, B forked from A at
// kShared, then both extended together.
struct Sequences {
  int32_t a = -1, b = -1;
};
Sequences fill_pool(const Backend& be, starkv_cache_pool* pool, const Workload& w) {
  Sequences s;
  check(starkv_seq_create(pool, &s.a), "seq_create");
  append_range(be, pool, w, s.a, -1, 0, 37);
  append_range(be, pool, w, s.a, -1, 37, kShared);
  check(starkv_seq_fork(pool, s.a, &s.b), "seq_fork");
  for (int32_t t = kShared; t < kTokens; t += 8) {
    append_range(be, pool, w, s.a, s.b, t, std::min(t + 8, kTokens));
  }
  return s;
}

// Attends kQueries (through one planned decode step run per layer); returns [layer][q * H*D].
std::vector<std::vector<float>> attend_queries(const Backend& be, starkv_cache_pool* pool,
                                               const Workload& w, const Sequences& s,
                                               const std::vector<Query>& queries) {
  const SyntheticShape& sh = w.model.shape;
  const size_t qw = static_cast<size_t>(sh.n_heads) * sh.head_dim;
  std::vector<int32_t> seqs, lengths;
  for (const Query& q : queries) {
    seqs.push_back(q.stream == 0 ? s.a : s.b);
    lengths.push_back(q.kv_length);
  }
  starkv_decode_step* raw = nullptr;
  check(starkv_decode_step_create(pool, &raw), "decode_step_create");
  StepPtr step(raw);
  check(starkv_decode_step_plan(step.get(), static_cast<int32_t>(queries.size()), seqs.data(),
                                lengths.data()),
        "decode_step_plan");
  std::vector<std::vector<float>> out;
  for (int32_t l = 0; l < sh.n_layers; ++l) {
    std::vector<float> q;
    for (const Query& query : queries) {
      const LayerActivations& act = query.stream == 0 ? w.a[l] : w.b[l];
      const auto row = act.queries.begin() + static_cast<ptrdiff_t>(query.kv_length - 1) * qw;
      q.insert(q.end(), row, row + static_cast<ptrdiff_t>(qw));
    }
    void* d_out = be.memory->allocate(q.size() * sizeof(float));
    check(starkv_decode_step_run(step.get(), l, be.memory->upload(q), STARKV_DTYPE_F32, d_out,
                                 STARKV_DTYPE_F32),
          "decode_step_run layer " + std::to_string(l));
    check(starkv_context_synchronize(be.ctx), "context_synchronize");
    std::vector<float> host(q.size());
    be.memory->download(host.data(), d_out, host.size() * sizeof(float));
    out.push_back(std::move(host));
  }
  return out;
}

// ||out - dense|| / ||dense|| over every query and layer.
double error_vs_dense(const Workload& w, const std::vector<Query>& queries,
                      const std::vector<std::vector<float>>& out) {
  const SyntheticShape& sh = w.model.shape;
  const size_t qw = static_cast<size_t>(sh.n_heads) * sh.head_dim;
  double num = 0, den = 0;
  for (int32_t l = 0; l < sh.n_layers; ++l) {
    for (size_t i = 0; i < queries.size(); ++i) {
      const LayerActivations& act = queries[i].stream == 0 ? w.a[l] : w.b[l];
      const std::vector<double> ref = dense_attention(
          sh, act.keys.data(), act.values.data(),
          &act.queries[static_cast<size_t>(queries[i].kv_length - 1) * qw], queries[i].kv_length);
      for (size_t c = 0; c < qw; ++c) {
        const double diff = out[l][i * qw + c] - ref[c];
        num += diff * diff;
        den += ref[c] * ref[c];
      }
    }
  }
  return std::sqrt(num / den);
}

bool same_bits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

starkv_profile_params params_full_rank(int32_t bits) {
  starkv_profile_params p = starkv_profile_params_default();
  p.target_compression = 0.0f;
  p.key_compression = 0.0f;
  p.value_compression = 0.0f;
  p.min_key_rank = 1;
  p.inlier_bits = bits;
  p.outlier_bits = 16;
  return p;
}

starkv_profile_params params_75(int32_t inlier_bits, int32_t outlier_bits) {
  starkv_profile_params p = starkv_profile_params_default();
  p.target_compression = 0.75f;
  p.inlier_bits = inlier_bits;
  p.outlier_bits = outlier_bits;
  return p;
}

std::vector<int32_t> ranks(const starkv_profile* profile, int32_t layer, starkv_tensor_kind kind) {
  std::vector<int32_t> r(1024);
  int32_t count = 0;
  check(starkv_profile_get_ranks(profile, layer, kind, r.data(), static_cast<int32_t>(r.size()),
                                 &count),
        "profile_get_ranks");
  r.resize(static_cast<size_t>(count));
  return r;
}

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return s;
}

// ---- sections -----------------------------------------------------------------------------------

void check_versions(Report& r) {
  r.check(starkv_version_number() == STARKV_VERSION_NUMBER &&
              starkv_abi_version() == STARKV_ABI_VERSION,
          "header and library versions agree",
          std::string("library ") + starkv_version_string() + ", ABI " +
              std::to_string(starkv_abi_version()));
  const starkv_api* api = starkv_get_api(STARKV_ABI_VERSION);
  r.check(api && api->abi_version == STARKV_ABI_VERSION && api->struct_size >= sizeof(starkv_api) &&
              api->attend == &starkv_attend,
          "starkv_get_api(STARKV_ABI_VERSION) returns the full table");
  r.check(starkv_get_api(STARKV_ABI_VERSION + 1000) == nullptr && *starkv_last_error() != '\0',
          "starkv_get_api(unknown ABI) returns NULL with a message");
}

void check_safetensors_reader(Report& r, bool verbose) {
  // A valid file of the three float dtypes round-trips exactly.
  const std::vector<float> f32 = {1.5f, -2.25f, 1.0e-4f, 65504.0f};  // fp16 normals
  std::vector<uint16_t> f16, bf16;
  for (float x : f32) {
    f16.push_back(float_to_half(x));
    bf16.push_back(float_to_bf16(x));
  }
  const std::vector<uint8_t> bytes =
      serialize_safetensors({{"a", SafetensorsDtype::F32, {2, 2}, f32.data()},
                             {"b", SafetensorsDtype::F16, {4}, f16.data()},
                             {"c", SafetensorsDtype::BF16, {1, 4}, bf16.data()},
                             {"empty", SafetensorsDtype::F32, {0, 3}, nullptr}},
                            {{"format", "pt"}});
  const SafetensorsFile file = SafetensorsFile::from_bytes(bytes, "<round trip>");
  bool ok = file.tensors().size() == 4 && file.metadata().at("format") == "pt" &&
            SafetensorsFile::to_f32(file.get("a")) == f32 && file.get("empty").element_count() == 0;
  const std::vector<float> b = SafetensorsFile::to_f32(file.get("b"));
  const std::vector<float> c = SafetensorsFile::to_f32(file.get("c"));
  for (size_t i = 0; i < f32.size(); ++i) {
    ok = ok && b[i] == half_to_float(f16[i]) &&
         std::fabs(b[i] - f32[i]) <= std::fabs(f32[i]) * 4.9e-4f;
    ok = ok && c[i] == bf16_to_float(bf16[i]) &&
         std::fabs(c[i] - f32[i]) <= std::fabs(f32[i]) * 3.9e-3f;
  }
  r.check(ok, "safetensors: F32/F16/BF16 file round-trips (fp16 within 2^-11, bf16 within 2^-8)");

  const std::vector<MalformedCase> cases = malformed_safetensors_cases();
  int rejected = 0;
  std::string wrong;
  for (const MalformedCase& mc : cases) {
    try {
      SafetensorsFile::from_bytes(mc.bytes, mc.name);
      wrong += " " + mc.name + " (accepted)";
    } catch (const SafetensorsError& e) {
      const std::string message = e.what();
      if (verbose) std::printf("      %s: %s\n", mc.name.c_str(), message.c_str());
      if (message.find(mc.expected_message) == std::string::npos) {
        wrong += " " + mc.name + " (message: " + message + ")";
      } else {
        ++rejected;
      }
    }
  }
  r.check(wrong.empty(),
          "safetensors: " + std::to_string(cases.size()) +
              " malformed files rejected with clear messages",
          wrong.empty() ? std::to_string(rejected) + " rejected" : "wrong:" + wrong);
}

// Runs the workload on one profile: fill a pool, attend, compare with dense attention.
struct RunResult {
  std::vector<std::vector<float>> out;
  double error = 0;
};
RunResult run_workload(const Backend& be, starkv_profile* profile, const Workload& w) {
  PoolPtr pool = make_pool(be.ctx, profile);
  const Sequences s = fill_pool(be, pool.get(), w);
  RunResult result;
  result.out = attend_queries(be, pool.get(), w, s, kQueries);
  result.error = error_vs_dense(w, kQueries, result.out);
  return result;
}

void check_profile_numbers(Report& r, const starkv_profile* profile, const std::string& label,
                           const SyntheticShape& sh) {
  starkv_profile_info info = starkv_profile_info_default();
  check(starkv_profile_get_info(profile, &info), "profile_get_info");
  int64_t latent = 0, bytes = 0, key_channels = 0, value_channels = 0;
  for (int32_t l = 0; l < sh.n_layers; ++l) {
    starkv_layer_info li = starkv_layer_info_default();
    check(starkv_profile_get_layer_info(profile, l, &li), "profile_get_layer_info");
    int32_t width = 0;
    check(starkv_profile_latent_width(profile, l, &width), "profile_latent_width");
    for (int32_t x : ranks(profile, l, STARKV_KEYS)) key_channels += x;
    for (int32_t x : ranks(profile, l, STARKV_VALUES)) value_channels += x;
    latent += width;
    bytes += li.bytes_per_token;
  }
  const int64_t dense_channels = int64_t{sh.n_layers} * 2 * sh.n_kv_heads * sh.head_dim;
  const bool consistent =
      info.n_layers == sh.n_layers && info.dense_channels_per_token == dense_channels &&
      info.dense_bytes_per_token == dense_channels * 2 &&
      info.latent_channels_per_token == latent && latent == key_channels + value_channels &&
      info.bytes_per_token == bytes &&
      std::fabs(info.compression - (1.0 - static_cast<double>(bytes) / (dense_channels * 2))) <
          1e-9 &&
      std::fabs(info.low_rank_compression - (1.0 - static_cast<double>(latent) / dense_channels)) <
          1e-9 &&
      std::fabs(info.compression_factor - static_cast<double>(dense_channels * 2) / bytes) < 1e-6;
  r.check(consistent, label + ": info agrees with the per-layer ranks and bytes (DESIGN §2.4)",
          std::to_string(latent) + " latent channels, " + std::to_string(bytes) + " bytes/token, " +
              fmt("%.2fx", info.compression_factor));
}

}  // namespace

// ---- the command --------------------------------------------------------------------------------

int cmd_selftest(int argc, char** argv) {
  Args args("selftest", "[--backend cpu|cuda] [options]",
            {{"backend", "cpu|cuda", "the backend to test (default cpu)"},
             {"device", "N", "CUDA device ordinal (0)"},
             {"threads", "N", "CPU worker threads (0 = one per core)"},
             {"seed", "N", "seed of the synthetic model (7)"},
             {"verbose", nullptr, "print more detail"},
             {"write-model", "DIR",
              "only write a tiny Llama-style model.safetensors, config.json "
              "and calib.safetensors to DIR"},
             {"write-malformed", "DIR", "only write malformed safetensors files to DIR"},
             {"help", nullptr, "this text"}});
  args.parse(argc, argv);
  if (args.has("help")) {
    args.print_help(stdout);
    std::printf(
        "\nBuilds profiles of a random 2-layer model (H=8, G=2, D=64, d=256) at full rank and at\n"
        "75%% with 4/3-bit quantization, fills a pool with two 100-token sequences (one forked),\n"
        "attends, and compares with dense attention computed here; also snapshots, profile files,\n"
        "and bad calls. Exit status: 0 all passed, 1 a check failed, 77 backend not available.\n");
    return kExitOk;
  }
  if (!args.positional().empty())
    throw UsageError("unexpected argument '" + args.positional()[0] + "'");
  if (args.has("write-model")) {
    write_model_files(args.get("write-model"));
    std::printf(
        "wrote %s/: model.safetensors, model-0000{1,2}-of-00002.safetensors, "
        "model.safetensors.index.json, config.json, config_llama3.json, calib.safetensors\n",
        args.get("write-model").c_str());
    return kExitOk;
  }
  if (args.has("write-malformed")) {
    for (const MalformedCase& mc : malformed_safetensors_cases()) {
      const std::string path = args.get("write-malformed") + "/" + mc.name + ".safetensors";
      FILE* f = std::fopen(path.c_str(), "wb");
      if (!f || std::fwrite(mc.bytes.data(), 1, mc.bytes.size(), f) != mc.bytes.size() ||
          std::fclose(f) != 0) {
        throw CliError("cannot write " + path);
      }
      std::printf("%s  (expect: %s)\n", path.c_str(), mc.expected_message.c_str());
    }
    return kExitOk;
  }

  const bool cuda = args.get_choice("backend", "cpu", {"cpu", "cuda"}) == "cuda";
  const bool verbose = args.has("verbose");
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 7, 0, INT64_MAX));
  if (cuda) {
    if (!starkv_backend_available(STARKV_BACKEND_CUDA)) {
      std::printf(
          "SKIP  CUDA backend: this library was built without CUDA, or no device is "
          "usable\n");
      return kExitSkipped;
    }
    const std::string why = DeviceMemory::cuda_unavailable_reason();
    if (!why.empty()) {
      std::printf("SKIP  CUDA backend: %s\n", why.c_str());
      return kExitSkipped;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  Report r;
  std::printf("starkv selftest: library %s, backend %s\n", starkv_version_string(),
              cuda ? "cuda" : "cpu");

  check_versions(r);
  check_safetensors_reader(r, verbose);

  starkv_context_params cp = starkv_context_params_default();
  cp.backend = cuda ? STARKV_BACKEND_CUDA : STARKV_BACKEND_CPU;
  cp.device = static_cast<int32_t>(args.get_int("device", 0, 0, 1024));
  cp.n_threads = static_cast<int32_t>(args.get_int("threads", 0, 0, 4096));
  starkv_context* raw_ctx = nullptr;
  const starkv_status ctx_status = starkv_context_create(&cp, &raw_ctx);
  r.check(ctx_status == STARKV_OK, "context_create",
          ctx_status == STARKV_OK ? "" : starkv_last_error());
  if (ctx_status != STARKV_OK) {
    std::printf("\nselftest: %d passed, %d failed\n", r.passed(), r.failed());
    return kExitFailure;
  }
  ContextPtr ctx(raw_ctx);
  DeviceMemory memory = cuda ? DeviceMemory::cuda() : DeviceMemory();
  const Backend be{ctx.get(), &memory};
  const Workload w = make_workload(seed);
  const SyntheticShape& sh = w.model.shape;
  r.info("synthetic model: " + std::to_string(sh.n_layers) +
         " layers, H=" + std::to_string(sh.n_heads) + ", G=" + std::to_string(sh.n_kv_heads) +
         ", D=" + std::to_string(sh.head_dim) + ", d=" + std::to_string(sh.hidden) +
         "; sequences of " + std::to_string(kTokens) + " tokens, the second forked at " +
         std::to_string(kShared));

  // --- full rank: exact up to the latent precision ---
  ProfilePtr full32, full16;
  RunResult run32, run16;
  r.section("full rank, fp32 latents", [&] {
    full32 = build_profile(ctx.get(), w.model, params_full_rank(32));
    bool full = true;
    for (int32_t l = 0; l < sh.n_layers; ++l) {
      for (int32_t x : ranks(full32.get(), l, STARKV_KEYS)) full = full && x == sh.head_dim;
      const std::vector<int32_t> v = ranks(full32.get(), l, STARKV_VALUES);
      full = full && v.size() == 1 && v[0] == sh.n_kv_heads * sh.head_dim;
    }
    r.check(full, "target 0 builds a full-rank profile (keys D per head, values G*D joint)",
            "layer 0 keys " + join(ranks(full32.get(), 0, STARKV_KEYS)) + ", values " +
                join(ranks(full32.get(), 0, STARKV_VALUES)));
    run32 = run_workload(be, full32.get(), w);
    r.check(run32.error <= 1e-4, "full rank, fp32 latents: attention matches dense (<= 1e-4)",
            "rel err " + fmt("%.2e", run32.error));
  });
  r.section("full rank, fp16 latents", [&] {
    full16 = build_profile(ctx.get(), w.model, params_full_rank(16));
    run16 = run_workload(be, full16.get(), w);
    r.check(run16.error <= 3e-3, "full rank, fp16 latents: attention matches dense (<= 3e-3)",
            "rel err " + fmt("%.2e", run16.error));
  });

  // --- 75%: the compressed configurations ---
  ProfilePtr p75;
  RunResult run75;
  r.section("75% profiles", [&] {
    ProfilePtr p75_16 = build_profile(ctx.get(), w.model, params_75(16, 16));
    const RunResult run75_16 = run_workload(be, p75_16.get(), w);
    r.check(run75_16.error <= 0.05, "75% low-rank, fp16 latents: attention error <= 5%",
            "rel err " + fmt("%.4f", run75_16.error));
    std::string by_allocator =
        "75%, fp16 latents, attention error by allocator: soft " + fmt("%.4f", run75_16.error);
    for (const auto& alloc : {std::make_pair("static", STARKV_ALLOC_STATIC),
                              std::make_pair("greedy", STARKV_ALLOC_GREEDY)}) {
      starkv_profile_params pa = params_75(16, 16);
      pa.allocator = alloc.second;
      ProfilePtr profile = build_profile(ctx.get(), w.model, pa);
      by_allocator += std::string(", ") + alloc.first + " " +
                      fmt("%.4f", run_workload(be, profile.get(), w).error);
    }
    r.info(by_allocator);

    int64_t progress_calls = 0;
    p75 = build_profile(ctx.get(), w.model, params_75(3, 4), nullptr, &progress_calls);
    r.check(progress_calls > 0, "the build reports progress through the callback",
            std::to_string(progress_calls) + " calls");
    starkv_profile_info info = starkv_profile_info_default();
    check(starkv_profile_get_info(p75.get(), &info), "profile_get_info");
    r.check(std::fabs(info.low_rank_compression - 0.75) <= 0.005,
            "75% target met within +-0.5% of the dense channels",
            "low-rank compression " + fmt("%.4f", info.low_rank_compression));
    for (int32_t l = 0; l < sh.n_layers; ++l) {
      r.info("75% ranks, layer " + std::to_string(l) + ": keys " +
             join(ranks(p75.get(), l, STARKV_KEYS)) + ", values " +
             join(ranks(p75.get(), l, STARKV_VALUES)));
    }
    check_profile_numbers(r, p75.get(), "75%, 4/3-bit", sh);
    r.check(
        info.compression_factor >= 4.0, "75% with 4/3-bit latents stores >= 4x fewer bytes",
        fmt("%.2fx", info.compression_factor) + ", compression " + fmt("%.4f", info.compression));
    run75 = run_workload(be, p75.get(), w);
    r.check(run75.error <= 0.25,
            "75% low-rank, 4-bit outliers / 3-bit inliers: attention error <= 25%",
            "rel err " + fmt("%.4f", run75.error));
    // Fewer bits, more error: 16 < 4/8 < 3/4 < 2/4 (inlier/outlier bits).
    ProfilePtr p75_48 = build_profile(ctx.get(), w.model, params_75(4, 8));
    ProfilePtr p75_24 = build_profile(ctx.get(), w.model, params_75(2, 4));
    const double e48 = run_workload(be, p75_48.get(), w).error;
    const double e24 = run_workload(be, p75_24.get(), w).error;
    r.check(run75_16.error < e48 && e48 < run75.error && run75.error < e24 && e24 <= 0.6,
            "75%: attention error grows as bits fall (fp16 < 4/8 < 3/4 < 2/4 <= 60%)",
            fmt("%.4f", run75_16.error) + " < " + fmt("%.4f", e48) + " < " +
                fmt("%.4f", run75.error) + " < " + fmt("%.4f", e24));

    ProfilePtr p75_calib = build_profile(ctx.get(), w.model, params_75(16, 16), &w);
    const RunResult run_calib = run_workload(be, p75_calib.get(), w);
    r.check(run_calib.error <= 0.05, "75% with calibration K/V/Q samples: attention error <= 5%",
            "rel err " + fmt("%.4f", run_calib.error));
  });

  // --- the same cache through a second planned step, one-shot attend, snapshots ---
  r.section("attend and snapshots", [&] {
    if (!p75) throw CliError("no 75% profile to test with");
    PoolPtr pool = make_pool(ctx.get(), p75.get());
    const Sequences s = fill_pool(be, pool.get(), w);
    int32_t len_a = 0, len_b = 0;
    check(starkv_seq_length(pool.get(), s.a, &len_a), "seq_length");
    check(starkv_seq_length(pool.get(), s.b, &len_b), "seq_length");
    r.check(len_a == kTokens && len_b == kTokens, "sequence lengths after fork and append",
            std::to_string(len_a) + ", " + std::to_string(len_b));
    const auto planned = attend_queries(be, pool.get(), w, s, kQueries);
    r.check(same_bits(planned, run75.out), "the same appends in a new pool give identical outputs");

    // One-shot attend equals the planned step.
    const size_t qw = static_cast<size_t>(sh.n_heads) * sh.head_dim;
    bool same = true;
    for (int32_t l = 0; l < sh.n_layers; ++l) {
      const auto& q = w.b[l].queries;
      const int32_t seq = s.b, length = kTokens;
      void* d_out = memory.allocate(qw * sizeof(float));
      check(starkv_attend(pool.get(), l, 1, &seq, &length,
                          memory.upload(&q[(kTokens - 1) * qw], qw * sizeof(float)),
                          STARKV_DTYPE_F32, d_out, STARKV_DTYPE_F32),
            "attend");
      check(starkv_context_synchronize(ctx.get()), "context_synchronize");
      std::vector<float> out(qw);
      memory.download(out.data(), d_out, qw * sizeof(float));
      same = same && std::memcmp(out.data(), &planned[l][7 * qw], qw * sizeof(float)) == 0;
    }
    r.check(same, "starkv_attend equals the planned decode step");

    // Snapshot B, restore into this pool and a fresh one: identical outputs.
    size_t size = 0;
    const starkv_status sized = starkv_seq_export(pool.get(), s.b, nullptr, 0, &size);
    if (sized != STARKV_OK && sized != STARKV_ERR_BUFFER_TOO_SMALL)
      check(sized, "seq_export (size)");
    std::vector<uint8_t> snapshot(size);
    check(starkv_seq_export(pool.get(), s.b, snapshot.data(), snapshot.size(), &size),
          "seq_export");
    snapshot.resize(size);
    Sequences restored, other;
    check(starkv_seq_import(pool.get(), snapshot.data(), snapshot.size(), &restored.b),
          "seq_import");
    PoolPtr pool2 = make_pool(ctx.get(), p75.get());
    check(starkv_seq_import(pool2.get(), snapshot.data(), snapshot.size(), &other.b),
          "seq_import (fresh pool)");
    const std::vector<Query> b_queries = {{1, 60}, {1, 77}, {1, 100}};
    const auto original = attend_queries(be, pool.get(), w, s, b_queries);
    const auto same_pool = attend_queries(be, pool.get(), w, restored, b_queries);
    const auto fresh_pool = attend_queries(be, pool2.get(), w, other, b_queries);
    r.check(same_bits(original, same_pool) && same_bits(original, fresh_pool),
            "snapshot restored (same pool and a fresh pool) gives identical outputs",
            std::to_string(snapshot.size()) + "-byte snapshot of " + std::to_string(kTokens) +
                " tokens");

    // Releasing the parent leaves the fork intact (its shared pages stay alive).
    check(starkv_seq_release(pool.get(), s.a), "seq_release");
    const auto after_release = attend_queries(be, pool.get(), w, s, b_queries);
    r.check(same_bits(original, after_release), "releasing the parent leaves the fork unchanged");
  });

  // --- profiles as bytes and files ---
  r.section("profile files", [&] {
    if (!p75) throw CliError("no 75% profile to test with");
    size_t size = 0;
    const starkv_status sized = starkv_profile_save_to_buffer(p75.get(), nullptr, 0, &size);
    if (sized != STARKV_OK && sized != STARKV_ERR_BUFFER_TOO_SMALL)
      check(sized, "profile_save_to_buffer (size)");
    std::vector<uint8_t> bytes(size);
    check(starkv_profile_save_to_buffer(p75.get(), bytes.data(), bytes.size(), &size),
          "profile_save_to_buffer");
    bytes.resize(size);
    starkv_profile* raw = nullptr;
    check(starkv_profile_load_from_buffer(bytes.data(), bytes.size(), &raw),
          "profile_load_from_buffer");
    ProfilePtr loaded(raw);
    const RunResult again = run_workload(be, loaded.get(), w);
    r.check(same_bits(again.out, run75.out),
            "a profile loaded back from its bytes gives identical attention",
            std::to_string(bytes.size()) + " bytes");

    char path[] = "/tmp/starkv-selftest-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) throw CliError("cannot create a temporary file");
    ::close(fd);
    const starkv_status saved = starkv_profile_save(p75.get(), path);
    starkv_profile* from_file = nullptr;
    const starkv_status opened = saved == STARKV_OK ? starkv_profile_load(path, &from_file) : saved;
    ProfilePtr file_profile(from_file);
    std::string detail = opened == STARKV_OK ? "" : starkv_last_error();
    ::unlink(path);
    bool same = opened == STARKV_OK;
    if (same) {
      for (int32_t l = 0; l < sh.n_layers; ++l) {
        same = same &&
               ranks(file_profile.get(), l, STARKV_KEYS) == ranks(p75.get(), l, STARKV_KEYS) &&
               ranks(file_profile.get(), l, STARKV_VALUES) == ranks(p75.get(), l, STARKV_VALUES);
      }
    }
    r.check(same, "profile_save + profile_load keep the ranks", detail);
  });

  // --- bad calls return their status and change nothing ---
  r.section("bad calls", [&] {
    if (!p75 || !full32) throw CliError("no profiles to test with");
    PoolPtr pool = make_pool(ctx.get(), p75.get());
    int32_t seq = -1;
    check(starkv_seq_create(pool.get(), &seq), "seq_create");
    Sequences one;
    one.a = seq;
    append_range(be, pool.get(), w, seq, -1, 0, 10);
    const int32_t kv = sh.n_kv_heads * sh.head_dim;
    void* k = memory.upload(w.a[0].keys.data(), static_cast<size_t>(kv) * sizeof(float));
    void* v = memory.upload(w.a[0].values.data(), static_cast<size_t>(kv) * sizeof(float));
    const size_t qw = static_cast<size_t>(sh.n_heads) * sh.head_dim;
    void* q = memory.upload(w.a[0].queries.data(), qw * sizeof(float));
    void* out = memory.allocate(qw * sizeof(float));

    auto expect = [&](starkv_status got, starkv_status want, const std::string& what) {
      const std::string message = got == STARKV_OK ? "" : starkv_last_error();
      r.check(
          got == want && !message.empty(), what + " -> " + starkv_status_string(want),
          got == want ? message : std::string("got ") + starkv_status_string(got) + ": " + message);
    };
    starkv_pool_usage before = starkv_pool_usage_default(), after = starkv_pool_usage_default();
    check(starkv_cache_pool_get_usage(pool.get(), &before), "cache_pool_get_usage");

    int32_t gap = 12, pos = 10, len = 0, bad_len = 11;
    // 3 is in the range of starkv_dtype's values (C++ would make 7 undefined) but names no dtype.
    const starkv_dtype kNotADtype = static_cast<starkv_dtype>(3);
    expect(starkv_append(pool.get(), 0, 1, &seq, &gap, k, v, STARKV_DTYPE_F32), STARKV_ERR_POSITION,
           "append at position 12 after 10 tokens");
    expect(starkv_append(pool.get(), sh.n_layers, 1, &seq, &pos, k, v, STARKV_DTYPE_F32),
           STARKV_ERR_INVALID_ARGUMENT, "append to a layer that does not exist");
    expect(starkv_append(pool.get(), 0, 1, &seq, &pos, k, v, kNotADtype),
           STARKV_ERR_DTYPE, "append with an unknown dtype");
    const int32_t unknown = 4321;
    expect(starkv_append(pool.get(), 0, 1, &unknown, &pos, k, v, STARKV_DTYPE_F32),
           STARKV_ERR_UNKNOWN_SEQUENCE, "append to an unknown sequence");
    expect(starkv_seq_length(pool.get(), unknown, &len), STARKV_ERR_UNKNOWN_SEQUENCE,
           "seq_length of an unknown sequence");
    expect(
        starkv_attend(pool.get(), 0, 1, &seq, &bad_len, q, STARKV_DTYPE_F32, out, STARKV_DTYPE_F32),
        STARKV_ERR_POSITION, "attend over 11 tokens of a 10-token sequence");
    starkv_profile_info info = starkv_profile_info_default();
    expect(starkv_profile_get_info(nullptr, &info), STARKV_ERR_NULL_HANDLE,
           "profile_get_info(NULL)");
    starkv_cache_pool* no_pool = nullptr;
    expect(starkv_cache_pool_create(ctx.get(), nullptr, nullptr, &no_pool), STARKV_ERR_NULL_HANDLE,
           "cache_pool_create without a profile");
    check(starkv_cache_pool_get_usage(pool.get(), &after), "cache_pool_get_usage");
    check(starkv_seq_length(pool.get(), seq, &len), "seq_length");
    r.check(len == 10 && after.used_tokens == before.used_tokens &&
                after.free_pages == before.free_pages &&
                after.stored_tokens == before.stored_tokens,
            "failed calls left the pool unchanged", "length " + std::to_string(len));

    // Files and buffers.
    const char garbage[] = "this is not a starkv profile, just some bytes";
    starkv_profile* bad = nullptr;
    expect(starkv_profile_load_from_buffer(garbage, sizeof garbage, &bad), STARKV_ERR_FORMAT,
           "profile_load_from_buffer(foreign bytes)");
    size_t size = 0;
    starkv_profile_save_to_buffer(p75.get(), nullptr, 0, &size);
    std::vector<uint8_t> bytes(size);
    check(starkv_profile_save_to_buffer(p75.get(), bytes.data(), bytes.size(), &size),
          "save_to_buffer");
    std::vector<uint8_t> flipped = bytes;
    flipped[flipped.size() / 2] ^= 0x5a;
    expect(starkv_profile_load_from_buffer(flipped.data(), flipped.size(), &bad),
           STARKV_ERR_CORRUPT_DATA, "profile_load_from_buffer(one byte flipped)");
    expect(starkv_profile_load_from_buffer(bytes.data(), bytes.size() / 2, &bad),
           STARKV_ERR_CORRUPT_DATA, "profile_load_from_buffer(truncated)");
    expect(starkv_profile_load("/nonexistent/dir/x.starkv", &bad), STARKV_ERR_IO,
           "profile_load(a missing file)");
    starkv_profile_destroy(bad);  // NULL unless a bad load wrongly succeeded

    size_t snap_size = 0;
    starkv_seq_export(pool.get(), seq, nullptr, 0, &snap_size);
    std::vector<uint8_t> snapshot(snap_size);
    check(starkv_seq_export(pool.get(), seq, snapshot.data(), snapshot.size(), &snap_size),
          "seq_export");
    PoolPtr other = make_pool(ctx.get(), full32.get());
    int32_t imported = -1;
    expect(starkv_seq_import(other.get(), snapshot.data(), snap_size, &imported),
           STARKV_ERR_PROFILE_MISMATCH, "seq_import into a pool of another profile");
    snapshot[snapshot.size() / 2] ^= 0x5a;
    expect(starkv_seq_import(pool.get(), snapshot.data(), snap_size, &imported),
           STARKV_ERR_CORRUPT_DATA, "seq_import(one byte flipped)");

    // Builders and params.
    starkv_profile_params p = params_75(16, 16);
    p.n_layers = sh.n_layers;
    p.n_heads = sh.n_heads;
    p.n_kv_heads = 3;  // 8 query heads are not a multiple of 3
    p.head_dim = sh.head_dim;
    p.hidden_dim = sh.hidden;
    starkv_profile_builder* builder = nullptr;
    expect(starkv_profile_builder_create(ctx.get(), &p, &builder), STARKV_ERR_INVALID_ARGUMENT,
           "builder with H not a multiple of G");
    starkv_profile_builder_destroy(builder);
    builder = nullptr;
    p.n_kv_heads = sh.n_kv_heads;
    p.struct_size = 3;
    expect(starkv_profile_builder_create(ctx.get(), &p, &builder), STARKV_ERR_SIZE_MISMATCH,
           "params with a wrong struct_size");
    starkv_profile_builder_destroy(builder);
    builder = nullptr;

    // A cancelled build.
    starkv_profile_params pc = params_75(16, 16);
    pc.progress = [](void*, const char*, int64_t, int64_t) -> int32_t { return 1; };
    ProfilePtr never;
    std::string what;
    expect(try_build_profile(ctx.get(), w.model, pc, nullptr, &never, &what), STARKV_ERR_CANCELLED,
           "a build whose progress callback returns non-zero");
  });

  // --- a full pool ---
  r.section("pool full", [&] {
    if (!p75) throw CliError("no 75% profile to test with");
    PoolPtr pool = make_pool(ctx.get(), p75.get(), 2);  // 2 pages of 16 tokens
    int32_t a = -1, b = -1;
    check(starkv_seq_create(pool.get(), &a), "seq_create");
    check(starkv_seq_create(pool.get(), &b), "seq_create");
    append_range(be, pool.get(), w, a, -1, 0, 20);  // A takes both pages
    starkv_pool_usage before = starkv_pool_usage_default(), after = starkv_pool_usage_default();
    check(starkv_cache_pool_get_usage(pool.get(), &before), "cache_pool_get_usage");
    const int32_t kv = sh.n_kv_heads * sh.head_dim;
    void* k = memory.upload(w.b[0].keys.data(), static_cast<size_t>(kv) * sizeof(float));
    void* v = memory.upload(w.b[0].values.data(), static_cast<size_t>(kv) * sizeof(float));
    const int32_t pos = 0;
    const starkv_status st = starkv_append(pool.get(), 0, 1, &b, &pos, k, v, STARKV_DTYPE_F32);
    const std::string message = st == STARKV_OK ? "" : starkv_last_error();
    check(starkv_cache_pool_get_usage(pool.get(), &after), "cache_pool_get_usage");
    int32_t len_a = 0, len_b = -1;
    check(starkv_seq_length(pool.get(), a, &len_a), "seq_length");
    check(starkv_seq_length(pool.get(), b, &len_b), "seq_length");
    r.check(st == STARKV_ERR_POOL_FULL && len_a == 20 && len_b == 0 &&
                after.free_pages == before.free_pages && after.used_tokens == before.used_tokens,
            "a full pool returns POOL_FULL and changes nothing",
            std::string(starkv_status_string(st)) + (message.empty() ? "" : ": " + message));
  });

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\nselftest: %d passed, %d failed (backend %s, %.1f s)\n", r.passed(), r.failed(),
              cuda ? "cuda" : "cpu", seconds);
  return r.failed() == 0 ? kExitOk : kExitFailure;
}

}  // namespace starkv_cli
