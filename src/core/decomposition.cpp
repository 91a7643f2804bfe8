#include "core/decomposition.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "core/spectrum_solver.h"

namespace starkv {
namespace {

size_t idx(int64_t row, int64_t col, int64_t stride) {
  return static_cast<size_t>(row) * static_cast<size_t>(stride) + static_cast<size_t>(col);
}

// The group's columns of a row-major [rows x width] matrix, times `factor`, appended to `out`.
void append_columns(const double* m, int64_t rows, int32_t width, GroupRange range, double factor,
                    std::vector<double>& out) {
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = m + idx(r, range.in_offset, width);
    for (int32_t c = 0; c < range.in_dim; ++c) out.push_back(row[c] * factor);
  }
}

}  // namespace

std::vector<GroupRange> group_ranges(starkv_decomposition decomposition, int32_t n_kv_heads,
                                     int32_t head_dim) {
  std::vector<GroupRange> ranges;
  if (decomposition == STARKV_DECOMP_JOINT) {
    ranges.push_back({0, n_kv_heads * head_dim});
  } else {
    for (int32_t g = 0; g < n_kv_heads; ++g) ranges.push_back({g * head_dim, head_dim});
  }
  return ranges;
}

std::vector<double> weights_as_in_out(const void* weights, starkv_dtype dtype,
                                      starkv_weight_layout layout, int32_t hidden_dim,
                                      int32_t width) {
  std::vector<double> w(static_cast<size_t>(hidden_dim) * static_cast<size_t>(width));
  for (int32_t i = 0; i < hidden_dim; ++i) {
    for (int32_t c = 0; c < width; ++c) {
      const size_t source =
          layout == STARKV_WEIGHT_OUT_IN ? idx(c, i, hidden_dim) : idx(i, c, width);
      w[idx(i, c, width)] = load_as_float(weights, dtype, source);
    }
  }
  return w;
}

void right_singular_vectors(std::vector<double> a, int64_t m, int32_t n, std::vector<double>* sigma,
                            std::vector<float>* basis) {
  for (double v : a) {
    require(std::isfinite(v), STARKV_ERR_NUMERICAL, "the matrix to decompose holds NaN or Inf");
  }
  // Zero rows change no right singular vector or value, and with at least n rows LAPACK returns
  // all n vectors (the ones past the rank span the null space).
  const int64_t rows = std::max<int64_t>(m, n);
  a.resize(static_cast<size_t>(rows) * static_cast<size_t>(n), 0.0);
  require(rows <= INT32_MAX, STARKV_ERR_INVALID_ARGUMENT, "too many rows for LAPACK");

  // Row-major A (rows x n) is column-major Aᵀ (n x rows) with no copy. Aᵀ = V Σ Uᵀ, so the left
  // singular vectors of Aᵀ are the right ones of A. With jobz 'O', LAPACK writes them into `u`
  // when n < rows and over `a` when the matrix is square.
  const lapack_int lm = n, ln = static_cast<lapack_int>(rows);
  std::vector<double> s(static_cast<size_t>(n));
  std::vector<double> u(lm < ln ? static_cast<size_t>(n) * static_cast<size_t>(n) : 1);
  std::vector<double> vt(lm < ln ? 1 : static_cast<size_t>(n) * static_cast<size_t>(n));
  const lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'O', lm, ln, a.data(), lm, s.data(),
                                         u.data(), lm, vt.data(), lm < ln ? 1 : ln);
  require(info >= 0, STARKV_ERR_INTERNAL,
          "LAPACKE_dgesdd rejected argument " + std::to_string(-info));
  require(info == 0, STARKV_ERR_NUMERICAL,
          "the SVD did not converge (LAPACK dgesdd info " + std::to_string(info) + ")");
  const double* left = lm < ln ? u.data() : a.data();  // column-major n x n, column j = vector j

  sigma->assign(s.begin(), s.end());
  basis->resize(static_cast<size_t>(n) * static_cast<size_t>(n));
  for (int32_t row = 0; row < n; ++row) {
    for (int32_t col = 0; col < n; ++col) {
      (*basis)[idx(row, col, n)] = static_cast<float>(left[idx(col, row, n)]);
    }
  }
  for (double v : *sigma) {
    require(std::isfinite(v), STARKV_ERR_NUMERICAL, "the SVD produced NaN or Inf");
  }
  normalize_basis_signs(*basis, n);
}

bool is_data_aware(const DecompositionInput& input) {
  return (input.samples != nullptr && input.n_samples > 0) ||
         (input.weights != nullptr && input.hidden != nullptr && input.n_hidden > 0);
}

std::vector<GroupSpectrum> decompose_tensor(const DecompositionInput& in,
                                            starkv_decomposition decomposition, int32_t n_kv_heads,
                                            int32_t head_dim, SpectrumSolver& solver) {
  const bool from_samples = in.samples != nullptr && in.n_samples > 0;
  const bool whitened =
      !from_samples && in.weights != nullptr && in.hidden != nullptr && in.n_hidden > 0;
  require(from_samples || in.weights != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          "a tensor needs weights or calibration samples to be decomposed");

  // Whitening: X·W once for all groups, and the ridge λ' relative to XᵀX/n's mean diagonal.
  std::vector<double> xw;
  double ridge = 0.0;
  if (whitened) {
    const int64_t n = in.n_hidden;
    xw.resize(static_cast<size_t>(n) * static_cast<size_t>(in.width));
    solver.multiply(n, in.width, in.hidden_dim, in.hidden, in.weights, xw.data());
    double trace = 0.0;
    for (int64_t i = 0; i < n * in.hidden_dim; ++i) trace += in.hidden[i] * in.hidden[i];
    ridge = in.whitening_lambda * trace / (static_cast<double>(n) * in.hidden_dim);
  }

  // Every group's matrix, one after another: the groups of a tensor share their shape, so the
  // solver can take them as one batch.
  const std::vector<GroupRange> ranges = group_ranges(decomposition, n_kv_heads, head_dim);
  const int64_t rows = from_samples ? in.n_samples
                       : whitened   ? in.n_hidden + (ridge > 0.0 ? in.hidden_dim : 0)
                                    : in.hidden_dim;
  std::vector<double> a;
  a.reserve(static_cast<size_t>(rows) * static_cast<size_t>(in.width));
  for (const GroupRange& range : ranges) {
    if (from_samples) {
      append_columns(in.samples, rows, in.width, range, 1.0 / std::sqrt(double(in.n_samples)), a);
    } else if (whitened) {
      // [X W_g / √n ; √λ' W_g]: its Gram matrix is W_gᵀ (XᵀX/n + λ'I) W_g.
      append_columns(xw.data(), in.n_hidden, in.width, range, 1.0 / std::sqrt(double(in.n_hidden)),
                     a);
      if (ridge > 0.0)
        append_columns(in.weights, in.hidden_dim, in.width, range, std::sqrt(ridge), a);
    } else {
      append_columns(in.weights, rows, in.width, range, 1.0, a);
    }
  }
  std::vector<RightSingularVectors> spectra = solver.right_singular_vectors(
      a, static_cast<int64_t>(ranges.size()), rows, ranges.front().in_dim);
  std::vector<GroupSpectrum> groups;
  for (size_t i = 0; i < ranges.size(); ++i) {
    GroupSpectrum g;
    g.in_offset = ranges[i].in_offset;
    g.in_dim = ranges[i].in_dim;
    g.sigma = std::move(spectra[i].sigma);
    g.basis = std::move(spectra[i].basis);
    groups.push_back(std::move(g));
  }
  return groups;
}

}  // namespace starkv
