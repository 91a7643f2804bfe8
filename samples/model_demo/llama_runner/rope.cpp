#include "rope.h"

#include <cmath>
#include <stdexcept>

namespace llama_runner {

Rope::Rope(const ModelConfig& cfg, RopeStyle style, int table_positions)
    : style_(style), head_dim_(cfg.head_dim), rope_dim_(cfg.rope_dim),
      table_positions_(table_positions) {
  const int half = rope_dim_ / 2;
  if (half > 512) throw std::runtime_error("rope_dim above 1024 is not supported");
  inv_freq_.resize(size_t(half));
  for (int i = 0; i < half; ++i)
    inv_freq_[size_t(i)] = std::pow(cfg.rope_theta, -2.0 * i / rope_dim_);
  cos_.resize(size_t(table_positions_) * size_t(half));
  sin_.resize(cos_.size());
  for (int p = 0; p < table_positions_; ++p)
    for (int i = 0; i < half; ++i) {
      const double a = p * inv_freq_[size_t(i)];
      cos_[size_t(p) * half + i] = float(std::cos(a));
      sin_[size_t(p) * half + i] = float(std::sin(a));
    }
}

void Rope::angles(int32_t position, float* c, float* s) const {
  const int half = rope_dim_ / 2;
  if (position >= 0 && position < table_positions_) {
    for (int i = 0; i < half; ++i) {
      c[i] = cos_[size_t(position) * half + i];
      s[i] = sin_[size_t(position) * half + i];
    }
    return;
  }
  for (int i = 0; i < half; ++i) {
    const double a = position * inv_freq_[size_t(i)];
    c[i] = float(std::cos(a));
    s[i] = float(std::sin(a));
  }
}

void Rope::apply(float* x, int n_tokens, int64_t row_stride, int n_heads,
                 const int32_t* positions) const {
  const int half = rope_dim_ / 2;
  for (int t = 0; t < n_tokens; ++t) {
    float c[512], s[512];  // rope_dim/2 <= 512 (head_dim <= 1024), checked in the constructor
    angles(positions[t], c, s);
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + t * row_stride + int64_t(h) * head_dim_;
      if (style_ == RopeStyle::kNeox) {
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      } else {
        for (int i = 0; i < half; ++i) {
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c[i] - b * s[i];
          v[2 * i + 1] = b * c[i] + a * s[i];
        }
      }
    }
  }
}

}  // namespace llama_runner
