// Where the profile builder's dense linear algebra runs (DESIGN §2.1): the calibration products
// (X·W for whitening and for the distillation sample) and the spectra of the factor groups. The
// CPU solver uses CBLAS and LAPACK (dgesdd); the CUDA one (src/cuda/cuda_spectrum_solver.cpp)
// cuBLAS and cuSOLVER. Both take and return host memory: a profile is built once, offline, and
// the builder's bookkeeping stays in one place whichever solver does the arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace starkv {

// The spectrum of one matrix: n singular values, descending (zeros past the rank), and the n
// right singular vectors as the columns of a row-major n x n basis, each with its largest entry
// positive (so profiles do not depend on a solver's sign choices).
struct RightSingularVectors {
  std::vector<double> sigma;
  std::vector<float> basis;
};

class SpectrumSolver {
 public:
  virtual ~SpectrumSolver() = default;
  virtual const char* name() const = 0;
  // The CUDA device the solver computes on, or -1 for the CPU. The builder runs the
  // soft-threshold distillation losses on the same device (profile_builder.cpp).
  virtual int32_t cuda_device() const = 0;

  // c[m x n] = a[m x k] · b[k x n], all row-major.
  virtual void multiply(int64_t m, int64_t n, int64_t k, const double* a, const double* b,
                        double* c) = 0;

  // The spectra of `batch` row-major [rows x n] matrices stored one after another in `a`
  // (head-wise key groups come as one batch, a joint group as a batch of one). Throws
  // Error(STARKV_ERR_NUMERICAL) on non-finite input or when the solver does not converge.
  virtual std::vector<RightSingularVectors> right_singular_vectors(const std::vector<double>& a,
                                                                   int64_t batch, int64_t rows,
                                                                   int32_t n) = 0;
};

// The CPU solver (stateless; shared).
SpectrumSolver& cpu_spectrum_solver();

// A solver on CUDA device `device`; throws STARKV_ERR_BACKEND_UNAVAILABLE in builds without CUDA.
std::unique_ptr<SpectrumSolver> make_cuda_spectrum_solver(int32_t device);

// Makes the largest-magnitude entry of every column of a row-major n x n basis positive.
void normalize_basis_signs(std::vector<float>& basis, int32_t n);

}  // namespace starkv
