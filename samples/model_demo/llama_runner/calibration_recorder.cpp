#include "calibration_recorder.h"

#include <stdexcept>

#include "half_float.h"
#include "safetensors_writer.h"

namespace llama_runner {

namespace {

void append_f16(std::vector<uint16_t>& dst, const float* src, size_t count) {
  dst.reserve(dst.size() + count);
  for (size_t i = 0; i < count; ++i) dst.push_back(float_to_half(src[i]));
}

}  // namespace

CalibrationRecorder::CalibrationRecorder(KvAttention& inner, int n_layers, int kv_width,
                                         int q_width)
    : inner_(inner), n_layers_(n_layers), kv_width_(kv_width), q_width_(q_width),
      k_(size_t(n_layers)), v_(size_t(n_layers)), q_(size_t(n_layers)) {}

void CalibrationRecorder::reset() {
  inner_.reset();
  tokens_ = 0;
  for (int l = 0; l < n_layers_; ++l) {
    k_[size_t(l)].clear();
    v_[size_t(l)].clear();
    q_[size_t(l)].clear();
  }
}

void CalibrationRecorder::append(int layer, int n, const float* k_pre_rope, const float* v,
                                 const int32_t* positions) {
  append_f16(k_[size_t(layer)], k_pre_rope, size_t(n) * size_t(kv_width_));
  append_f16(v_[size_t(layer)], v, size_t(n) * size_t(kv_width_));
  if (layer == 0) tokens_ += n;
  inner_.append(layer, n, k_pre_rope, v, positions);
}

void CalibrationRecorder::attend(int layer, int n, const float* q_post_rope, float* out) {
  append_f16(q_[size_t(layer)], q_post_rope, size_t(n) * size_t(q_width_));
  inner_.attend(layer, n, q_post_rope, out);
}

void CalibrationRecorder::save(const std::string& path) const {
  std::vector<TensorToWrite> tensors;
  tensors.reserve(size_t(n_layers_) * 3);
  for (int l = 0; l < n_layers_; ++l) {
    const std::string prefix = "layers." + std::to_string(l) + ".";
    if (int64_t(k_[size_t(l)].size()) != tokens_ * kv_width_ ||
        int64_t(q_[size_t(l)].size()) != tokens_ * q_width_)
      throw std::logic_error("calibration: layer " + std::to_string(l) +
                             " saw a different number of tokens than layer 0");
    tensors.push_back({prefix + "k", {tokens_, kv_width_}, &k_[size_t(l)]});
    tensors.push_back({prefix + "v", {tokens_, kv_width_}, &v_[size_t(l)]});
    tensors.push_back({prefix + "q", {tokens_, q_width_}, &q_[size_t(l)]});
  }
  write_safetensors_f16(path, tensors);
}

}  // namespace llama_runner
