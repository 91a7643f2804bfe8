// The CPU spectrum solver: CBLAS for products, LAPACK's dgesdd (decomposition.cpp) per matrix.
#include "core/spectrum_solver.h"

#include <cblas.h>

#include <cmath>
#include <limits>

#include "core/decomposition.h"
#include "core/error.h"

namespace starkv {
namespace {

class CpuSpectrumSolver final : public SpectrumSolver {
 public:
  const char* name() const override { return "cpu"; }
  int32_t cuda_device() const override { return -1; }

  void multiply(int64_t m, int64_t n, int64_t k, const double* a, const double* b,
                double* c) override {
    require(m <= std::numeric_limits<int>::max() && n <= std::numeric_limits<int>::max() &&
                k <= std::numeric_limits<int>::max(),
            STARKV_ERR_INVALID_ARGUMENT, "a calibration product too large for CBLAS");
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), 1.0, a, static_cast<int>(k), b,
                static_cast<int>(n), 0.0, c, static_cast<int>(n));
  }

  std::vector<RightSingularVectors> right_singular_vectors(const std::vector<double>& a,
                                                           int64_t batch, int64_t rows,
                                                           int32_t n) override {
    const size_t each = static_cast<size_t>(rows) * static_cast<size_t>(n);
    std::vector<RightSingularVectors> out(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) {
      const auto first = a.begin() + static_cast<std::ptrdiff_t>(each * static_cast<size_t>(b));
      starkv::right_singular_vectors(std::vector<double>(first, first + static_cast<std::ptrdiff_t>(each)),
                                     rows, n, &out[static_cast<size_t>(b)].sigma,
                                     &out[static_cast<size_t>(b)].basis);
    }
    return out;
  }
};

}  // namespace

SpectrumSolver& cpu_spectrum_solver() {
  static CpuSpectrumSolver solver;
  return solver;
}

void normalize_basis_signs(std::vector<float>& basis, int32_t n) {
  const size_t stride = static_cast<size_t>(n);
  for (size_t col = 0; col < stride; ++col) {
    float largest = 0.0f;
    for (size_t row = 0; row < stride; ++row) {
      const float v = basis[row * stride + col];
      if (std::fabs(v) > std::fabs(largest)) largest = v;
    }
    if (largest < 0.0f) {
      for (size_t row = 0; row < stride; ++row) basis[row * stride + col] = -basis[row * stride + col];
    }
  }
}

}  // namespace starkv
