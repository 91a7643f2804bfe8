// The SVD glue (src/core/decomposition.h): the right singular vectors and values LAPACK returns,
// the weight layouts, and the three decompositions (weights, whitened weights, sample PCA) checked
// against the matrices they are defined by.
//
// Tolerances: the SVD runs in double, the bases are stored as fp32 (relative error ~6e-8 per
// entry), so identities that go through a basis hold to ~1e-6 relative; those on singular values
// alone hold to ~1e-12.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/decomposition.h"
#include "core/error.h"
#include "core/fp16.h"

using starkv::DecompositionInput;
using starkv::GroupSpectrum;

namespace {

std::vector<double> gaussian(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

// a (rows x inner) · b (inner x cols), row-major.
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int rows,
                           int inner, int cols) {
  std::vector<double> c(static_cast<size_t>(rows) * cols, 0.0);
  for (int i = 0; i < rows; ++i)
    for (int k = 0; k < inner; ++k)
      for (int j = 0; j < cols; ++j) c[i * cols + j] += a[i * inner + k] * b[k * cols + j];
  return c;
}

std::vector<double> transpose(const std::vector<double>& a, int rows, int cols) {
  std::vector<double> t(a.size());
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

// Column `col` of a group's basis.
std::vector<double> basis_column(const GroupSpectrum& g, int col) {
  std::vector<double> v(static_cast<size_t>(g.in_dim));
  for (int i = 0; i < g.in_dim; ++i) v[i] = g.basis[static_cast<size_t>(i) * g.in_dim + col];
  return v;
}

double norm2(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return s;
}

// The group's columns of a row-major [rows x width] matrix.
std::vector<double> columns(const std::vector<double>& m, int rows, int width, int offset, int n) {
  std::vector<double> out;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < n; ++c) out.push_back(m[static_cast<size_t>(r) * width + offset + c]);
  return out;
}

void expect_orthonormal(const GroupSpectrum& g) {
  for (int a = 0; a < g.in_dim; ++a) {
    for (int b = 0; b < g.in_dim; ++b) {
      double dot = 0.0;
      const std::vector<double> va = basis_column(g, a), vb = basis_column(g, b);
      for (int i = 0; i < g.in_dim; ++i) dot += va[i] * vb[i];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6);
    }
  }
}

}  // namespace

TEST(Decomposition, SvdRecoversAKnownSpectrum) {
  const int m = 20, n = 6;
  // A = U diag(s) Vᵀ from orthonormal U, V (QR of Gaussians through the SVD itself would be
  // circular, so build them by Gram-Schmidt).
  auto orthonormal = [](int rows, int cols, uint32_t seed) {
    std::vector<double> q = gaussian(static_cast<size_t>(rows) * cols, seed);
    for (int c = 0; c < cols; ++c) {
      for (int p = 0; p < c; ++p) {
        double d = 0;
        for (int r = 0; r < rows; ++r) d += q[r * cols + c] * q[r * cols + p];
        for (int r = 0; r < rows; ++r) q[r * cols + c] -= d * q[r * cols + p];
      }
      double s = 0;
      for (int r = 0; r < rows; ++r) s += q[r * cols + c] * q[r * cols + c];
      for (int r = 0; r < rows; ++r) q[r * cols + c] /= std::sqrt(s);
    }
    return q;
  };
  const std::vector<double> u = orthonormal(m, n, 1), v = orthonormal(n, n, 2);
  const double s[n] = {9.0, 5.0, 3.0, 1.0, 0.5, 0.01};
  std::vector<double> a(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < n; ++k) a[i * n + j] += u[i * n + k] * s[k] * v[j * n + k];

  std::vector<double> sigma;
  std::vector<float> basis;
  starkv::right_singular_vectors(a, m, n, &sigma, &basis);
  ASSERT_EQ(sigma.size(), static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) {
    EXPECT_NEAR(sigma[k], s[k], 1e-12 * s[0]);
    double dot = 0.0;  // the vector is V's column up to sign
    for (int i = 0; i < n; ++i) dot += basis[static_cast<size_t>(i) * n + k] * v[i * n + k];
    EXPECT_NEAR(std::fabs(dot), 1.0, 1e-6);
  }
}

TEST(Decomposition, AWideMatrixStillGetsAFullBasis) {
  GroupSpectrum g;
  g.in_dim = 8;
  starkv::right_singular_vectors(gaussian(3 * 8, 3), 3, 8, &g.sigma, &g.basis);
  ASSERT_EQ(g.sigma.size(), 8u);
  for (int k = 3; k < 8; ++k) EXPECT_EQ(g.sigma[k], 0.0);
  expect_orthonormal(g);
}

TEST(Decomposition, NonFiniteInputIsANumericalError) {
  std::vector<double> a = gaussian(16, 4);
  a[5] = std::nan("");
  std::vector<double> sigma;
  std::vector<float> basis;
  try {
    starkv::right_singular_vectors(a, 4, 4, &sigma, &basis);
    FAIL() << "NaN was accepted";
  } catch (const starkv::Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_NUMERICAL);
  }
}

TEST(Decomposition, GroupRangesAreHeadsOrTheWholeWidth) {
  const auto hd = starkv::group_ranges(STARKV_DECOMP_HEADWISE, 3, 64);
  ASSERT_EQ(hd.size(), 3u);
  EXPECT_EQ(hd[2].in_offset, 128);
  EXPECT_EQ(hd[2].in_dim, 64);
  const auto jd = starkv::group_ranges(STARKV_DECOMP_JOINT, 3, 64);
  ASSERT_EQ(jd.size(), 1u);
  EXPECT_EQ(jd[0].in_offset, 0);
  EXPECT_EQ(jd[0].in_dim, 192);
}

TEST(Decomposition, WeightLayoutsAndDtypesGiveTheSameMatrix) {
  const int d = 6, width = 4;
  // Multiples of 1/64 in [-2, 2] are exact in fp16 and bf16.
  std::vector<float> in_out(static_cast<size_t>(d) * width);
  for (size_t i = 0; i < in_out.size(); ++i)
    in_out[i] = static_cast<float>(static_cast<int>(i * 37 % 255) - 127) / 64.0f;
  std::vector<float> out_in(in_out.size());
  for (int i = 0; i < d; ++i)
    for (int c = 0; c < width; ++c) out_in[c * d + i] = in_out[i * width + c];
  std::vector<uint16_t> half(out_in.size()), bf16(out_in.size());
  for (size_t i = 0; i < out_in.size(); ++i) {
    half[i] = starkv::float_to_half(out_in[i]);
    bf16[i] = starkv::float_to_bf16(out_in[i]);
  }
  const std::vector<double> expected(in_out.begin(), in_out.end());
  EXPECT_EQ(
      starkv::weights_as_in_out(in_out.data(), STARKV_DTYPE_F32, STARKV_WEIGHT_IN_OUT, d, width),
      expected);
  EXPECT_EQ(
      starkv::weights_as_in_out(out_in.data(), STARKV_DTYPE_F32, STARKV_WEIGHT_OUT_IN, d, width),
      expected);
  EXPECT_EQ(
      starkv::weights_as_in_out(half.data(), STARKV_DTYPE_F16, STARKV_WEIGHT_OUT_IN, d, width),
      expected);
  EXPECT_EQ(
      starkv::weights_as_in_out(bf16.data(), STARKV_DTYPE_BF16, STARKV_WEIGHT_OUT_IN, d, width),
      expected);
}

TEST(Decomposition, WeightsOnlyIsTheSvdOfEachHead) {
  const int d = 12, G = 2, D = 4, width = G * D;
  const std::vector<double> w = gaussian(static_cast<size_t>(d) * width, 5);
  DecompositionInput in;
  in.width = width;
  in.hidden_dim = d;
  in.weights = w.data();
  EXPECT_FALSE(starkv::is_data_aware(in));
  const auto groups = starkv::decompose_tensor(in, STARKV_DECOMP_HEADWISE, G, D);
  ASSERT_EQ(groups.size(), 2u);
  for (int g = 0; g < G; ++g) {
    std::vector<double> sigma;
    std::vector<float> basis;
    starkv::right_singular_vectors(columns(w, d, width, g * D, D), d, D, &sigma, &basis);
    EXPECT_EQ(groups[g].sigma, sigma);
    EXPECT_EQ(groups[g].basis, basis);
    EXPECT_EQ(groups[g].in_offset, g * D);
    expect_orthonormal(groups[g]);
  }
}

// Whitened: the right singular vectors/values are those of S·W_g with SᵀS = XᵀX/n + λ'I, i.e. the
// eigenpairs of M = W_gᵀ (XᵀX/n + λ'I) W_g; and truncating to rank r leaves exactly the dropped
// σ² as error on the calibration keys (plus the ridge term).
TEST(Decomposition, WhiteningDecomposesTheDataAwareNorm) {
  const int d = 16, G = 2, D = 6, width = G * D, n = 40;
  const std::vector<double> w = gaussian(static_cast<size_t>(d) * width, 6);
  std::vector<double> x = gaussian(static_cast<size_t>(n) * d, 7);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < d; ++i) x[t * d + i] *= std::exp(-0.3 * i);  // anisotropic inputs
  const double lambda = 0.01;
  DecompositionInput in;
  in.width = width;
  in.hidden_dim = d;
  in.weights = w.data();
  in.hidden = x.data();
  in.n_hidden = n;
  in.whitening_lambda = lambda;
  EXPECT_TRUE(starkv::is_data_aware(in));
  const auto groups = starkv::decompose_tensor(in, STARKV_DECOMP_HEADWISE, G, D);

  std::vector<double> cov = matmul(transpose(x, n, d), x, d, n, d);
  double trace = 0.0;
  for (int i = 0; i < d; ++i) trace += cov[i * d + i];
  const double ridge = lambda * trace / n / d;
  for (double& c : cov) c /= n;
  for (int i = 0; i < d; ++i) cov[i * d + i] += ridge;

  for (int g = 0; g < G; ++g) {
    const std::vector<double> wg = columns(w, d, width, g * D, D);
    const std::vector<double> m = matmul(transpose(wg, d, D), matmul(cov, wg, d, d, D), D, d, D);
    const GroupSpectrum& s = groups[g];
    for (int k = 0; k < D; ++k) {
      const std::vector<double> v = basis_column(s, k);
      const std::vector<double> mv = matmul(m, v, D, D, 1);
      double residual = 0.0;
      for (int i = 0; i < D; ++i) residual += std::pow(mv[i] - s.sigma[k] * s.sigma[k] * v[i], 2);
      EXPECT_LT(std::sqrt(residual), 1e-6 * s.sigma[0] * s.sigma[0])
          << "group " << g << " vector " << k;
    }
    // Truncation to rank 2: error on the calibration keys + ridge = the dropped σ².
    const int r = 2;
    std::vector<double> projector(static_cast<size_t>(D) * D, 0.0);  // I − V_r V_rᵀ
    for (int i = 0; i < D; ++i) projector[i * D + i] = 1.0;
    for (int k = 0; k < r; ++k) {
      const std::vector<double> v = basis_column(s, k);
      for (int i = 0; i < D; ++i)
        for (int j = 0; j < D; ++j) projector[i * D + j] -= v[i] * v[j];
    }
    const double key_error = norm2(matmul(matmul(x, wg, n, d, D), projector, n, D, D)) / n;
    const double ridge_error = ridge * norm2(matmul(wg, projector, d, D, D));
    double dropped = 0.0;
    for (int k = r; k < D; ++k) dropped += s.sigma[k] * s.sigma[k];
    EXPECT_NEAR(key_error + ridge_error, dropped, 1e-6 * s.sigma[0] * s.sigma[0]);
  }
}

// From K/V samples alone the decomposition is an uncentred PCA: σ² are the eigenvalues of
// KᵀK/n, and samples that live in a rank-3 subspace give three non-zero values.
TEST(Decomposition, SamplesAloneGivePrincipalAxes) {
  const int G = 1, D = 8, n = 100, true_rank = 3;
  const std::vector<double> z = gaussian(static_cast<size_t>(n) * true_rank, 8);
  const std::vector<double> mixing = gaussian(static_cast<size_t>(true_rank) * D, 9);
  const std::vector<double> k = matmul(z, mixing, n, true_rank, D);
  DecompositionInput in;
  in.width = G * D;
  in.samples = k.data();
  in.n_samples = n;
  EXPECT_TRUE(starkv::is_data_aware(in));
  const auto groups = starkv::decompose_tensor(in, STARKV_DECOMP_HEADWISE, G, D);
  const GroupSpectrum& s = groups[0];
  for (int i = true_rank; i < D; ++i) EXPECT_LT(s.sigma[i], 1e-10 * s.sigma[0]);
  std::vector<double> gram = matmul(transpose(k, n, D), k, D, n, D);
  for (double& g : gram) g /= n;
  for (int i = 0; i < true_rank; ++i) {
    const std::vector<double> v = basis_column(s, i);
    const std::vector<double> gv = matmul(gram, v, D, D, 1);
    for (int c = 0; c < D; ++c)
      EXPECT_NEAR(gv[c], s.sigma[i] * s.sigma[i] * v[c], 1e-6 * s.sigma[0] * s.sigma[0]);
  }
  expect_orthonormal(s);
}

TEST(Decomposition, SamplesWinOverWeightsAndJointGroupsSpanAllHeads) {
  const int d = 10, G = 2, D = 4, width = G * D, n = 30;
  const std::vector<double> w = gaussian(static_cast<size_t>(d) * width, 10);
  const std::vector<double> k = gaussian(static_cast<size_t>(n) * width, 11);
  DecompositionInput samples_only;
  samples_only.width = width;
  samples_only.samples = k.data();
  samples_only.n_samples = n;
  DecompositionInput both = samples_only;
  both.hidden_dim = d;
  both.weights = w.data();
  const auto a = starkv::decompose_tensor(samples_only, STARKV_DECOMP_JOINT, G, D);
  const auto b = starkv::decompose_tensor(both, STARKV_DECOMP_JOINT, G, D);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].in_dim, width);
  EXPECT_EQ(a[0].sigma, b[0].sigma);
  EXPECT_EQ(a[0].basis, b[0].basis);
}

TEST(Decomposition, NothingToDecomposeIsAnError) {
  DecompositionInput in;
  in.width = 8;
  try {
    starkv::decompose_tensor(in, STARKV_DECOMP_JOINT, 2, 4);
    FAIL() << "an empty input was accepted";
  } catch (const starkv::Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_INVALID_ARGUMENT);
  }
}
