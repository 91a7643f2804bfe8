// Entry points shared between the attention kernels' files (not for src/cuda, which uses
// kernel_api.h): split mode's value stage, launched after either score kernel, and the
// per-file kernel attribute set-up that configure_attention_kernels runs.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/kernel_api.h"

namespace starkv {
namespace kernels {

// Split mode, stages 2 and 3 (split_values.cu): the value kernel (when there are work items) and
// the combine, after a score kernel has written the probabilities.
cudaError_t launch_values_and_combine(const LayerView& layer, const ModelView& model,
                                      const AttendBatch& batch, void* out, int out_dtype,
                                      cudaStream_t stream);

// Raises the dynamic shared memory limit of each kernel in the list to `bytes`.
template <size_t N>
inline cudaError_t allow_dynamic_smem(const void* const (&kernels)[N], int bytes) {
  for (const void* k : kernels) {
    const cudaError_t e =
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// The opt-in shared memory limit of every kernel instance a launch may pick, per file.
cudaError_t configure_fold_kernels(int bytes);   // fold_scores.cu
cudaError_t configure_value_kernels(int bytes);  // split_values.cu

// The fold kernel's wgmma instances (sm90a/fold_scores_wgmma.cu, sm_90a machine code only, head_dim
// 128, padded key rank 16, 32, 48 or 64). configure_fold_wgmma_kernels also records whether the
// current device runs them (a device that cannot is not an error); fold_wgmma_ready says so.
cudaError_t configure_fold_wgmma_kernels(int bytes);
bool fold_wgmma_ready();
cudaError_t launch_fold_wgmma(const LayerView& fold_layer, const ModelView& model,
                              const AttendBatch& batch, const void* q, int q_dtype,
                              cudaStream_t stream);

}  // namespace kernels
}  // namespace starkv
