// Linked instead of src/cuda/ when the library is built without the CUDA backend.
#include "core/backend.h"
#include "core/error.h"
#include "core/spectrum_solver.h"

namespace starkv {

std::unique_ptr<Backend> make_cuda_backend(int32_t, void*) {
  throw Error(STARKV_ERR_BACKEND_UNAVAILABLE,
              "this starkv was built without the CUDA backend (configure with -DSTARKV_CUDA=ON)");
}

bool cuda_backend_available() { return false; }

std::unique_ptr<SpectrumSolver> make_cuda_spectrum_solver(int32_t) {
  throw Error(STARKV_ERR_BACKEND_UNAVAILABLE,
              "this starkv was built without the CUDA backend (configure with -DSTARKV_CUDA=ON)");
}

}  // namespace starkv
