// `starkv build`: a model's K/V projection weights (safetensors) and optional calibration samples
// -> a .starkv profile, through the public profile builder.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli.h"
#include "safetensors_file.h"

namespace starkv_cli {
namespace {

// ---- weights spread over one or more safetensors files
// -------------------------------------------

// Tensors by name across several files: a single checkpoint, shards given one by one, or a
// `model.safetensors.index.json` (its weight_map names the shards, relative to its directory).
class TensorSet {
 public:
  void add(const std::string& path) {
    if (ends_with(path, ".json")) {
      add_index(path);
    } else {
      add_file(path);
    }
  }
  bool empty() const { return files_.empty(); }
  const SafetensorsTensor* find(const std::string& name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : by_name_) out.push_back(kv.first);
    return out;
  }
  std::string describe() const {
    if (files_.size() == 1) return files_[0]->path();
    return std::to_string(files_.size()) + " files (" + files_[0]->path() + ", ...)";
  }

 private:
  static bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  }

  void add_file(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path)));
    for (const SafetensorsTensor& t : files_.back()->tensors()) {
      if (!by_name_.emplace(t.name, &t).second) {
        throw CliError("tensor '" + t.name + "' is in more than one weights file (" + path + ")");
      }
    }
  }

  void add_index(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw CliError(path + ": cannot open");
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw CliError(path + ": not valid JSON: " + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw CliError(path + ": not a safetensors index (no \"weight_map\" object)");
    }
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::set<std::string> shards;
    for (const auto& kv : index["weight_map"].items()) {
      if (!kv.value().is_string()) throw CliError(path + ": weight_map values must be file names");
      shards.insert(kv.value().get<std::string>());
    }
    for (const std::string& shard : shards) add_file(dir + shard);
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files_;  // stable addresses for by_name_
  std::map<std::string, const SafetensorsTensor*> by_name_;
};

// ---- tensor-name templates: "model.layers.{i}.self_attn.k_proj.weight"
// ---------------------------

std::string layer_name(const std::string& pattern, int32_t layer) {
  const size_t at = pattern.find("{i}");
  if (at == std::string::npos) return pattern;
  return pattern.substr(0, at) + std::to_string(layer) + pattern.substr(at + 3);
}

void check_pattern(const std::string& pattern, const char* option) {
  const size_t at = pattern.find("{i}");
  if (at == std::string::npos || pattern.find("{i}", at + 1) != std::string::npos) {
    throw UsageError("--" + std::string(option) + " must contain '{i}' (the layer index) once: '" +
                     pattern + "'");
  }
}

// The layer indices for which `pattern` names a tensor.
std::set<int32_t> layers_present(const TensorSet& tensors, const std::string& pattern) {
  const size_t at = pattern.find("{i}");
  const std::string prefix = pattern.substr(0, at), suffix = pattern.substr(at + 3);
  std::set<int32_t> found;
  for (const std::string& name : tensors.names()) {
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix)) {
      continue;
    }
    const std::string middle =
        name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (middle.empty() || middle.size() > 6 ||
        middle.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    found.insert(std::stoi(middle));
  }
  return found;
}

// A hint for a tensor that is not there: the names the file uses for layer 0.
std::string naming_hint(const TensorSet& tensors) {
  std::string hint;
  int shown = 0;
  for (const std::string& name : tensors.names()) {
    if (name.find(".0.") == std::string::npos) continue;
    if (shown++ == 10) {
      hint += "\n    ...";
      break;
    }
    hint += "\n    " + name;
  }
  if (hint.empty()) {
    for (const std::string& name : tensors.names()) {
      if (shown++ == 10) break;
      hint += "\n    " + name;
    }
  }
  return "; its tensors include:" + hint +
         "\n  (set the names with --k-name/--v-name/--q-name; 'starkv tensors FILE' lists all)";
}

const SafetensorsTensor& require(const TensorSet& tensors, const std::string& name,
                                 const std::string& where) {
  const SafetensorsTensor* t = tensors.find(name);
  if (!t) throw CliError("tensor '" + name + "' not found in " + where + naming_hint(tensors));
  return *t;
}

// ---- the model's shape --------------------------------------------------------------------------

struct ModelShape {
  int32_t n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, hidden = 0;
  int32_t rope_dim = 0;
  bool has_rope_theta = false;
  float rope_theta = 10000.0f;
  std::string rope_scaling_type;  // as the config spells it; "" = none
  float rope_factor = 1.0f, rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  int32_t rope_original_max_position = 8192;
  std::string model_type;
};

int32_t json_int(const nlohmann::json& j, const char* key, int32_t fallback,
                 const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 ||
      j[key].get<int64_t>() > INT32_MAX) {
    throw CliError(path + ": \"" + key + "\" is not a non-negative integer");
  }
  return j[key].get<int32_t>();
}

float json_float(const nlohmann::json& j, const char* key, float fallback,
                 const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw CliError(path + ": \"" + key + "\" is not a number");
  return j[key].get<float>();
}

// Reads a Hugging Face config.json (or the "text_config" inside a multimodal one).
ModelShape read_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CliError(path + ": cannot open");
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CliError(path + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw CliError(path + ": not a JSON object");
  const nlohmann::json& c = (!root.contains("num_hidden_layers") && root.contains("text_config") &&
                             root["text_config"].is_object())
                                ? root["text_config"]
                                : root;
  ModelShape s;
  if (c.contains("model_type") && c["model_type"].is_string()) s.model_type = c["model_type"];
  s.n_layers = json_int(c, "num_hidden_layers", 0, path);
  s.n_heads = json_int(c, "num_attention_heads", 0, path);
  s.n_kv_heads = json_int(c, "num_key_value_heads", s.n_heads, path);
  s.hidden = json_int(c, "hidden_size", 0, path);
  s.head_dim = json_int(c, "head_dim", 0, path);
  if (s.head_dim == 0 && s.n_heads > 0 && s.hidden % s.n_heads == 0)
    s.head_dim = s.hidden / s.n_heads;
  if (s.n_layers == 0 || s.n_heads == 0 || s.hidden == 0) {
    throw CliError(path + ": needs num_hidden_layers, num_attention_heads and hidden_size");
  }

  // RoPE: rope_theta and rope_scaling (transformers <= 4.x) or rope_parameters (newer).
  nlohmann::json scaling;
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    scaling = c["rope_parameters"];
    if (scaling.contains("rope_theta")) {
      s.rope_theta = json_float(scaling, "rope_theta", s.rope_theta, path);
      s.has_rope_theta = true;
    }
  }
  if (c.contains("rope_theta")) {
    s.rope_theta = json_float(c, "rope_theta", s.rope_theta, path);
    s.has_rope_theta = true;
  }
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) scaling = c["rope_scaling"];
  if (scaling.is_object()) {
    std::string type;
    if (scaling.contains("rope_type") && scaling["rope_type"].is_string())
      type = scaling["rope_type"];
    else if (scaling.contains("type") && scaling["type"].is_string())
      type = scaling["type"];
    if (type != "default") s.rope_scaling_type = type;
    s.rope_factor = json_float(scaling, "factor", 1.0f, path);
    s.rope_low_freq_factor = json_float(scaling, "low_freq_factor", 1.0f, path);
    s.rope_high_freq_factor = json_float(scaling, "high_freq_factor", 4.0f, path);
    s.rope_original_max_position =
        json_int(scaling, "original_max_position_embeddings", 8192, path);
  }
  float partial = json_float(c, "partial_rotary_factor", 1.0f, path);
  partial = json_float(c, "rotary_pct", partial, path);
  if (partial < 1.0f && s.head_dim > 0) {
    s.rope_dim = static_cast<int32_t>(std::lround(partial * static_cast<float>(s.head_dim)));
  }
  return s;
}

// ---- binding tensors to the builder: zero-copy when possible
// --------------------------------------

bool is_float_dtype(SafetensorsDtype d) {
  return d == SafetensorsDtype::F32 || d == SafetensorsDtype::F16 || d == SafetensorsDtype::BF16;
}

starkv_dtype to_starkv(SafetensorsDtype d) {
  return d == SafetensorsDtype::F16    ? STARKV_DTYPE_F16
         : d == SafetensorsDtype::BF16 ? STARKV_DTYPE_BF16
                                       : STARKV_DTYPE_F32;
}

// Pointers for a set of tensors that the builder must see in one dtype. The file's own bytes are
// used when they all share F32/F16/BF16 and are aligned; otherwise all are converted to fp32.
struct BoundTensors {
  std::vector<const void*> data;  // parallel to the input; nullptr for a missing tensor
  starkv_dtype dtype = STARKV_DTYPE_F32;
  std::vector<std::vector<float>> converted;
};

BoundTensors bind(const std::vector<const SafetensorsTensor*>& tensors) {
  BoundTensors b;
  bool direct = true;
  const SafetensorsTensor* first = nullptr;
  for (const SafetensorsTensor* t : tensors) {
    if (!t) continue;
    if (!first) first = t;
    const size_t size = safetensors_dtype_size(t->dtype);
    if (!is_float_dtype(t->dtype) || t->dtype != first->dtype ||
        reinterpret_cast<uintptr_t>(t->data) % size != 0) {
      direct = false;
    }
  }
  b.dtype = direct && first ? to_starkv(first->dtype) : STARKV_DTYPE_F32;
  for (const SafetensorsTensor* t : tensors) {
    if (!t) {
      b.data.push_back(nullptr);
    } else if (direct) {
      b.data.push_back(t->data);
    } else {
      b.converted.push_back(SafetensorsFile::to_f32(*t));  // throws for non-float dtypes
      b.data.push_back(b.converted.back().data());
    }
  }
  return b;
}

// Rows of a 2-D [rows, cols] tensor, or of a 3-D [n, heads, dim] one as [n, heads*dim].
void as_matrix(const SafetensorsTensor& t, int64_t* rows, int64_t* cols) {
  if (t.shape.size() == 2) {
    *rows = t.shape[0];
    *cols = t.shape[1];
  } else if (t.shape.size() == 3) {
    *rows = t.shape[0];
    *cols = t.shape[1] * t.shape[2];
  } else {
    throw CliError("tensor '" + t.name + "' has shape " + t.shape_string() + "; expected a matrix");
  }
}

// ---- progress -----------------------------------------------------------------------------------

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

struct Progress {
  bool quiet = false;
  bool tty = false;
  int32_t layer = -1, n_layers = 0;  // the layer being added; -1 while finishing
  std::string last_stage;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_line = start;
  bool line_open = false;

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void report(const char* stage, int64_t done, int64_t total) {
    if (quiet) return;
    const auto now = std::chrono::steady_clock::now();
    char where[64] = "";
    if (layer >= 0) std::snprintf(where, sizeof where, "[layer %d/%d] ", layer + 1, n_layers);
    if (tty) {
      // Redraw at most ten times a second, but always at a stage's start and end.
      if (stage == last_stage && done != total &&
          now - last_line < std::chrono::milliseconds(100)) {
        return;
      }
      last_line = now;
      std::fprintf(stderr, "\r\033[K%s%s %lld/%lld (%.1f s)", where, stage,
                   static_cast<long long>(done), static_cast<long long>(total), seconds());
      line_open = true;
    } else if (layer < 0 && (stage != last_stage || done == total ||
                             now - last_line > std::chrono::seconds(5))) {
      // Not a terminal (a log): while finishing, a line per stage change, completion, or 5 s.
      std::fprintf(stderr, "  %s %lld/%lld (%.1f s)\n", stage, static_cast<long long>(done),
                   static_cast<long long>(total), seconds());
      last_line = now;
    }
    last_stage = stage;
    std::fflush(stderr);
  }
  void layer_start(int32_t l) {
    layer = l;
    if (quiet || !tty) return;
    std::fprintf(stderr, "\r\033[K[layer %d/%d] (%.1f s)", l + 1, n_layers, seconds());
    std::fflush(stderr);
    line_open = true;
  }
  void layer_done(int32_t l) {
    if (quiet || tty) return;
    std::fprintf(stderr, "  layer %d/%d added (%.1f s)\n", l + 1, n_layers, seconds());
  }
  void end_line() {
    if (line_open) std::fprintf(stderr, "\n");
    line_open = false;
  }
};

int32_t progress_callback(void* user, const char* stage, int64_t done, int64_t total) {
  static_cast<Progress*>(user)->report(stage ? stage : "build", done, total);
  return g_interrupted ? 1 : 0;
}

// Restores the previous SIGINT handler when the build ends.
struct InterruptScope {
  void (*previous)(int);
  InterruptScope() { previous = std::signal(SIGINT, on_interrupt); }
  ~InterruptScope() { std::signal(SIGINT, previous); }
};

// ---- options ------------------------------------------------------------------------------------

const char* kDefaultK = "model.layers.{i}.self_attn.k_proj.weight";
const char* kDefaultV = "model.layers.{i}.self_attn.v_proj.weight";
const char* kDefaultQ = "model.layers.{i}.self_attn.q_proj.weight";

// Help texts that show the library's own defaults (kept alive for the process).
const char* with_default(const char* text, double value) {
  static std::vector<std::unique_ptr<std::string>> storage;
  char buf[48];
  std::snprintf(buf, sizeof buf, " (default %g)", value);
  storage.push_back(std::make_unique<std::string>(std::string(text) + buf));
  return storage.back()->c_str();
}

std::vector<OptionSpec> build_options() {
  const starkv_profile_params d = starkv_profile_params_default();
  return {
      {"weights", "FILE", "safetensors weights; repeat for shards, or give the .index.json", true},
      {"out", "FILE", "where to write the profile (.starkv); required"},
      {"config", "FILE", "Hugging Face config.json: layers, heads, head dim, RoPE"},
      {"layers", "N", "number of layers (default: config, else counted from tensor names)"},
      {"heads", "H", "query heads"},
      {"kv-heads", "G", "KV heads (GQA); H must be a multiple of G"},
      {"head-dim", "D", "head dimension"},
      {"hidden", "d", "model width (checked against the weights)"},
      {"k-name", "PATTERN",
       "key projection name, {i} = layer (model.layers.{i}.self_attn.k_proj.weight)"},
      {"v-name", "PATTERN", "value projection name (model.layers.{i}.self_attn.v_proj.weight)"},
      {"q-name", "PATTERN",
       "query projection name, optional (model.layers.{i}.self_attn.q_proj.weight)"},
      {"no-q", nullptr, "do not pass query weights to the builder"},
      {"weight-layout", "out-in|in-out", "out-in: [G*D, d] as torch nn.Linear (default)"},
      {"target", "X",
       with_default("fraction of latent channels removed vs dense 2*G*D", d.target_compression)},
      {"key-target", "X", "keys' share of the target (with --value-target)"},
      {"value-target", "X", "values' share of the target (with --key-target)"},
      {"target-counts-all-layers", nullptr, "the target counts uncompressed layers too"},
      {"allocator", "soft|static|greedy", "rank allocation (default soft: learned thresholds)"},
      {"keys", "hd|jd", "key decomposition: per head (hd, default) or joint (jd)"},
      {"values", "hd|jd", "value decomposition (default jd)"},
      {"bits", "32|16|4|3|2",
       with_default("inlier bits; 16 = fp16 latents, 32 = fp32", d.inlier_bits)},
      {"outlier-bits", "16|8|4",
       with_default("bits of the leading (outlier) channels", d.outlier_bits)},
      {"outlier-fraction", "X",
       with_default("leading fraction of each group kept as outliers", d.outlier_fraction)},
      {"nibbles", nullptr, "store 3-bit codes as 4-bit nibbles (reference layout)"},
      {"no-hadamard", nullptr, "do not rotate latent blocks before quantizing"},
      {"min-key-rank", "N", with_default("minimum rank per key group", d.min_key_rank)},
      {"key-tile", "N", with_default("round key ranks to a multiple of N", d.key_rank_tile)},
      {"value-tile", "N", with_default("round value ranks to a multiple of N", d.value_rank_tile)},
      {"uncompressed", "LIST", "layers kept at full rank and 16 bits, e.g. 0,1,2,-1 (-1 = last)"},
      {"rope", "neox|gptj|none", "RoPE style of the keys (default neox, as HF Llama)"},
      {"rope-theta", "X", "RoPE base (config, else 10000)"},
      {"rope-dim", "N", "rotated dims per head (default: all, or config partial_rotary_factor)"},
      {"rope-scaling", "none|linear|llama3", "RoPE scaling (default: config)"},
      {"rope-factor", "X", "scaling factor (linear, llama3)"},
      {"rope-low-freq-factor", "X", "llama3 scaling"},
      {"rope-high-freq-factor", "X", "llama3 scaling"},
      {"rope-original-max-pos", "N", "llama3 scaling: original_max_position_embeddings"},
      {"attention-scale", "X", "softmax scale (default 1/sqrt(head_dim))"},
      {"calib-kv", "FILE", "calibration samples: layers.{i}.k/.v [n, G*D] pre-RoPE, .q [n, H*D]"},
      {"calib-k-name", "PATTERN", "calibration key name (layers.{i}.k)"},
      {"calib-v-name", "PATTERN", "calibration value name (layers.{i}.v)"},
      {"calib-q-name", "PATTERN", "calibration query name, optional (layers.{i}.q)"},
      {"calib-hidden", "FILE", "calibration hidden states: layers.{i}.hidden [n, d]"},
      {"calib-hidden-name", "PATTERN", "calibration hidden-state name (layers.{i}.hidden)"},
      {"max-calib-tokens", "N",
       with_default("calibration tokens used per layer", d.max_calibration_tokens)},
      {"whitening-lambda", "X",
       with_default("ridge added to X^T X / n, relative to its mean diagonal", d.whitening_lambda)},
      {"steps", "N", with_default("soft-threshold Adam steps", d.st_max_steps)},
      {"sharpness", "X", with_default("s in sigma*tanh(s(sigma-alpha))", d.st_sharpness)},
      {"lr", "X", with_default("Adam learning rate of the thresholds", d.st_learning_rate)},
      {"key-pressure", "X",
       with_default("weight of sum exp(-alpha) over key groups", d.st_key_pressure)},
      {"value-pressure", "X",
       with_default("weight of sum exp(-alpha) over value groups", d.st_value_pressure)},
      {"distill-tokens", "N",
       with_default("calibration tokens in the attention-output loss", d.st_distill_tokens)},
      {"seed", "N",
       with_default("seed of the Hadamard sign flips and sampling", static_cast<double>(d.seed))},
      {"backend", "cpu|cuda", "where the linear algebra runs (default cpu)"},
      {"device", "N", "CUDA device ordinal (0)"},
      {"threads", "N", "CPU worker threads (0 = one per core)"},
      {"quiet", nullptr, "no progress output"},
      {"help", nullptr, "this text"},
  };
}

const char* kBuildNotes =
    "\nThe model's shape comes from --config when given, else from the tensors: layers are "
    "counted\n"
    "from the --k-name pattern, d and G*D from the key weight's shape, and --heads, --kv-heads or\n"
    "--head-dim settles the rest. Options given on the command line override the config.\n"
    "Weights are used in place (memory-mapped) when they are F32/F16/BF16; other float dtypes are\n"
    "converted to fp32. Calibration files are safetensors too; without them the ranks come from "
    "the\n"
    "weights' spectra. Example:\n"
    "  starkv build --weights model.safetensors --config config.json --target 0.75 \\\n"
    "               --bits 3 --outlier-bits 4 --uncompressed 0,1,2,-1 --out model.starkv\n";

// Resolves the model's shape from the config, the command line and the tensors, and checks that
// they agree.
ModelShape resolve_shape(const Args& args, const TensorSet& weights, const TensorSet& calib,
                         const std::string& k_name, const std::string& calib_k_name,
                         const std::string& q_name, bool use_q, starkv_weight_layout layout) {
  ModelShape s;
  std::string source = "the tensors";
  if (args.has("config")) {
    s = read_config(args.get("config"));
    source = args.get("config");
  }
  if (args.has("layers")) s.n_layers = static_cast<int32_t>(args.get_int("layers", 0, 1, 100000));
  if (args.has("heads")) s.n_heads = static_cast<int32_t>(args.get_int("heads", 0, 1, 100000));
  if (args.has("kv-heads"))
    s.n_kv_heads = static_cast<int32_t>(args.get_int("kv-heads", 0, 1, 100000));
  if (args.has("head-dim"))
    s.head_dim = static_cast<int32_t>(args.get_int("head-dim", 0, 1, 100000));
  if (args.has("hidden")) s.hidden = static_cast<int32_t>(args.get_int("hidden", 0, 1, 10000000));

  // Layers: count the key tensors (weights, else calibration keys).
  const TensorSet& key_source = weights.empty() ? calib : weights;
  const std::string& key_pattern = weights.empty() ? calib_k_name : k_name;
  if (s.n_layers == 0) {
    const std::set<int32_t> present = layers_present(key_source, key_pattern);
    if (present.empty()) {
      throw CliError("no tensor matches '" + key_pattern + "' in " + key_source.describe() +
                     naming_hint(key_source));
    }
    s.n_layers = *present.rbegin() + 1;
    for (int32_t l = 0; l < s.n_layers; ++l) {
      if (!present.count(l)) {
        throw CliError("layer " + std::to_string(l) + " has no tensor '" +
                       layer_name(key_pattern, l) + "' (found layers up to " +
                       std::to_string(s.n_layers - 1) + ")");
      }
    }
  }

  // Widths from layer 0's tensors: G*D rows of keys, H*D rows of queries, d columns.
  int64_t kv_width = 0, q_width = 0, hidden = 0;
  const SafetensorsTensor& k0 =
      require(key_source, layer_name(key_pattern, 0), key_source.describe());
  if (!weights.empty()) {
    if (k0.shape.size() != 2) {
      throw CliError("tensor '" + k0.name + "' has shape " + k0.shape_string() +
                     "; expected a 2-D projection weight");
    }
    kv_width = layout == STARKV_WEIGHT_OUT_IN ? k0.shape[0] : k0.shape[1];
    hidden = layout == STARKV_WEIGHT_OUT_IN ? k0.shape[1] : k0.shape[0];
    const SafetensorsTensor* q0 = use_q ? weights.find(layer_name(q_name, 0)) : nullptr;
    if (q0 && q0->shape.size() == 2) {
      q_width = layout == STARKV_WEIGHT_OUT_IN ? q0->shape[0] : q0->shape[1];
    }
  } else {
    int64_t rows = 0;
    as_matrix(k0, &rows, &kv_width);
  }

  if (s.head_dim == 0) {
    if (s.n_kv_heads > 0 && kv_width % s.n_kv_heads == 0) {
      s.head_dim = static_cast<int32_t>(kv_width / s.n_kv_heads);
    } else if (s.n_heads > 0 && q_width > 0 && q_width % s.n_heads == 0) {
      s.head_dim = static_cast<int32_t>(q_width / s.n_heads);
    } else if (s.n_heads > 0 && hidden > 0 && hidden % s.n_heads == 0) {
      s.head_dim = static_cast<int32_t>(hidden / s.n_heads);
    } else {
      throw UsageError(
          "cannot tell the head dimension: give --config, or --head-dim, --kv-heads "
          "or --heads (the key weight has " +
          std::to_string(kv_width) + " rows)");
    }
  }
  if (s.n_kv_heads == 0) {
    if (kv_width % s.head_dim != 0) {
      throw CliError("the key width " + std::to_string(kv_width) +
                     " is not a multiple of the head dim " + std::to_string(s.head_dim));
    }
    s.n_kv_heads = static_cast<int32_t>(kv_width / s.head_dim);
  }
  if (s.n_heads == 0) {
    if (q_width > 0 && q_width % s.head_dim == 0) {
      s.n_heads = static_cast<int32_t>(q_width / s.head_dim);
    } else {
      throw UsageError(
          "cannot tell the number of query heads (no query weight): give --heads or "
          "--config");
    }
  }
  if (s.hidden == 0) s.hidden = static_cast<int32_t>(hidden);

  // Everything must agree.
  const std::string shape_text = "H=" + std::to_string(s.n_heads) +
                                 ", G=" + std::to_string(s.n_kv_heads) +
                                 ", D=" + std::to_string(s.head_dim) + " (from " + source + ")";
  if (s.n_heads % s.n_kv_heads != 0) {
    throw CliError("query heads must be a multiple of KV heads: " + shape_text);
  }
  if (kv_width != int64_t{s.n_kv_heads} * s.head_dim) {
    throw CliError("tensor '" + k0.name + "' has shape " + k0.shape_string() + " but " +
                   shape_text + " needs " + std::to_string(int64_t{s.n_kv_heads} * s.head_dim) +
                   " key channels");
  }
  if (!weights.empty() && hidden != s.hidden) {
    throw CliError("tensor '" + k0.name + "' has shape " + k0.shape_string() +
                   " but the model width is " + std::to_string(s.hidden));
  }
  if (q_width > 0 && q_width != int64_t{s.n_heads} * s.head_dim) {
    throw CliError("the query weight has " + std::to_string(q_width) + " rows but " + shape_text +
                   " needs " + std::to_string(int64_t{s.n_heads} * s.head_dim));
  }
  if (weights.empty()) s.hidden = 0;  // built from K/V samples only
  return s;
}

starkv_rope_scaling parse_scaling(const std::string& type, bool from_config) {
  if (type.empty() || type == "none") return STARKV_ROPE_SCALING_NONE;
  if (type == "linear") return STARKV_ROPE_SCALING_LINEAR;
  if (type == "llama3") return STARKV_ROPE_SCALING_LLAMA3;
  throw CliError(std::string(from_config ? "the config's " : "") + "rope scaling '" + type +
                 "' is not supported (starkv applies none, linear and llama3); override it with "
                 "--rope-scaling if you know what you are doing");
}

void check_output_dir(const std::string& out) {
  const size_t slash = out.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : out.substr(0, slash));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw CliError("cannot write " + out + ": directory " + dir + " does not exist");
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw CliError("cannot write " + out + ": directory " + dir + " is not writable");
  }
}

}  // namespace

int cmd_build(int argc, char** argv) {
  Args args("build", "--weights MODEL.safetensors --out MODEL.starkv [options]", build_options());
  args.parse(argc, argv);
  if (args.has("help")) {
    args.print_help(stdout);
    std::printf("%s", kBuildNotes);
    return kExitOk;
  }
  if (!args.positional().empty()) {
    throw UsageError("unexpected argument '" + args.positional()[0] + "'");
  }
  if (!args.has("out")) throw UsageError("--out FILE is required");
  if (!args.has("weights") && !args.has("calib-kv")) {
    throw UsageError("--weights FILE is required (or --calib-kv FILE to build from samples alone)");
  }
  const std::string out_path = args.get("out");
  check_output_dir(out_path);
  const bool quiet = args.has("quiet");

  // ---- names and files ----
  const std::string k_name = args.get("k-name", kDefaultK);
  const std::string v_name = args.get("v-name", kDefaultV);
  const std::string q_name = args.get("q-name", kDefaultQ);
  const std::string ck_name = args.get("calib-k-name", "layers.{i}.k");
  const std::string cv_name = args.get("calib-v-name", "layers.{i}.v");
  const std::string cq_name = args.get("calib-q-name", "layers.{i}.q");
  const std::string ch_name = args.get("calib-hidden-name", "layers.{i}.hidden");
  check_pattern(k_name, "k-name");
  check_pattern(v_name, "v-name");
  check_pattern(q_name, "q-name");
  check_pattern(ck_name, "calib-k-name");
  check_pattern(cv_name, "calib-v-name");
  check_pattern(cq_name, "calib-q-name");
  check_pattern(ch_name, "calib-hidden-name");
  const starkv_weight_layout layout =
      args.get_choice("weight-layout", "out-in", {"out-in", "in-out"}) == "in-out"
          ? STARKV_WEIGHT_IN_OUT
          : STARKV_WEIGHT_OUT_IN;

  TensorSet weights, calib_kv, calib_hidden;
  for (const std::string& path : args.get_all("weights")) weights.add(path);
  if (args.has("calib-kv")) calib_kv.add(args.get("calib-kv"));
  if (args.has("calib-hidden")) {
    if (weights.empty()) throw UsageError("--calib-hidden needs --weights");
    calib_hidden.add(args.get("calib-hidden"));
  }
  // Query weights are optional: used when present under the default name, required when named.
  const bool use_q = !args.has("no-q") && !weights.empty() &&
                     (args.has("q-name") || weights.find(layer_name(q_name, 0)) != nullptr);

  // ---- the model and the profile parameters ----
  const ModelShape shape =
      resolve_shape(args, weights, calib_kv, k_name, ck_name, q_name, use_q, layout);
  starkv_profile_params p = starkv_profile_params_default();
  p.n_layers = shape.n_layers;
  p.n_heads = shape.n_heads;
  p.n_kv_heads = shape.n_kv_heads;
  p.head_dim = shape.head_dim;
  p.hidden_dim = shape.hidden;

  const std::string rope = args.get_choice("rope", "neox", {"neox", "gptj", "none"});
  p.rope_style = rope == "gptj"   ? STARKV_ROPE_GPTJ
                 : rope == "none" ? STARKV_ROPE_NONE
                                  : STARKV_ROPE_NEOX;
  p.rope_theta = static_cast<float>(args.get_double("rope-theta", shape.rope_theta, 1.0, 1e12));
  p.rope_dim = static_cast<int32_t>(args.get_int("rope-dim", shape.rope_dim, 0, shape.head_dim));
  if (p.rope_dim % 2 != 0) throw UsageError("--rope-dim must be even");
  p.rope_scaling =
      args.has("rope-scaling")
          ? parse_scaling(args.get_choice("rope-scaling", "none", {"none", "linear", "llama3"}),
                          false)
          : parse_scaling(shape.rope_scaling_type, true);
  p.rope_scaling_factor =
      static_cast<float>(args.get_double("rope-factor", shape.rope_factor, 1e-6, 1e6));
  p.rope_low_freq_factor = static_cast<float>(
      args.get_double("rope-low-freq-factor", shape.rope_low_freq_factor, 1e-6, 1e6));
  p.rope_high_freq_factor = static_cast<float>(
      args.get_double("rope-high-freq-factor", shape.rope_high_freq_factor, 1e-6, 1e6));
  p.rope_original_max_position = static_cast<int32_t>(
      args.get_int("rope-original-max-pos", shape.rope_original_max_position, 1, INT32_MAX));
  p.attention_scale = static_cast<float>(args.get_double("attention-scale", 0.0, 0.0, 1e6));

  p.target_compression =
      static_cast<float>(args.get_double("target", p.target_compression, 0.0, 0.98));
  if (args.has("key-target") != args.has("value-target")) {
    throw UsageError("--key-target and --value-target go together");
  }
  if (args.has("key-target")) {
    p.key_compression = static_cast<float>(args.get_double("key-target", 0.0, 0.0, 0.98));
    p.value_compression = static_cast<float>(args.get_double("value-target", 0.0, 0.0, 0.98));
  }
  p.target_counts_all_layers = args.has("target-counts-all-layers") ? 1 : 0;
  const std::string allocator = args.get_choice("allocator", "soft", {"soft", "static", "greedy"});
  p.allocator = allocator == "static"   ? STARKV_ALLOC_STATIC
                : allocator == "greedy" ? STARKV_ALLOC_GREEDY
                                        : STARKV_ALLOC_SOFT_THRESHOLD;
  p.key_decomposition = args.get_choice("keys", "hd", {"hd", "jd"}) == "jd"
                            ? STARKV_DECOMP_JOINT
                            : STARKV_DECOMP_HEADWISE;
  p.value_decomposition = args.get_choice("values", "jd", {"hd", "jd"}) == "hd"
                              ? STARKV_DECOMP_HEADWISE
                              : STARKV_DECOMP_JOINT;
  p.inlier_bits = std::stoi(
      args.get_choice("bits", std::to_string(p.inlier_bits), {"32", "16", "4", "3", "2"}));
  p.outlier_bits =
      std::stoi(args.get_choice("outlier-bits", std::to_string(p.outlier_bits), {"16", "8", "4"}));
  p.outlier_fraction =
      static_cast<float>(args.get_double("outlier-fraction", p.outlier_fraction, 0.0, 1.0));
  if (args.has("nibbles")) p.pack_3bit_in_nibbles = 1;
  if (args.has("no-hadamard")) p.hadamard = 0;
  p.min_key_rank =
      static_cast<int32_t>(args.get_int("min-key-rank", p.min_key_rank, 0, shape.head_dim));
  p.key_rank_tile = static_cast<int32_t>(args.get_int("key-tile", p.key_rank_tile, 1, 4096));
  p.value_rank_tile = static_cast<int32_t>(args.get_int("value-tile", p.value_rank_tile, 1, 4096));

  std::vector<int32_t> uncompressed;
  for (int32_t l : parse_int_list(args.get("uncompressed"), "uncompressed")) {
    const int32_t layer = l < 0 ? shape.n_layers + l : l;
    if (layer < 0 || layer >= shape.n_layers) {
      throw UsageError("--uncompressed: layer " + std::to_string(l) + " is not in 0.." +
                       std::to_string(shape.n_layers - 1));
    }
    uncompressed.push_back(layer);
  }
  p.uncompressed_layers = uncompressed.empty() ? nullptr : uncompressed.data();
  p.n_uncompressed_layers = static_cast<int32_t>(uncompressed.size());

  p.max_calibration_tokens = static_cast<int32_t>(
      args.get_int("max-calib-tokens", p.max_calibration_tokens, 1, INT32_MAX));
  p.whitening_lambda =
      static_cast<float>(args.get_double("whitening-lambda", p.whitening_lambda, 0.0, 1e6));
  p.st_max_steps = static_cast<int32_t>(args.get_int("steps", p.st_max_steps, 0, 10000000));
  p.st_sharpness = static_cast<float>(args.get_double("sharpness", p.st_sharpness, 1e-6, 1e6));
  p.st_learning_rate = static_cast<float>(args.get_double("lr", p.st_learning_rate, 1e-9, 10.0));
  p.st_key_pressure =
      static_cast<float>(args.get_double("key-pressure", p.st_key_pressure, 0.0, 1e6));
  p.st_value_pressure =
      static_cast<float>(args.get_double("value-pressure", p.st_value_pressure, 0.0, 1e6));
  p.st_distill_tokens =
      static_cast<int32_t>(args.get_int("distill-tokens", p.st_distill_tokens, 1, INT32_MAX));
  p.seed = static_cast<uint64_t>(args.get_int("seed", static_cast<int64_t>(p.seed), 0, INT64_MAX));

  Progress progress;
  progress.quiet = quiet;
  progress.tty = ::isatty(STDERR_FILENO) != 0;
  progress.n_layers = shape.n_layers;
  p.progress = progress_callback;
  p.progress_user = &progress;

  // ---- what we are about to do ----
  if (!quiet) {
    std::fprintf(stderr, "model:       %s%s%d layers, H=%d, G=%d, D=%d, d=%d (from %s)\n",
                 shape.model_type.c_str(), shape.model_type.empty() ? "" : ", ", p.n_layers,
                 p.n_heads, p.n_kv_heads, p.head_dim, p.hidden_dim,
                 args.has("config") ? args.get("config").c_str() : "the tensors");
    std::fprintf(stderr, "weights:     %s\n",
                 weights.empty() ? "none (calibration samples only)" : weights.describe().c_str());
    std::fprintf(stderr, "rope:        %s, theta %g%s\n", rope_style_name(p.rope_style),
                 static_cast<double>(p.rope_theta),
                 p.rope_scaling == STARKV_ROPE_SCALING_LINEAR   ? ", linear scaling"
                 : p.rope_scaling == STARKV_ROPE_SCALING_LLAMA3 ? ", llama3 scaling"
                                                                : "");
    std::fprintf(stderr, "target:      %.3f of latent channels removed (%s allocator)",
                 static_cast<double>(p.target_compression), allocator.c_str());
    if (args.has("key-target")) {
      std::fprintf(stderr, ", keys %.3f / values %.3f", static_cast<double>(p.key_compression),
                   static_cast<double>(p.value_compression));
    }
    std::fprintf(stderr, "; bits %d/%d\n", p.inlier_bits, p.outlier_bits);
    if (!calib_kv.empty()) std::fprintf(stderr, "calibration: %s\n", calib_kv.describe().c_str());
  }

  // ---- build ----
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = args.get_choice("backend", "cpu", {"cpu", "cuda"}) == "cuda" ? STARKV_BACKEND_CUDA
                                                                            : STARKV_BACKEND_CPU;
  cp.device = static_cast<int32_t>(args.get_int("device", 0, 0, 1024));
  cp.n_threads = static_cast<int32_t>(args.get_int("threads", 0, 0, 4096));
  starkv_context* raw_ctx = nullptr;
  check(starkv_context_create(&cp, &raw_ctx), "creating the context");
  ContextPtr ctx(raw_ctx);
  starkv_profile_builder* raw_builder = nullptr;
  check(starkv_profile_builder_create(ctx.get(), &p, &raw_builder), "creating the profile builder");
  BuilderPtr builder(raw_builder);
  InterruptScope interrupt_scope;

  bool warned_bias = false;
  for (int32_t l = 0; l < shape.n_layers; ++l) {
    if (g_interrupted) throw CliError("interrupted");
    progress.layer_start(l);
    starkv_layer_data data = starkv_layer_data_default();
    BoundTensors w, ckv, ch;
    if (!weights.empty()) {
      const std::string where = weights.describe();
      const SafetensorsTensor& wk = require(weights, layer_name(k_name, l), where);
      const SafetensorsTensor& wv = require(weights, layer_name(v_name, l), where);
      const SafetensorsTensor* wq =
          use_q ? &require(weights, layer_name(q_name, l), where) : nullptr;
      const std::vector<int64_t> kv_shape =
          layout == STARKV_WEIGHT_OUT_IN
              ? std::vector<int64_t>{int64_t{p.n_kv_heads} * p.head_dim, p.hidden_dim}
              : std::vector<int64_t>{p.hidden_dim, int64_t{p.n_kv_heads} * p.head_dim};
      for (const SafetensorsTensor* t : {&wk, &wv}) {
        if (t->shape != kv_shape) {
          throw CliError("tensor '" + t->name + "' has shape " + t->shape_string() +
                         "; expected [" + std::to_string(kv_shape[0]) + ", " +
                         std::to_string(kv_shape[1]) + "]");
        }
      }
      if (wq) {
        const int64_t rows = int64_t{p.n_heads} * p.head_dim;
        const std::vector<int64_t> q_shape = layout == STARKV_WEIGHT_OUT_IN
                                                 ? std::vector<int64_t>{rows, p.hidden_dim}
                                                 : std::vector<int64_t>{p.hidden_dim, rows};
        if (wq->shape != q_shape) {
          throw CliError("tensor '" + wq->name + "' has shape " + wq->shape_string() +
                         "; expected [" + std::to_string(q_shape[0]) + ", " +
                         std::to_string(q_shape[1]) + "]");
        }
      }
      const std::string k_bias = layer_name(k_name, l);
      if (!warned_bias && !quiet && k_bias.size() > 7 &&
          k_bias.compare(k_bias.size() - 7, 7, ".weight") == 0 &&
          weights.find(k_bias.substr(0, k_bias.size() - 7) + ".bias")) {
        progress.end_line();
        std::fprintf(stderr,
                     "note: the key projection has a bias, which weight-only factors do not "
                     "see; --calib-kv samples make the profile data-aware\n");
        warned_bias = true;
      }
      w = bind({&wk, &wv, wq});
      data.w_k = w.data[0];
      data.w_v = w.data[1];
      data.w_q = w.data[2];
      data.weight_dtype = w.dtype;
      data.weight_layout = layout;
    }
    if (!calib_kv.empty()) {
      const std::string where = calib_kv.describe();
      const SafetensorsTensor& ck = require(calib_kv, layer_name(ck_name, l), where);
      const SafetensorsTensor& cv = require(calib_kv, layer_name(cv_name, l), where);
      const SafetensorsTensor* cq = calib_kv.find(layer_name(cq_name, l));
      int64_t nk = 0, wk = 0, nv = 0, wv = 0, nq = 0, wq = 0;
      as_matrix(ck, &nk, &wk);
      as_matrix(cv, &nv, &wv);
      const int64_t kv_width = int64_t{p.n_kv_heads} * p.head_dim;
      if (wk != kv_width || wv != kv_width || nk != nv) {
        throw CliError("calibration tensors '" + ck.name + "' " + ck.shape_string() + " and '" +
                       cv.name + "' " + cv.shape_string() + " must both be [n, " +
                       std::to_string(kv_width) + "] with the same n");
      }
      if (cq) {
        as_matrix(*cq, &nq, &wq);
        if (nq != nk || wq != int64_t{p.n_heads} * p.head_dim) {
          throw CliError("calibration tensor '" + cq->name + "' " + cq->shape_string() +
                         " must be [" + std::to_string(nk) + ", " +
                         std::to_string(int64_t{p.n_heads} * p.head_dim) + "]");
        }
      }
      ckv = bind({&ck, &cv, cq});
      data.calib_k = ckv.data[0];
      data.calib_v = ckv.data[1];
      data.calib_q = ckv.data[2];
      data.n_calib_kv = nk;
      data.calib_kv_dtype = ckv.dtype;
    }
    if (!calib_hidden.empty()) {
      const SafetensorsTensor& hx =
          require(calib_hidden, layer_name(ch_name, l), calib_hidden.describe());
      int64_t n = 0, width = 0;
      as_matrix(hx, &n, &width);
      if (width != p.hidden_dim) {
        throw CliError("calibration tensor '" + hx.name + "' " + hx.shape_string() +
                       " must be [n, " + std::to_string(p.hidden_dim) + "]");
      }
      ch = bind({&hx});
      data.calib_hidden = ch.data[0];
      data.n_calib_hidden = n;
      data.calib_hidden_dtype = ch.dtype;
    }
    const starkv_status st = starkv_profile_builder_add_layer(builder.get(), l, &data);
    if (st != STARKV_OK) progress.end_line();
    check(st, "layer " + std::to_string(l));
    progress.layer_done(l);
  }

  progress.layer = -1;
  starkv_profile* raw_profile = nullptr;
  const starkv_status st = starkv_profile_builder_finish(builder.get(), &raw_profile);
  progress.end_line();
  check(st, "allocating ranks");
  ProfilePtr profile(raw_profile);
  check(starkv_profile_save(profile.get(), out_path.c_str()), "saving " + out_path);

  struct stat st_out;
  const long long size = ::stat(out_path.c_str(), &st_out) == 0 ? st_out.st_size : -1;
  std::printf("wrote %s (%lld bytes) in %.1f s\n", out_path.c_str(), size, progress.seconds());
  print_profile_summary(stdout, profile.get());
  return kExitOk;
}

}  // namespace starkv_cli
