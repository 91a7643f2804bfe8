// The SVD glue of the profile builder (DESIGN §2.1): turns one layer's key (or value) projection,
// plus whatever calibration data there is, into per-group singular values and right singular
// vectors. Truncating a group to its leading r vectors gives the factors down = V_r, up = V_rᵀ;
// the dropped squared singular values are then exactly the truncation error in the norm the
// decomposition was taken in:
//   weights only                  SVD of W_g                         error in ‖W_g (I - P)‖²
//   weights + hidden states X     SVD of [X W_g / √n ; √λ' W_g]      error on the actual keys,
//                                 (= S W_g with SᵀS = XᵀX/n + λ'I)   ‖X W_g (I - P)‖²/n, + ridge
//   K/V samples (n rows)          SVD of K_g / √n (uncentred PCA)    error on the samples
// with λ' = whitening_lambda × mean diagonal of XᵀX/n. Samples win when both samples and weights
// are given: they are the distribution the cache will actually see.
// All linear algebra is in double (on the CPU LAPACKE_dgesdd and cblas_dgemm, on a GPU cuSOLVER
// and cuBLAS: see spectrum_solver.h); the bases are stored as fp32, the precision the factors end
// up in.
#pragma once

#include <cstdint>
#include <vector>

#include "core/spectrum_solver.h"
#include "starkv/starkv.h"

namespace starkv {

// One factor group's spectrum. A group reads channels [in_offset, in_offset + in_dim) of the
// G*D-wide key (or value) vector: a head for head-wise groups, everything for a joint group.
struct GroupSpectrum {
  int32_t in_offset = 0;
  int32_t in_dim = 0;
  std::vector<double> sigma;  // in_dim singular values, descending; zeros past the matrix rank
  std::vector<float> basis;   // [in_dim x in_dim] row-major; column i = i-th right singular vector
};

// The channel ranges of a tensor's groups: G ranges of D (head-wise) or one of G*D (joint).
struct GroupRange {
  int32_t in_offset;
  int32_t in_dim;
};
std::vector<GroupRange> group_ranges(starkv_decomposition decomposition, int32_t n_kv_heads,
                                     int32_t head_dim);

// A caller's projection weights as a row-major double matrix [d x width] with k = x · W, from
// either layout ([width x d] OUT_IN, [d x width] IN_OUT) and any supported dtype.
std::vector<double> weights_as_in_out(const void* weights, starkv_dtype dtype,
                                      starkv_weight_layout layout, int32_t hidden_dim,
                                      int32_t width);

// Singular values (descending, n of them, zero-padded when m < n) and all n right singular
// vectors of the row-major m x n matrix `a` (consumed). Throws Error(STARKV_ERR_NUMERICAL) when
// LAPACK does not converge or the input is not finite.
void right_singular_vectors(std::vector<double> a, int64_t m, int32_t n, std::vector<double>* sigma,
                            std::vector<float>* basis);

// What one tensor's decomposition reads; the inputs present choose the method (see the top).
struct DecompositionInput {
  int32_t width = 0;                // G*D
  int32_t hidden_dim = 0;           // d
  const double* weights = nullptr;  // [d x width], IN_OUT orientation; may be null with samples
  const double* hidden = nullptr;   // [n_hidden x d] calibration hidden states, optional
  int64_t n_hidden = 0;
  const double* samples = nullptr;  // [n_samples x width] calibration keys or values, optional
  int64_t n_samples = 0;
  double whitening_lambda = 0.0;  // relative ridge, see the top
};

// True when the spectra will be in a data-aware norm (samples, or weights with hidden states).
bool is_data_aware(const DecompositionInput& input);

// The solver does the products and the SVDs (the CPU's LAPACK unless the builder runs on a GPU).
std::vector<GroupSpectrum> decompose_tensor(const DecompositionInput& input,
                                            starkv_decomposition decomposition, int32_t n_kv_heads,
                                            int32_t head_dim,
                                            SpectrumSolver& solver = cpu_spectrum_solver());

}  // namespace starkv
