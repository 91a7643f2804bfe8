// The profile builder's linear algebra on a GPU (spectrum_solver.h): cuBLAS for the calibration
// products and the Gram matrices, cuSOLVER's symmetric eigensolvers for the spectra.
//
// A group's right singular vectors and values are the eigenvectors and square-rooted eigenvalues
// of its Gram matrix AᵀA (n x n, n = head_dim per key head or G·head_dim for joint values). The
// Gram route squares the condition number, so values below ~1e-8 of the largest lose relative
// accuracy; those directions are the ones truncation drops, and rank allocation compares values
// far above that. The per-head Gram matrices of a tensor go through one strided-batched GEMM and
// one batched eigensolver call (cusolverDnXsyevBatched); cuSOLVER's batched Jacobi routines
// (syevjBatched, gesvdjBatched) stop at 32 x 32, below a head's 64 or 128 channels. A joint group
// is one matrix: cusolverDnXsyevd.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/spectrum_solver.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"

namespace starkv {
namespace {

void cusolver_check(cusolverStatus_t s, const char* what) {
  if (s == CUSOLVER_STATUS_SUCCESS) return;
  throw Error(STARKV_ERR_BACKEND,
              std::string(what) + ": cuSOLVER status " + std::to_string(static_cast<int>(s)));
}

template <typename T>
void download(const DeviceBuffer& from, std::vector<T>& to, cudaStream_t stream) {
  cuda_check(cudaMemcpyAsync(to.data(), from.get(), to.size() * sizeof(T), cudaMemcpyDeviceToHost,
                             stream),
             "cudaMemcpyAsync (download)");
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

class CudaSpectrumSolver final : public SpectrumSolver {
 public:
  explicit CudaSpectrumSolver(int32_t device) : device_(device) {
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cublas_check(cublasCreate(&blas_), "cublasCreate");
    cublas_check(cublasSetStream(blas_, stream_), "cublasSetStream");
    cusolver_check(cusolverDnCreate(&dn_), "cusolverDnCreate");
    cusolver_check(cusolverDnSetStream(dn_, stream_), "cusolverDnSetStream");
    cusolver_check(cusolverDnCreateParams(&dn_params_), "cusolverDnCreateParams");
  }
  ~CudaSpectrumSolver() override {
    cudaSetDevice(device_);
    if (dn_params_ != nullptr) cusolverDnDestroyParams(dn_params_);
    if (dn_ != nullptr) cusolverDnDestroy(dn_);
    if (blas_ != nullptr) cublasDestroy(blas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  CudaSpectrumSolver(const CudaSpectrumSolver&) = delete;
  CudaSpectrumSolver& operator=(const CudaSpectrumSolver&) = delete;

  const char* name() const override { return "cuda"; }
  int32_t cuda_device() const override { return device_; }

  void multiply(int64_t m, int64_t n, int64_t k, const double* a, const double* b,
                double* c) override {
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    const std::vector<double> ha(a, a + m * k), hb(b, b + k * n);
    const DeviceBuffer da = upload(ha, stream_), db = upload(hb, stream_);
    DeviceBuffer dc(static_cast<size_t>(m * n) * sizeof(double));
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: the same bytes, operands swapped.
    const double one = 1.0, zero = 0.0;
    cublas_check(cublasDgemm_64(blas_, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, db.get<double>(),
                                n, da.get<double>(), k, &zero, dc.get<double>(), n),
                 "cublasDgemm (calibration product)");
    std::vector<double> hc(static_cast<size_t>(m * n));
    download(dc, hc, stream_);
    std::copy(hc.begin(), hc.end(), c);
  }

  std::vector<RightSingularVectors> right_singular_vectors(const std::vector<double>& a,
                                                           int64_t batch, int64_t rows,
                                                           int32_t n) override {
    for (double v : a) {
      require(std::isfinite(v), STARKV_ERR_NUMERICAL, "the matrix to decompose holds NaN or Inf");
    }
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    const int64_t nn = static_cast<int64_t>(n) * n;
    const DeviceBuffer da = upload(a, stream_);
    DeviceBuffer gram(static_cast<size_t>(batch * nn) * sizeof(double));
    DeviceBuffer eigenvalues(static_cast<size_t>(batch * n) * sizeof(double));

    // Row-major A_b (rows x n) is column-major M_b = A_bᵀ (n x rows); Gram_b = M_b M_bᵀ.
    const double one = 1.0, zero = 0.0;
    cublas_check(cublasDgemmStridedBatched_64(
                     blas_, CUBLAS_OP_N, CUBLAS_OP_T, n, n, rows, &one, da.get<double>(), n,
                     rows * n, da.get<double>(), n, rows * n, &zero, gram.get<double>(), n, nn,
                     batch),
                 "cublasDgemmStridedBatched (Gram matrices)");

    if (batch == 1 || !eigen_batched(gram, eigenvalues, batch, n)) {
      for (int64_t b = 0; b < batch; ++b) eigen_one(gram, eigenvalues, b, n);
    }

    std::vector<double> vectors(static_cast<size_t>(batch * nn)), values(static_cast<size_t>(batch * n));
    download(gram, vectors, stream_);
    download(eigenvalues, values, stream_);

    // Ascending eigenpairs -> descending singular values; column j of the column-major
    // eigenvector matrix is eigenvector j.
    std::vector<RightSingularVectors> out(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) {
      RightSingularVectors& r = out[static_cast<size_t>(b)];
      r.sigma.resize(static_cast<size_t>(n));
      r.basis.resize(static_cast<size_t>(nn));
      const double* lambda = values.data() + b * n;
      const double* v = vectors.data() + b * nn;
      for (int32_t k = 0; k < n; ++k) {
        const int32_t from = n - 1 - k;
        r.sigma[static_cast<size_t>(k)] = std::sqrt(std::max(lambda[from], 0.0));
        for (int32_t i = 0; i < n; ++i) {
          r.basis[static_cast<size_t>(i) * n + k] = static_cast<float>(v[i + static_cast<int64_t>(n) * from]);
        }
      }
      for (double s : r.sigma) {
        require(std::isfinite(s), STARKV_ERR_NUMERICAL, "the GPU eigensolver produced NaN or Inf");
      }
      normalize_basis_signs(r.basis, n);
    }
    return out;
  }

 private:
  // All matrices at once; false when this cuSOLVER does not take the shape (the caller then goes
  // one matrix at a time).
  bool eigen_batched(DeviceBuffer& gram, DeviceBuffer& eigenvalues, int64_t batch, int32_t n) {
    size_t device_bytes = 0, host_bytes = 0;
    if (cusolverDnXsyevBatched_bufferSize(dn_, dn_params_, CUSOLVER_EIG_MODE_VECTOR,
                                          CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F, gram.get(), n,
                                          CUDA_R_64F, eigenvalues.get(), CUDA_R_64F, &device_bytes,
                                          &host_bytes, batch) != CUSOLVER_STATUS_SUCCESS) {
      return false;
    }
    DeviceBuffer work(device_bytes);
    std::vector<unsigned char> host_work(std::max<size_t>(host_bytes, 1));
    DeviceBuffer info(static_cast<size_t>(batch) * sizeof(int));
    const cusolverStatus_t s = cusolverDnXsyevBatched(
        dn_, dn_params_, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F,
        gram.get(), n, CUDA_R_64F, eigenvalues.get(), CUDA_R_64F, work.get(), device_bytes,
        host_work.data(), host_bytes, info.get<int>(), batch);
    if (s == CUSOLVER_STATUS_NOT_SUPPORTED || s == CUSOLVER_STATUS_INVALID_VALUE) return false;
    cusolver_check(s, "cusolverDnXsyevBatched");
    std::vector<int> infos(static_cast<size_t>(batch));
    download(info, infos, stream_);
    for (int i : infos) {
      require(i == 0, STARKV_ERR_NUMERICAL,
              "the batched GPU eigensolver did not converge (info " + std::to_string(i) + ")");
    }
    return true;
  }

  void eigen_one(DeviceBuffer& gram, DeviceBuffer& eigenvalues, int64_t b, int32_t n) {
    double* g = gram.get<double>() + b * static_cast<int64_t>(n) * n;
    double* w = eigenvalues.get<double>() + b * n;
    size_t device_bytes = 0, host_bytes = 0;
    cusolver_check(cusolverDnXsyevd_bufferSize(dn_, dn_params_, CUSOLVER_EIG_MODE_VECTOR,
                                               CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F, g, n,
                                               CUDA_R_64F, w, CUDA_R_64F, &device_bytes,
                                               &host_bytes),
                   "cusolverDnXsyevd_bufferSize");
    DeviceBuffer work(device_bytes);
    std::vector<unsigned char> host_work(std::max<size_t>(host_bytes, 1));
    DeviceBuffer info(sizeof(int));
    cusolver_check(cusolverDnXsyevd(dn_, dn_params_, CUSOLVER_EIG_MODE_VECTOR,
                                    CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F, g, n, CUDA_R_64F, w,
                                    CUDA_R_64F, work.get(), device_bytes, host_work.data(),
                                    host_bytes, info.get<int>()),
                   "cusolverDnXsyevd");
    std::vector<int> status(1);
    download(info, status, stream_);
    require(status[0] == 0, STARKV_ERR_NUMERICAL,
            "the GPU eigensolver did not converge (info " + std::to_string(status[0]) + ")");
  }

  int32_t device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t dn_ = nullptr;
  cusolverDnParams_t dn_params_ = nullptr;
};

}  // namespace

std::unique_ptr<SpectrumSolver> make_cuda_spectrum_solver(int32_t device) {
  return std::make_unique<CudaSpectrumSolver>(device);
}

}  // namespace starkv
