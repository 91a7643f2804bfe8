#include "synthetic_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include "half_float.h"
#include "safetensors_file.h"

namespace starkv_cli {
namespace {

// Columns of a random [rows, cols] matrix (cols <= rows), orthonormalized by modified
// Gram-Schmidt twice (once is not enough in floating point). Row-major.
std::vector<double> random_orthonormal(int32_t rows, int32_t cols, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> m(static_cast<size_t>(rows) * cols);
  for (double& v : m) v = normal(rng);
  auto at = [&](int32_t r, int32_t c) -> double& { return m[static_cast<size_t>(r) * cols + c]; };
  for (int pass = 0; pass < 2; ++pass) {
    for (int32_t c = 0; c < cols; ++c) {
      for (int32_t p = 0; p < c; ++p) {
        double dot = 0;
        for (int32_t r = 0; r < rows; ++r) dot += at(r, p) * at(r, c);
        for (int32_t r = 0; r < rows; ++r) at(r, c) -= dot * at(r, p);
      }
      double norm = 0;
      for (int32_t r = 0; r < rows; ++r) norm += at(r, c) * at(r, c);
      norm = std::sqrt(norm);
      for (int32_t r = 0; r < rows; ++r) at(r, c) /= norm;
    }
  }
  return m;
}

// Writes U diag(s) V^T ([out, in], U: [out, k], V: [in, k]) into w at row offset `row0`, with
// the spectrum s_i = exp(-i / tau) scaled so the rows have unit mean square output for unit input.
void write_block(std::vector<float>* w, int32_t row0, int32_t out, int32_t in, double tau,
                 std::mt19937_64& rng) {
  const int32_t k = out;  // full rank: out <= in
  const std::vector<double> u = random_orthonormal(out, k, rng);
  const std::vector<double> v = random_orthonormal(in, k, rng);
  std::vector<double> s(static_cast<size_t>(k));
  double energy = 0;
  for (int32_t i = 0; i < k; ++i) energy += (s[i] = std::exp(-i / tau)) * s[i];
  // E|W x|^2 = sum s_i^2 for x ~ N(0, I): normalize it to `out` (unit variance per channel).
  const double norm = std::sqrt(out / energy);
  for (int32_t r = 0; r < out; ++r) {
    for (int32_t c = 0; c < in; ++c) {
      double acc = 0;
      for (int32_t i = 0; i < k; ++i)
        acc += u[static_cast<size_t>(r) * k + i] * s[i] * v[static_cast<size_t>(c) * k + i];
      (*w)[static_cast<size_t>(row0 + r) * in + c] = static_cast<float>(acc * norm);
    }
  }
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  if (!f || !(f << text) || !f.flush()) throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

}  // namespace

SyntheticModel make_synthetic_model(const SyntheticShape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  SyntheticModel model;
  model.shape = shape;
  const int32_t H = shape.n_heads, G = shape.n_kv_heads, D = shape.head_dim, d = shape.hidden;
  if (G * D > d) throw std::invalid_argument("synthetic model: needs G*D <= d");
  for (int32_t l = 0; l < shape.n_layers; ++l) {
    SyntheticLayer layer;
    layer.w_k.resize(static_cast<size_t>(G) * D * d);
    layer.w_v.resize(static_cast<size_t>(G) * D * d);
    layer.w_q.resize(static_cast<size_t>(H) * D * d);
    // Key heads decay at different rates (tau from D/32 to D/12), and differently per layer.
    for (int32_t g = 0; g < G; ++g) {
      const double t = G > 1 ? static_cast<double>((g + l) % G) / (G - 1) : 0.5;
      write_block(&layer.w_k, g * D, D, d, D / 32.0 * std::pow(32.0 / 12.0, t), rng);
    }
    write_block(&layer.w_v, 0, G * D, d, G * D / 16.0, rng);
    // Queries: dense Gaussian with twice unit scale, so the softmax is not flat.
    const double q_scale = 2.0 / std::sqrt(static_cast<double>(d));
    for (float& w : layer.w_q) w = static_cast<float>(normal(rng) * q_scale);
    model.layers.push_back(std::move(layer));
  }
  return model;
}

void round_weights_to_bf16(SyntheticModel* model) {
  for (SyntheticLayer& layer : model->layers) {
    for (std::vector<float>* w : {&layer.w_q, &layer.w_k, &layer.w_v}) {
      for (float& x : *w) x = bf16_to_float(float_to_bf16(x));
    }
  }
}

std::vector<float> synthetic_hidden(int64_t n, int32_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (float& v : x) v = normal(rng);
  return x;
}

void rope_neox(double* head, int32_t head_dim, int64_t position, double theta) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * std::pow(theta, -2.0 * i / head_dim);
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

LayerActivations layer_activations(const SyntheticModel& model, int32_t layer,
                                   const std::vector<float>& x, int64_t n) {
  const SyntheticShape& s = model.shape;
  const SyntheticLayer& w = model.layers[static_cast<size_t>(layer)];
  const int32_t d = s.hidden, D = s.head_dim, kv = s.n_kv_heads * D, qw = s.n_heads * D;
  LayerActivations a;
  a.keys.resize(static_cast<size_t>(n) * kv);
  a.values.resize(static_cast<size_t>(n) * kv);
  a.queries.resize(static_cast<size_t>(n) * qw);
  std::vector<double> q(static_cast<size_t>(qw));
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = &x[static_cast<size_t>(t) * d];
    auto row_dot = [&](const std::vector<float>& m, int32_t row) {
      double acc = 0;
      for (int32_t c = 0; c < d; ++c)
        acc += static_cast<double>(m[static_cast<size_t>(row) * d + c]) * xt[c];
      return acc;
    };
    for (int32_t r = 0; r < kv; ++r) {
      a.keys[static_cast<size_t>(t) * kv + r] = static_cast<float>(row_dot(w.w_k, r));
      a.values[static_cast<size_t>(t) * kv + r] = static_cast<float>(row_dot(w.w_v, r));
    }
    for (int32_t r = 0; r < qw; ++r) q[r] = row_dot(w.w_q, r);
    for (int32_t h = 0; h < s.n_heads; ++h)
      rope_neox(&q[static_cast<size_t>(h) * D], D, t, s.rope_theta);
    for (int32_t r = 0; r < qw; ++r)
      a.queries[static_cast<size_t>(t) * qw + r] = static_cast<float>(q[r]);
  }
  return a;
}

std::vector<double> dense_attention(const SyntheticShape& shape, const float* keys,
                                    const float* values, const float* query, int64_t kv_length) {
  const int32_t H = shape.n_heads, G = shape.n_kv_heads, D = shape.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> out(static_cast<size_t>(H) * D, 0.0);
  std::vector<double> k(static_cast<size_t>(D)), scores(static_cast<size_t>(kv_length));
  for (int32_t h = 0; h < H; ++h) {
    const int32_t g = h / (H / G);  // GQA: consecutive query heads share a KV head
    double max_score = -INFINITY;
    for (int64_t t = 0; t < kv_length; ++t) {
      for (int32_t c = 0; c < D; ++c) k[c] = keys[(static_cast<size_t>(t) * G + g) * D + c];
      rope_neox(k.data(), D, t, shape.rope_theta);
      double dot = 0;
      for (int32_t c = 0; c < D; ++c) dot += query[static_cast<size_t>(h) * D + c] * k[c];
      scores[t] = dot * scale;
      max_score = std::max(max_score, scores[t]);
    }
    double sum = 0;
    for (int64_t t = 0; t < kv_length; ++t) sum += (scores[t] = std::exp(scores[t] - max_score));
    for (int64_t t = 0; t < kv_length; ++t) {
      const double p = scores[t] / sum;
      for (int32_t c = 0; c < D; ++c) {
        out[static_cast<size_t>(h) * D + c] += p * values[(static_cast<size_t>(t) * G + g) * D + c];
      }
    }
  }
  return out;
}

void write_model_files(const std::string& dir) {
  SyntheticShape shape;
  shape.n_layers = 4;
  shape.n_heads = 8;
  shape.n_kv_heads = 2;
  shape.head_dim = 32;
  shape.hidden = 128;
  SyntheticModel model = make_synthetic_model(shape, 1234);
  round_weights_to_bf16(&model);

  // model.safetensors: bf16 projections as a Llama checkpoint names them, and a few tensors the
  // builder must ignore (other dtypes, other names).
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<SafetensorsTensorToWrite> tensors;
  auto add_bf16 = [&](const std::string& name, const std::vector<float>& w, int64_t rows) {
    std::vector<uint16_t> b(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = float_to_bf16(w[i]);
    bf16.push_back(std::move(b));
    tensors.push_back({name, SafetensorsDtype::BF16, {rows, shape.hidden}, nullptr});
  };
  const int64_t kv = int64_t{shape.n_kv_heads} * shape.head_dim;
  const int64_t qw = int64_t{shape.n_heads} * shape.head_dim;
  for (int32_t l = 0; l < shape.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    add_bf16(p + "q_proj.weight", model.layers[l].w_q, qw);
    add_bf16(p + "k_proj.weight", model.layers[l].w_k, kv);
    add_bf16(p + "v_proj.weight", model.layers[l].w_v, kv);
  }
  for (size_t i = 0; i < bf16.size(); ++i) tensors[i].data = bf16[i].data();
  const std::vector<float> norm(static_cast<size_t>(shape.hidden), 1.0f);
  std::vector<uint16_t> embed(static_cast<size_t>(16) * shape.hidden);
  for (size_t i = 0; i < embed.size(); ++i)
    embed[i] = float_to_half(static_cast<float>(i % 7) * 0.125f);
  const std::vector<int64_t> positions = {0, 1, 2, 3};
  tensors.push_back(
      {"model.embed_tokens.weight", SafetensorsDtype::F16, {16, shape.hidden}, embed.data()});
  tensors.push_back({"model.norm.weight", SafetensorsDtype::F32, {shape.hidden}, norm.data()});
  tensors.push_back({"position_ids", SafetensorsDtype::I64, {4}, positions.data()});
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});

  // The same projections in two shards with an index, as large checkpoints come: layers 0-1 in
  // the first, 2-3 in the second (3 tensors per layer).
  const std::vector<SafetensorsTensorToWrite> first(tensors.begin(), tensors.begin() + 6);
  const std::vector<SafetensorsTensorToWrite> second(tensors.begin() + 6, tensors.begin() + 12);
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first, {{"format", "pt"}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", second, {{"format", "pt"}});
  std::string index = "{\n  \"metadata\": {},\n  \"weight_map\": {\n";
  for (size_t i = 0; i < 12; ++i) {
    index += "    \"" + tensors[i].name + "\": \"model-0000" + (i < 6 ? "1" : "2") +
             "-of-00002.safetensors\"" + (i + 1 < 12 ? ",\n" : "\n");
  }
  write_text(dir + "/model.safetensors.index.json", index + "  }\n}\n");

  write_text(dir + "/config.json",
             "{\n"
             "  \"architectures\": [\"LlamaForCausalLM\"],\n"
             "  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": " +
                 std::to_string(shape.hidden) +
                 ",\n"
                 "  \"num_hidden_layers\": " +
                 std::to_string(shape.n_layers) +
                 ",\n"
                 "  \"num_attention_heads\": " +
                 std::to_string(shape.n_heads) +
                 ",\n"
                 "  \"num_key_value_heads\": " +
                 std::to_string(shape.n_kv_heads) +
                 ",\n"
                 "  \"head_dim\": " +
                 std::to_string(shape.head_dim) +
                 ",\n"
                 "  \"rope_theta\": 10000.0,\n"
                 "  \"rope_scaling\": null,\n"
                 "  \"torch_dtype\": \"bfloat16\"\n"
                 "}\n");

  // A Llama-3.1-style variant: llama3 RoPE scaling, a newer theta. (head_dim must be explicit:
  // this tiny model's H*D is not its hidden size.)
  write_text(dir + "/config_llama3.json",
             "{\n"
             "  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": " +
                 std::to_string(shape.hidden) +
                 ",\n"
                 "  \"num_hidden_layers\": " +
                 std::to_string(shape.n_layers) +
                 ",\n"
                 "  \"num_attention_heads\": " +
                 std::to_string(shape.n_heads) +
                 ",\n"
                 "  \"num_key_value_heads\": " +
                 std::to_string(shape.n_kv_heads) +
                 ",\n"
                 "  \"head_dim\": " +
                 std::to_string(shape.head_dim) +
                 ",\n"
                 "  \"rope_theta\": 500000.0,\n"
                 "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                 "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                 "\"original_max_position_embeddings\": 8192}\n"
                 "}\n");

  // calib.safetensors: 64 tokens of each layer's pre-RoPE K, V and post-RoPE Q.
  const int64_t n = 64;
  const std::vector<float> x = synthetic_hidden(n, shape.hidden, 99);
  std::vector<LayerActivations> acts;
  for (int32_t l = 0; l < shape.n_layers; ++l) acts.push_back(layer_activations(model, l, x, n));
  std::vector<SafetensorsTensorToWrite> calib;
  for (int32_t l = 0; l < shape.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    calib.push_back({p + "k", SafetensorsDtype::F32, {n, kv}, acts[l].keys.data()});
    calib.push_back({p + "v", SafetensorsDtype::F32, {n, kv}, acts[l].values.data()});
    calib.push_back({p + "q", SafetensorsDtype::F32, {n, qw}, acts[l].queries.data()});
  }
  write_safetensors(dir + "/calib.safetensors", calib);
}

std::vector<MalformedCase> malformed_safetensors_cases() {
  std::vector<MalformedCase> cases;
  const float data[4] = {1, 2, 3, 4};
  const std::vector<uint8_t> good =
      serialize_safetensors({{"x", SafetensorsDtype::F32, {2, 2}, data}});

  cases.push_back({"too_short", {1, 2, 3, 4}, "too short"});
  std::vector<uint8_t> huge = good;
  huge[3] = 0x7f;  // header length ~2 GB
  cases.push_back({"huge_header_length", huge, "larger than"});
  std::vector<uint8_t> long_header = good;
  long_header[0] = static_cast<uint8_t>(long_header[0] + 64);  // longer than the file
  cases.push_back({"header_past_end", long_header, "truncated"});
  std::vector<uint8_t> truncated(good.begin(), good.end() - 4);
  cases.push_back({"truncated_data", truncated, "reach past the end"});
  cases.push_back({"not_json", with_header("{\"x\": {\"dtype\": \"F32\",", 0), "not valid JSON"});
  cases.push_back({"not_an_object", with_header("[1, 2, 3]", 0), "does not start with '{'"});
  cases.push_back({"unknown_dtype",
                   with_header(R"({"x":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", 8),
                   "unknown dtype"});
  cases.push_back({"shape_mismatch",
                   with_header(R"({"x":{"dtype":"F32","shape":[4,4],"data_offsets":[0,32]}})", 32),
                   "needs 64 bytes"});
  cases.push_back({"negative_shape",
                   with_header(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                   "not a size"});
  cases.push_back({"overlap",
                   with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               12),
                   "overlap"});
  cases.push_back({"hole",
                   with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                               12),
                   "belong to no tensor"});
  cases.push_back({"duplicate_name",
                   with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               8),
                   "twice"});
  cases.push_back({"missing_field", with_header(R"({"a":{"dtype":"F32","shape":[1]}})", 4),
                   "needs \"dtype\", \"shape\" and \"data_offsets\""});
  cases.push_back({"bad_metadata",
                   with_header(R"({"__metadata__":{"n":3},"a":{"dtype":"U8","shape":[1],)"
                               R"("data_offsets":[0,1]}})",
                               1),
                   "__metadata__ entry 'n' is not a string"});
  return cases;
}

}  // namespace starkv_cli
