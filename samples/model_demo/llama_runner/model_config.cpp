#include "model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace llama_runner {

RopeStyle parse_rope_style(const std::string& s) {
  if (s == "neox") return RopeStyle::kNeox;
  if (s == "gptj") return RopeStyle::kGptj;
  throw std::runtime_error("unknown rope_style '" + s + "' (expected neox or gptj)");
}

const char* rope_style_name(RopeStyle s) { return s == RopeStyle::kNeox ? "neox" : "gptj"; }

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const nlohmann::json j = nlohmann::json::parse(in);

  ModelConfig c;
  c.hidden_size = j.at("hidden_size").get<int>();
  c.intermediate_size = j.at("intermediate_size").get<int>();
  c.n_layers = j.at("num_hidden_layers").get<int>();
  c.n_heads = j.at("num_attention_heads").get<int>();
  c.n_kv_heads = j.value("num_key_value_heads", c.n_heads);
  c.head_dim = j.value("head_dim", c.hidden_size / c.n_heads);
  c.rope_dim = j.value("rope_dim", c.head_dim);
  c.rope_theta = j.value("rope_theta", 10000.0);
  // A Hugging Face config without the field is in neox order.
  c.rope_style = parse_rope_style(j.value("rope_style", std::string("neox")));
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-5f);
  c.vocab_size = j.at("vocab_size").get<int>();
  c.max_positions = j.value("max_position_embeddings", 2048);
  c.bos_token_id = j.value("bos_token_id", -1);
  c.eos_token_id = j.value("eos_token_id", -1);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);

  if (c.hidden_size <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.head_dim <= 0 || c.vocab_size <= 0 || c.intermediate_size <= 0)
    throw std::runtime_error(path + ": non-positive model dimension");
  if (c.n_heads % c.n_kv_heads != 0)
    throw std::runtime_error(path + ": num_attention_heads is not a multiple of num_key_value_heads");
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    throw std::runtime_error(path + ": rope_dim must be even and at most head_dim");
  return c;
}

}  // namespace llama_runner
