// A small random attention model with known spectra, for `starkv selftest` and the test fixtures:
// projection weights whose singular values decay at a different rate per KV head (so a learned rank
// allocation has something to learn), hidden states, the keys/values/queries they produce, and a
// dense attention computed here in double precision (RoPE, GQA, causal) as the oracle.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace starkv_cli {

struct SyntheticShape {
  int32_t n_layers = 2;
  int32_t n_heads = 8;     // H
  int32_t n_kv_heads = 2;  // G
  int32_t head_dim = 64;   // D
  int32_t hidden = 256;    // d
  float rope_theta = 10000.0f;
};

struct SyntheticLayer {
  // Weights in OUT_IN layout (torch nn.Linear): w_q [H*D, d], w_k and w_v [G*D, d].
  std::vector<float> w_q, w_k, w_v;
};

struct SyntheticModel {
  SyntheticShape shape;
  std::vector<SyntheticLayer> layers;
};

// Key heads get spectra exp(-i/tau) with tau spread over heads and layers; values one joint
// spectrum over G*D directions. Keys and values have unit mean square entries for unit hidden
// states.
SyntheticModel make_synthetic_model(const SyntheticShape& shape, uint64_t seed);

// Rounds every weight to bfloat16 precision (what a bf16 checkpoint of the model holds).
void round_weights_to_bf16(SyntheticModel* model);

// Hidden states [n, d], i.i.d. standard normal.
std::vector<float> synthetic_hidden(int64_t n, int32_t d, uint64_t seed);

// One layer's activations for hidden states x [n, d] at positions 0..n-1: pre-RoPE keys and values
// [n, G*D], post-RoPE queries [n, H*D] (RoPE neox, the model's theta).
struct LayerActivations {
  std::vector<float> keys, values, queries;
};
LayerActivations layer_activations(const SyntheticModel& model, int32_t layer,
                                   const std::vector<float>& x, int64_t n);

// Rotates one head vector in place by RoPE neox (pairs (i, i + D/2)) at `position`.
void rope_neox(double* head, int32_t head_dim, int64_t position, double theta);

// Dense attention of one post-RoPE query [H*D] over the first kv_length tokens of pre-RoPE keys
// and values [T, G*D] (RoPE neox applied to the keys here; softmax scale 1/sqrt(D)). Returns [H*D].
std::vector<double> dense_attention(const SyntheticShape& shape, const float* keys,
                                    const float* values, const float* query, int64_t kv_length);

// Writes a tiny Llama-style checkpoint to `dir`: model.safetensors (bf16 q/k/v projections plus a
// few unrelated tensors of other dtypes), the same projections sharded in two files with a
// model.safetensors.index.json, config.json and config_llama3.json (llama3 RoPE scaling), and
// calib.safetensors (layers.{i}.k/.v/.q for 64 tokens). Throws on I/O errors.
void write_model_files(const std::string& dir);

// Malformed safetensors images, each with a fragment its error message must contain.
struct MalformedCase {
  std::string name;  // also the file stem for --write-malformed
  std::vector<uint8_t> bytes;
  std::string expected_message;
};
std::vector<MalformedCase> malformed_safetensors_cases();

}  // namespace starkv_cli
