// CalibrationRecorder: a KvAttention that passes every call through to a real cache (the dense
// one, so the model runs exactly) and keeps a copy of what it sees, per layer: the pre-RoPE
// keys and values handed to append() and the post-RoPE queries handed to attend(). Those are
// the samples `starkv build --calib-kv` expects (layers.{i}.k / .v [n, G*D], .q [n, H*D]) for
// data-aware whitening and the attention-output distillation loss.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv_attention.h"

namespace llama_runner {

class CalibrationRecorder final : public KvAttention {
 public:
  // inner must outlive this object.
  CalibrationRecorder(KvAttention& inner, int n_layers, int kv_width, int q_width);

  void reset() override;
  int64_t length(int layer) const override { return inner_.length(layer); }
  void append(int layer, int n, const float* k_pre_rope, const float* v,
              const int32_t* positions) override;
  void attend(int layer, int n, const float* q_post_rope, float* out) override;
  size_t bytes_per_token() const override { return inner_.bytes_per_token(); }
  size_t bytes_allocated() const override { return inner_.bytes_allocated(); }
  size_t bytes_in_use() const override { return inner_.bytes_in_use(); }
  std::string describe() const override { return inner_.describe() + ", recording K/V/Q"; }

  // Writes layers.{i}.k, .v and .q as fp16 (half the size of fp32; the builder's whitening and
  // loss are not sensitive at that precision). Tokens are those of the calls since reset().
  void save(const std::string& path) const;
  int64_t tokens() const { return tokens_; }

 private:
  KvAttention& inner_;
  int n_layers_, kv_width_, q_width_;
  int64_t tokens_ = 0;  // tokens recorded in layer 0
  std::vector<std::vector<uint16_t>> k_, v_, q_;  // per layer, fp16 bit patterns
};

}  // namespace llama_runner
