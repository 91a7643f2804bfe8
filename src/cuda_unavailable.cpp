// Linked instead of src/cuda/ when the library is built without the CUDA backend.
#include "core/attention_distill_loss.h"
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

std::shared_ptr<CudaDistillQueue> make_cuda_distill_queue(int32_t) {
  throw Error(STARKV_ERR_BACKEND_UNAVAILABLE,
              "this starkv was built without the CUDA backend (configure with -DSTARKV_CUDA=ON)");
}

std::unique_ptr<AttentionDistillLoss> make_cuda_attention_distill_loss(
    std::shared_ptr<CudaDistillQueue>, const ModelShape&, const RopeConfig&, float,
    const DistillSample&, const std::vector<GroupSpectrum>&, const std::vector<GroupSpectrum>&) {
  throw Error(STARKV_ERR_BACKEND_UNAVAILABLE,
              "this starkv was built without the CUDA backend (configure with -DSTARKV_CUDA=ON)");
}

}  // namespace starkv
