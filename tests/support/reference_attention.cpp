#include "support/reference_attention.h"

#include <cmath>
#include <random>

namespace starkv_test {

void reference_rope(const AttentionShape& s, int32_t position, double* x) {
  if (s.rope_style == STARKV_ROPE_NONE) return;
  const int32_t D = s.head_dim;
  for (int32_t i = 0; i < D / 2; ++i) {
    const double inv_freq = std::pow(static_cast<double>(s.rope_theta), -2.0 * i / D);
    const double angle = position * inv_freq;
    const double c = std::cos(angle), sn = std::sin(angle);
    const int32_t a = s.rope_style == STARKV_ROPE_NEOX ? i : 2 * i;
    const int32_t b = s.rope_style == STARKV_ROPE_NEOX ? i + D / 2 : 2 * i + 1;
    const double xa = x[a], xb = x[b];
    x[a] = xa * c - xb * sn;
    x[b] = xb * c + xa * sn;
  }
}

std::vector<double> reference_attention(const AttentionShape& s, const std::vector<float>& keys,
                                        const std::vector<float>& values,
                                        const std::vector<float>& query, int32_t kv_length) {
  const int32_t H = s.n_heads, G = s.n_kv_heads, D = s.head_dim;
  const double scale = s.scale > 0 ? s.scale : 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> out(static_cast<size_t>(H) * D, 0.0);
  std::vector<double> k(static_cast<size_t>(D));
  for (int32_t h = 0; h < H; ++h) {
    const int32_t g = h / (H / G);
    std::vector<double> scores(static_cast<size_t>(kv_length));
    double max_score = -1e300;
    for (int32_t t = 0; t < kv_length; ++t) {
      for (int32_t c = 0; c < D; ++c) k[c] = keys[(static_cast<size_t>(t) * G + g) * D + c];
      reference_rope(s, t, k.data());
      double dot = 0;
      for (int32_t c = 0; c < D; ++c) dot += query[static_cast<size_t>(h) * D + c] * k[c];
      scores[t] = dot * scale;
      max_score = std::max(max_score, scores[t]);
    }
    double sum = 0;
    for (double& sc : scores) sum += (sc = std::exp(sc - max_score));
    for (int32_t t = 0; t < kv_length; ++t) {
      for (int32_t c = 0; c < D; ++c) {
        out[static_cast<size_t>(h) * D + c] +=
            scores[t] / sum * values[(static_cast<size_t>(t) * G + g) * D + c];
      }
    }
  }
  return out;
}

double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

std::vector<float> random_half_exact(size_t n, uint32_t seed, float amplitude) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-1024, 1024);
  std::vector<float> v(n);
  // Multiples of 2^-10 in [-1, 1] are exact in fp16; scaling by a power of two keeps them exact.
  const float unit = amplitude / 1024.0f;
  for (float& x : v) x = static_cast<float>(dist(rng)) * unit;
  return v;
}

}  // namespace starkv_test
