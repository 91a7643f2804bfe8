#include "core/cpu_attention_distill_loss.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/rope.h"

namespace starkv {
namespace {

size_t at(int64_t row, int64_t col, int64_t stride) {
  return static_cast<size_t>(row) * static_cast<size_t>(stride) + static_cast<size_t>(col);
}

// Directions past the last non-zero mask contribute nothing to a reconstruction, so the GEMM can
// stop there: at high compression that is most of the basis.
int32_t active_channels(const std::vector<double>& mask) {
  int32_t r = static_cast<int32_t>(mask.size());
  while (r > 0 && mask[static_cast<size_t>(r - 1)] == 0.0) --r;
  return r;
}

}  // namespace

CpuAttentionDistillLoss::CpuAttentionDistillLoss(const ModelShape& shape, const RopeConfig& rope,
                                                 float attention_scale, const DistillSample& sample,
                                                 const std::vector<GroupSpectrum>& key_groups,
                                                 const std::vector<GroupSpectrum>& value_groups)
    : AttentionDistillLoss(sample.n_tokens),
      n_(sample.n_tokens),
      n_heads_(shape.n_heads),
      n_kv_heads_(shape.n_kv_heads),
      head_dim_(shape.head_dim),
      width_(shape.kv_width()),
      n_queries_(query_rows()),
      first_query_(n_ - n_queries_),
      scale_(attention_scale),
      rope_(rope) {
  require(sample.has_queries(), STARKV_ERR_INTERNAL, "the distillation loss needs queries");
  const size_t q_width = static_cast<size_t>(n_heads_) * static_cast<size_t>(head_dim_);
  queries_.assign(sample.queries.begin() + static_cast<std::ptrdiff_t>(first_query_ * q_width),
                  sample.queries.end());
  inv_freq_.assign(static_cast<size_t>(std::max(1, rope_.rotary_dim / 2)), 0.0f);
  rope_inverse_frequencies(rope_, head_dim_, inv_freq_.data());

  auto prepare = [&](const std::vector<GroupSpectrum>& spectra, const std::vector<float>& x,
                     std::vector<Group>& groups) {
    for (const GroupSpectrum& s : spectra) {
      Group g{s.in_offset, s.in_dim, s.basis.data(), {}};
      g.latent.resize(static_cast<size_t>(n_) * static_cast<size_t>(s.in_dim));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_, s.in_dim, s.in_dim, 1.0f,
                  x.data() + s.in_offset, width_, g.basis, s.in_dim, 0.0f, g.latent.data(),
                  s.in_dim);
      groups.push_back(std::move(g));
    }
  };
  prepare(key_groups, sample.keys, key_groups_);
  prepare(value_groups, sample.values, value_groups_);

  const size_t kv_size = static_cast<size_t>(n_) * static_cast<size_t>(width_);
  keys_hat_.resize(kv_size);
  values_hat_.resize(kv_size);
  roped_keys_.resize(kv_size);
  d_roped_keys_.resize(kv_size);
  d_values_.resize(kv_size);
  out_.resize(static_cast<size_t>(n_queries_) * q_width);
  scores_.resize(static_cast<size_t>(n_queries_) * static_cast<size_t>(n_));
  d_scores_.resize(scores_.size());
  d_out_.resize(static_cast<size_t>(n_queries_) * static_cast<size_t>(head_dim_));

  // The reference: attention over the exact keys and values.
  attend(sample.keys, sample.values, nullptr, nullptr);
  reference_ = out_;
  reference_norm2_ = 0.0;
  for (float o : reference_) reference_norm2_ += static_cast<double>(o) * o;
}

void CpuAttentionDistillLoss::reconstruct(const std::vector<Group>& groups,
                                          const std::vector<std::vector<double>>& masks,
                                          std::vector<float>& out) {
  std::vector<float> masked;
  for (size_t j = 0; j < groups.size(); ++j) {
    const Group& g = groups[j];
    const std::vector<double>& m = masks[j];
    require(static_cast<int32_t>(m.size()) == g.in_dim, STARKV_ERR_INTERNAL,
            "a mask does not match its group's width");
    const int32_t r = active_channels(m);
    if (r == 0) {
      for (int32_t t = 0; t < n_; ++t) {
        std::fill_n(out.data() + at(t, g.in_offset, width_), g.in_dim, 0.0f);
      }
      continue;
    }
    masked.resize(static_cast<size_t>(n_) * static_cast<size_t>(r));
    for (int32_t t = 0; t < n_; ++t) {
      for (int32_t i = 0; i < r; ++i) {
        masked[at(t, i, r)] =
            g.latent[at(t, i, g.in_dim)] * static_cast<float>(m[static_cast<size_t>(i)]);
      }
    }
    // x̂[:, group] = (z ⊙ m)[:, :r] · B[:, :r]ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_, g.in_dim, r, 1.0f, masked.data(), r,
                g.basis, g.in_dim, 0.0f, out.data() + g.in_offset, width_);
  }
}

double CpuAttentionDistillLoss::attend(const std::vector<float>& keys,
                                       const std::vector<float>& values,
                                       std::vector<float>* key_grad,
                                       std::vector<float>* value_grad) {
  const bool with_loss = !reference_.empty();
  const bool with_grad = key_grad != nullptr;
  const int32_t n = n_, nq = n_queries_, D = head_dim_, hd = n_heads_ * head_dim_;
  const int32_t q_per_kv = n_heads_ / n_kv_heads_;
  for (int32_t t = 0; t < n; ++t) {
    std::copy_n(keys.data() + at(t, 0, width_), width_, roped_keys_.data() + at(t, 0, width_));
    for (int32_t g = 0; g < n_kv_heads_; ++g) {
      apply_rope(rope_, D, t, inv_freq_.data(), roped_keys_.data() + at(t, g * D, width_));
    }
  }
  if (with_grad) {
    std::fill(key_grad->begin(), key_grad->end(), 0.0f);
    std::fill(value_grad->begin(), value_grad->end(), 0.0f);
  }

  double loss = 0.0;
  float* s = scores_.data();  // S, then P in place
  for (int32_t h = 0; h < n_heads_; ++h) {
    const int32_t g = h / q_per_kv;
    const float* q = queries_.data() + static_cast<size_t>(h) * D;
    const float* k = roped_keys_.data() + static_cast<size_t>(g) * D;
    const float* v = values.data() + static_cast<size_t>(g) * D;
    float* o = out_.data() + static_cast<size_t>(h) * D;

    // S = scale · Q_h K_gᵀ, then the causal softmax row by row: query row i sits at position
    // t = first_query_ + i and sees keys 0..t (P[i, s] = 0 for s > t).
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n, D, scale_, q, hd, k, width_, 0.0f,
                s, n);
    for (int32_t i = 0; i < nq; ++i) {
      const int32_t t = first_query_ + i;
      float* row = s + at(i, 0, n);
      const float row_max = *std::max_element(row, row + t + 1);
      double sum = 0.0;
      for (int32_t j = 0; j <= t; ++j) sum += (row[j] = std::exp(row[j] - row_max));
      const float inv = static_cast<float>(1.0 / sum);
      for (int32_t j = 0; j <= t; ++j) row[j] *= inv;
      std::fill(row + t + 1, row + n, 0.0f);
    }
    // O_h = P V_g
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, n, 1.0f, s, n, v, width_, 0.0f, o,
                hd);
    if (!with_loss) continue;

    // dO = 2 (O - O_ref) / ‖O_ref‖²
    const float* ref = reference_.data() + static_cast<size_t>(h) * D;
    const double inv_norm = 1.0 / reference_norm2_;
    for (int32_t i = 0; i < nq; ++i) {
      for (int32_t c = 0; c < D; ++c) {
        const double diff = static_cast<double>(o[at(i, c, hd)]) - ref[at(i, c, hd)];
        loss += diff * diff;
        d_out_[at(i, c, D)] = static_cast<float>(2.0 * diff * inv_norm);
      }
    }
    if (!with_grad) continue;
    // dV_g += Pᵀ dO
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, nq, 1.0f, s, n, d_out_.data(), D,
                1.0f, value_grad->data() + static_cast<size_t>(g) * D, width_);
    // dP = dO V_gᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP))   (the softmax Jacobian)
    float* dp = d_scores_.data();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n, D, 1.0f, d_out_.data(), D, v,
                width_, 0.0f, dp, n);
    for (int32_t i = 0; i < nq; ++i) {
      const int32_t t = first_query_ + i;
      const float* p_row = s + at(i, 0, n);
      float* dp_row = dp + at(i, 0, n);
      double dot = 0.0;
      for (int32_t j = 0; j <= t; ++j) dot += static_cast<double>(p_row[j]) * dp_row[j];
      for (int32_t j = 0; j <= t; ++j) dp_row[j] = p_row[j] * (dp_row[j] - static_cast<float>(dot));
      std::fill(dp_row + t + 1, dp_row + n, 0.0f);
    }
    // d(roped K_g) += scale · dSᵀ Q_h
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, nq, scale_, dp, n, q, hd, 1.0f,
                key_grad->data() + static_cast<size_t>(g) * D, width_);
  }
  if (with_grad) {
    // RoPE is orthogonal: the gradient with respect to the pre-RoPE key is the inverse rotation.
    for (int32_t t = 0; t < n; ++t) {
      for (int32_t g = 0; g < n_kv_heads_; ++g) {
        apply_inverse_rope(rope_, D, t, inv_freq_.data(), key_grad->data() + at(t, g * D, width_));
      }
    }
  }
  return with_loss ? loss / reference_norm2_ : 0.0;
}

void CpuAttentionDistillLoss::mask_gradient(const std::vector<Group>& groups,
                                            const std::vector<float>& dx, int32_t width, int32_t n,
                                            std::vector<std::vector<double>>& grad) {
  grad.resize(groups.size());
  std::vector<float> projected;
  for (size_t j = 0; j < groups.size(); ++j) {
    const Group& g = groups[j];
    // x̂ = (z ⊙ m) Bᵀ  ⇒  dL/dm_i = Σ_t z_ti (dx̂_t · B)_i
    projected.resize(static_cast<size_t>(n) * static_cast<size_t>(g.in_dim));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, g.in_dim, g.in_dim, 1.0f,
                dx.data() + g.in_offset, width, g.basis, g.in_dim, 0.0f, projected.data(),
                g.in_dim);
    grad[j].assign(static_cast<size_t>(g.in_dim), 0.0);
    for (int32_t t = 0; t < n; ++t) {
      for (int32_t i = 0; i < g.in_dim; ++i) {
        grad[j][static_cast<size_t>(i)] +=
            static_cast<double>(g.latent[at(t, i, g.in_dim)]) * projected[at(t, i, g.in_dim)];
      }
    }
  }
}

double CpuAttentionDistillLoss::evaluate(const std::vector<std::vector<double>>& key_masks,
                                         const std::vector<std::vector<double>>& value_masks,
                                         std::vector<std::vector<double>>* key_grad,
                                         std::vector<std::vector<double>>* value_grad) {
  require(key_masks.size() == key_groups_.size() && value_masks.size() == value_groups_.size(),
          STARKV_ERR_INTERNAL, "one mask per factor group is needed");
  reconstruct(key_groups_, key_masks, keys_hat_);
  reconstruct(value_groups_, value_masks, values_hat_);
  if (reference_norm2_ == 0.0) {  // nothing to match: an all-zero output is reproduced by anything
    if (key_grad)
      mask_gradient(key_groups_, std::vector<float>(keys_hat_.size()), width_, n_, *key_grad);
    if (value_grad)
      mask_gradient(value_groups_, std::vector<float>(values_hat_.size()), width_, n_, *value_grad);
    return 0.0;
  }
  const bool with_grad = key_grad != nullptr || value_grad != nullptr;
  const double loss = attend(keys_hat_, values_hat_, with_grad ? &d_roped_keys_ : nullptr,
                             with_grad ? &d_values_ : nullptr);
  if (key_grad != nullptr) mask_gradient(key_groups_, d_roped_keys_, width_, n_, *key_grad);
  if (value_grad != nullptr) mask_gradient(value_groups_, d_values_, width_, n_, *value_grad);
  return loss;
}

}  // namespace starkv
