#include "support/synthetic_model.h"

#include <cmath>
#include <random>

namespace starkv_test {
namespace {

size_t at(int64_t row, int64_t col, int64_t stride) {
  return static_cast<size_t>(row) * static_cast<size_t>(stride) + static_cast<size_t>(col);
}

// A random rows x cols matrix with orthonormal columns (Gram-Schmidt on Gaussian columns, twice
// for stability), row-major.
std::vector<double> random_orthonormal(int32_t rows, int32_t cols, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> m(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  for (double& v : m) v = normal(rng);
  for (int32_t c = 0; c < cols; ++c) {
    for (int pass = 0; pass < 2; ++pass) {
      for (int32_t p = 0; p < c; ++p) {
        double dot = 0.0;
        for (int32_t r = 0; r < rows; ++r) dot += m[at(r, c, cols)] * m[at(r, p, cols)];
        for (int32_t r = 0; r < rows; ++r) m[at(r, c, cols)] -= dot * m[at(r, p, cols)];
      }
    }
    double norm = 0.0;
    for (int32_t r = 0; r < rows; ++r) norm += m[at(r, c, cols)] * m[at(r, c, cols)];
    norm = std::sqrt(norm);
    for (int32_t r = 0; r < rows; ++r) m[at(r, c, cols)] /= norm;
  }
  return m;
}

// One head's projection [d x D] = U diag(σ) Vᵀ with σ_i ∝ exp(−decay i/D), Σσ² = D.
std::vector<double> head_projection(int32_t d, int32_t D, float decay, std::mt19937& rng) {
  const std::vector<double> u = random_orthonormal(d, D, rng);
  const std::vector<double> v = random_orthonormal(D, D, rng);
  std::vector<double> sigma(static_cast<size_t>(D));
  double energy = 0.0;
  for (int32_t i = 0; i < D; ++i) {
    sigma[static_cast<size_t>(i)] = std::exp(-static_cast<double>(decay) * i / D);
    energy += sigma[static_cast<size_t>(i)] * sigma[static_cast<size_t>(i)];
  }
  const double norm = std::sqrt(D / energy);
  std::vector<double> w(static_cast<size_t>(d) * static_cast<size_t>(D), 0.0);
  for (int32_t r = 0; r < d; ++r) {
    for (int32_t c = 0; c < D; ++c) {
      double acc = 0.0;
      for (int32_t i = 0; i < D; ++i)
        acc += u[at(r, i, D)] * sigma[static_cast<size_t>(i)] * norm * v[at(c, i, D)];
      w[at(r, c, D)] = acc;
    }
  }
  return w;
}

float decay_of(const std::vector<std::vector<float>>& table, int32_t layer, int32_t head,
               float fallback) {
  if (static_cast<size_t>(layer) >= table.size()) return fallback;
  const std::vector<float>& row = table[static_cast<size_t>(layer)];
  return static_cast<size_t>(head) < row.size() ? row[static_cast<size_t>(head)] : fallback;
}

// Writes a head's [d x D] block into an OUT_IN [width x d] matrix at rows [offset, offset + D).
void store_out_in(const std::vector<double>& head, int32_t d, int32_t D, int32_t offset,
                  std::vector<float>& w) {
  for (int32_t r = 0; r < d; ++r) {
    for (int32_t c = 0; c < D; ++c) w[at(offset + c, r, d)] = static_cast<float>(head[at(r, c, D)]);
  }
}

}  // namespace

SyntheticModel::SyntheticModel(const SyntheticModelSpec& spec) : spec_(spec) {
  const int32_t d = spec.hidden_dim, D = spec.attention.head_dim;
  const int32_t G = spec.attention.n_kv_heads, H = spec.attention.n_heads;
  std::mt19937 rng(spec.seed);
  std::normal_distribution<double> normal(0.0, 1.0);

  // Input covariance: eigenvalues exp(−a i/d) scaled to mean 1, in a random basis.
  const std::vector<double> rotation = random_orthonormal(d, d, rng);
  std::vector<double> scale(static_cast<size_t>(d));
  double mean = 0.0;
  for (int32_t i = 0; i < d; ++i)
    mean += (scale[static_cast<size_t>(i)] = std::exp(-spec.hidden_anisotropy * i / d)) / d;
  input_transform_.resize(static_cast<size_t>(d) * static_cast<size_t>(d));
  for (int32_t i = 0; i < d; ++i) {
    const double s = std::sqrt(scale[static_cast<size_t>(i)] / mean);
    for (int32_t j = 0; j < d; ++j) input_transform_[at(i, j, d)] = s * rotation[at(j, i, d)];
  }

  for (int32_t l = 0; l < spec.n_layers; ++l) {
    Layer layer;
    layer.w_k.assign(static_cast<size_t>(G) * D * d, 0.0f);
    layer.w_v.assign(layer.w_k.size(), 0.0f);
    layer.w_q.assign(static_cast<size_t>(H) * D * d, 0.0f);
    std::vector<std::vector<double>> key_heads;
    for (int32_t g = 0; g < G; ++g) {
      key_heads.push_back(
          head_projection(d, D, decay_of(spec.key_decay, l, g, spec.default_decay), rng));
      store_out_in(key_heads.back(), d, D, g * D, layer.w_k);
      store_out_in(head_projection(d, D, decay_of(spec.value_decay, l, g, spec.default_decay), rng),
                   d, D, g * D, layer.w_v);
    }
    // W_Q^h = gain · (a · W_K^g M_h + (1 − a) · noise), M_h a random rotation: queries live in the
    // head's key subspace (so the key directions that carry energy also carry the scores) without
    // favouring each token's own key.
    const double a = spec.query_key_alignment;
    for (int32_t h = 0; h < H; ++h) {
      const std::vector<double>& key_head = key_heads[static_cast<size_t>(h / (H / G))];
      const std::vector<double> m = random_orthonormal(D, D, rng);
      std::vector<double> q(key_head.size());
      for (int32_t r = 0; r < d; ++r) {
        for (int32_t c = 0; c < D; ++c) {
          double aligned = 0.0;
          for (int32_t i = 0; i < D; ++i) aligned += key_head[at(r, i, D)] * m[at(i, c, D)];
          q[at(r, c, D)] =
              spec.query_gain * (a * aligned + (1.0 - a) * normal(rng) / std::sqrt(double(d)));
        }
      }
      store_out_in(q, d, D, h * D, layer.w_q);
    }
    layers_.push_back(std::move(layer));
  }
}

std::vector<float> SyntheticModel::hidden_states(int32_t n_tokens, uint32_t seed) const {
  const int32_t d = spec_.hidden_dim;
  std::mt19937 rng(seed * 2654435761u + spec_.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> z(static_cast<size_t>(d));
  std::vector<float> x(static_cast<size_t>(n_tokens) * static_cast<size_t>(d));
  for (int32_t t = 0; t < n_tokens; ++t) {
    for (double& v : z) v = normal(rng);
    for (int32_t j = 0; j < d; ++j) {
      double acc = 0.0;
      for (int32_t i = 0; i < d; ++i)
        acc += z[static_cast<size_t>(i)] * input_transform_[at(i, j, d)];
      x[at(t, j, d)] = static_cast<float>(acc);
    }
  }
  return x;
}

std::vector<float> SyntheticModel::project(const std::vector<float>& w, int32_t width,
                                           const std::vector<float>& hidden) const {
  const int32_t d = spec_.hidden_dim;
  const int32_t n = static_cast<int32_t>(hidden.size() / static_cast<size_t>(d));
  std::vector<float> out(static_cast<size_t>(n) * static_cast<size_t>(width));
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t c = 0; c < width; ++c) {
      double acc = 0.0;
      for (int32_t i = 0; i < d; ++i)
        acc += static_cast<double>(hidden[at(t, i, d)]) * w[at(c, i, d)];
      out[at(t, c, width)] = static_cast<float>(acc);
    }
  }
  return out;
}

std::vector<float> SyntheticModel::keys(int32_t layer, const std::vector<float>& hidden) const {
  return project(w_k(layer), kv_width(), hidden);
}

std::vector<float> SyntheticModel::values(int32_t layer, const std::vector<float>& hidden) const {
  return project(w_v(layer), kv_width(), hidden);
}

std::vector<float> SyntheticModel::queries(int32_t layer, const std::vector<float>& hidden) const {
  std::vector<float> q = project(w_q(layer), q_width(), hidden);
  const int32_t D = spec_.attention.head_dim, H = spec_.attention.n_heads;
  const int32_t n = static_cast<int32_t>(q.size() / static_cast<size_t>(q_width()));
  std::vector<double> head(static_cast<size_t>(D));
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t h = 0; h < H; ++h) {
      float* x = q.data() + at(t, h * D, q_width());
      for (int32_t c = 0; c < D; ++c) head[static_cast<size_t>(c)] = x[c];
      reference_rope(spec_.attention, t, head.data());
      for (int32_t c = 0; c < D; ++c) x[c] = static_cast<float>(head[static_cast<size_t>(c)]);
    }
  }
  return q;
}

std::vector<double> SyntheticModel::attention(const std::vector<float>& keys,
                                              const std::vector<float>& values,
                                              const std::vector<float>& queries) const {
  const AttentionShape& s = spec_.attention;
  const int32_t D = s.head_dim, G = s.n_kv_heads, H = s.n_heads, width = kv_width();
  const int32_t n = static_cast<int32_t>(keys.size() / static_cast<size_t>(width));
  const double scale = s.scale > 0 ? s.scale : 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> roped(keys.begin(), keys.end());
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t g = 0; g < G; ++g) reference_rope(s, t, roped.data() + at(t, g * D, width));
  }
  std::vector<double> out(static_cast<size_t>(n) * static_cast<size_t>(q_width()), 0.0);
  std::vector<double> p(static_cast<size_t>(n));
  for (int32_t h = 0; h < H; ++h) {
    const int32_t g = h / (H / G);
    for (int32_t t = 0; t < n; ++t) {
      const float* q = queries.data() + at(t, h * D, q_width());
      double max_score = -1e300;
      for (int32_t j = 0; j <= t; ++j) {
        const double* k = roped.data() + at(j, g * D, width);
        double dot = 0.0;
        for (int32_t c = 0; c < D; ++c) dot += q[c] * k[c];
        p[static_cast<size_t>(j)] = dot * scale;
        max_score = std::max(max_score, p[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (int32_t j = 0; j <= t; ++j)
        sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - max_score));
      double* o = out.data() + at(t, h * D, q_width());
      for (int32_t j = 0; j <= t; ++j) {
        const float* v = values.data() + at(j, g * D, width);
        const double w = p[static_cast<size_t>(j)] / sum;
        for (int32_t c = 0; c < D; ++c) o[c] += w * v[c];
      }
    }
  }
  return out;
}

starkv_profile_params SyntheticModel::profile_params() const {
  starkv_profile_params p = starkv_profile_params_default();
  p.n_layers = spec_.n_layers;
  p.n_heads = spec_.attention.n_heads;
  p.n_kv_heads = spec_.attention.n_kv_heads;
  p.head_dim = spec_.attention.head_dim;
  p.hidden_dim = spec_.hidden_dim;
  p.rope_style = spec_.attention.rope_style;
  p.rope_theta = spec_.attention.rope_theta;
  p.attention_scale = spec_.attention.scale;
  return p;
}

starkv_layer_data SyntheticModel::layer_data(int32_t layer,
                                             const std::vector<float>* hidden) const {
  starkv_layer_data data = starkv_layer_data_default();
  data.w_k = w_k(layer).data();
  data.w_v = w_v(layer).data();
  data.w_q = w_q(layer).data();
  data.weight_dtype = STARKV_DTYPE_F32;
  data.weight_layout = STARKV_WEIGHT_OUT_IN;
  if (hidden != nullptr) {
    data.calib_hidden = hidden->data();
    data.n_calib_hidden =
        static_cast<int64_t>(hidden->size() / static_cast<size_t>(spec_.hidden_dim));
    data.calib_hidden_dtype = STARKV_DTYPE_F32;
  }
  return data;
}

std::vector<float> reconstruct_with_factors(const std::vector<starkv::FactorGroup>& groups,
                                            const std::vector<float>& x, int32_t width) {
  const size_t n = x.size() / static_cast<size_t>(width);
  std::vector<float> out(x.size(), 0.0f);
  std::vector<double> latent;
  for (const starkv::FactorGroup& g : groups) {
    latent.assign(static_cast<size_t>(g.rank), 0.0);
    for (size_t t = 0; t < n; ++t) {
      const float* row = x.data() + at(static_cast<int64_t>(t), g.in_offset, width);
      for (int32_t r = 0; r < g.rank; ++r) {
        double acc = 0.0;
        for (int32_t i = 0; i < g.in_dim; ++i)
          acc += static_cast<double>(row[i]) * g.down[at(i, r, g.rank)];
        latent[static_cast<size_t>(r)] = acc;
      }
      float* o = out.data() + at(static_cast<int64_t>(t), g.in_offset, width);
      for (int32_t i = 0; i < g.in_dim; ++i) {
        double acc = 0.0;
        for (int32_t r = 0; r < g.rank; ++r)
          acc += latent[static_cast<size_t>(r)] * g.up[at(r, i, g.in_dim)];
        o[i] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

namespace {

// Squared error and squared reference norm of one layer's attention output.
std::pair<double, double> layer_output_error(const SyntheticModel& model,
                                             const starkv::Profile& profile, int32_t layer,
                                             const std::vector<float>& hidden) {
  const starkv::LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const std::vector<float> k = model.keys(layer, hidden), v = model.values(layer, hidden);
  const std::vector<float> q = model.queries(layer, hidden);
  const std::vector<double> reference = model.attention(k, v, q);
  const std::vector<double> compressed =
      model.attention(reconstruct_with_factors(lp.keys, k, model.kv_width()),
                      reconstruct_with_factors(lp.values, v, model.kv_width()), q);
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < reference.size(); ++i) {
    num += (compressed[i] - reference[i]) * (compressed[i] - reference[i]);
    den += reference[i] * reference[i];
  }
  return {num, den};
}

}  // namespace

double profile_attention_error(const SyntheticModel& model, const starkv::Profile& profile,
                               int32_t layer, const std::vector<float>& hidden) {
  const auto [num, den] = layer_output_error(model, profile, layer, hidden);
  return std::sqrt(num / den);
}

double profile_attention_error(const SyntheticModel& model, const starkv::Profile& profile,
                               const std::vector<float>& hidden) {
  double num = 0.0, den = 0.0;
  for (int32_t l = 0; l < model.spec().n_layers; ++l) {
    const auto [n, d] = layer_output_error(model, profile, l, hidden);
    num += n;
    den += d;
  }
  return std::sqrt(num / den);
}

double profile_reconstruction_error(const SyntheticModel& model, const starkv::Profile& profile,
                                    int32_t layer, starkv_tensor_kind kind,
                                    const std::vector<float>& hidden) {
  const starkv::LayerProfile& lp = profile.layers[static_cast<size_t>(layer)];
  const std::vector<float> x =
      kind == STARKV_KEYS ? model.keys(layer, hidden) : model.values(layer, hidden);
  const std::vector<float> x_hat =
      reconstruct_with_factors(kind == STARKV_KEYS ? lp.keys : lp.values, x, model.kv_width());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (static_cast<double>(x_hat[i]) - x[i]) * (static_cast<double>(x_hat[i]) - x[i]);
    den += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(num / den);
}

SyntheticModelSpec contrast_model_spec() {
  SyntheticModelSpec s;
  s.n_layers = 2;
  s.hidden_dim = 256;
  s.attention.n_heads = 8;
  s.attention.n_kv_heads = 4;
  s.attention.head_dim = 64;
  s.key_decay = {{32.0f, 16.0f, 6.0f, 3.0f}, {24.0f, 10.0f, 4.0f, 2.0f}};
  s.value_decay = {{10.0f, 10.0f, 10.0f, 10.0f}, {3.0f, 3.0f, 3.0f, 3.0f}};
  s.seed = 2024;
  return s;
}

}  // namespace starkv_test
