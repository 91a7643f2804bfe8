// CUDA and cuBLAS failures become starkv errors (STARKV_ERR_BACKEND, or OUT_OF_MEMORY for a
// failed allocation) carrying the call site and the runtime's own message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace starkv {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  const starkv_status status =
      e == cudaErrorMemoryAllocation ? STARKV_ERR_OUT_OF_MEMORY : STARKV_ERR_BACKEND;
  throw Error(status,
              std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline void cublas_check(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(STARKV_ERR_BACKEND,
              std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

}  // namespace starkv
