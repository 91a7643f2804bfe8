// The fold kernel's wgmma instances (kernels/fold_scores_kernel.cuh, kWgmma): built for sm_90a only
// (the warpgroup MMA instructions exist on no other target), as their own object library (see
// CMakeLists.txt). configure_fold_wgmma_kernels finds out whether the current device can run them
// (an sm_90a image loads on compute capability 9.0 only); kernels/fold_scores.cu launches them
// where it can and the layer's shape has an instance.
#include <atomic>
#include <cstdlib>

#include "kernels/fold_scores_kernel.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kMaxDevices = 64;
std::atomic<int> g_wgmma_ready[kMaxDevices];  // per device: 1 when the instances run there

template <int NR, bool kQuant = false>
cudaError_t launch_wgmma_nr(const LayerView& l, const ModelView& model, const AttendBatch& batch,
                            const void* q, int q_dtype, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(batch.n_items) * static_cast<unsigned>(l.n_chunks);
  const FoldSmem f = fold_layer_layout(l, model, true);
  if (l.recon_keys != 0) {
    fold_scores_kernel<16, kFoldTokens, true, true, NR, kQuant>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  } else if (fold_narrow(l, model)) {
    if constexpr (NR > 48 || !kQuant) {
      return cudaErrorInvalidValue;  // (fold_narrow: quantized keys, NR <= 48)
    } else {
      fold_scores_kernel<16, kFoldTokens, false, true, NR, kQuant, true>
          <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
    }
  } else if constexpr (kQuant && NR <= 32) {
    return cudaErrorInvalidValue;  // (quantized keys in chunks of kHeads: NR 48, 64 only)
  } else {
    // The paired instance (see fold_paired_layout) where the batch's items pair up within their
    // queries and its layout fits; STARKV_NO_PAIRED_FOLD=1 keeps two CTAs per SM instead.
    if constexpr (NR <= 32 && !kQuant) {
      static const bool paired = std::getenv("STARKV_NO_PAIRED_FOLD") == nullptr;
      const FoldSmem pf = fold_paired_layout(model.head_dim, l.max_key_rank_pad, raw_stride(l));
      if (paired && batch.items_paired != 0 && l.key_row_maps != nullptr &&
          fold_paired_bytes(pf) <= kFoldSmemLimit) {
        const unsigned pairs = static_cast<unsigned>((batch.n_items + 1) / 2);
        const unsigned paired_grid = pairs * static_cast<unsigned>(l.n_chunks);
        fold_scores_kernel<16, kFoldTokens, false, true, NR, false, false, true>
            <<<paired_grid, 2 * kThreads, fold_paired_bytes(pf), stream>>>(l, model, batch, q,
                                                                           q_dtype);
        return cudaGetLastError();
      }
    }
    fold_scores_kernel<16, kFoldTokens, false, true, NR, kQuant>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t configure_fold_wgmma_kernels(int bytes) {
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  const void* const kernels_used[] = {
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 16>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 32>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 48>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 64>),
      reinterpret_cast<const void*>(
          fold_scores_kernel<16, kFoldTokens, false, true, 16, false, false, true>),
      reinterpret_cast<const void*>(
          fold_scores_kernel<16, kFoldTokens, false, true, 32, false, false, true>),
      reinterpret_cast<const void*>(
          fold_scores_kernel<16, kFoldTokens, false, true, 16, true, true>),
      reinterpret_cast<const void*>(
          fold_scores_kernel<16, kFoldTokens, false, true, 32, true, true>),
      reinterpret_cast<const void*>(
          fold_scores_kernel<16, kFoldTokens, false, true, 48, true, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 48, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false, true, 64, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 16>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 32>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 48>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 64>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 16, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 32, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 48, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true, true, 64, true>),
  };
  e = allow_dynamic_smem(kernels_used, bytes);
  const bool runs = e == cudaSuccess;
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction ||
      e == cudaErrorInvalidKernelImage) {
    (void)cudaGetLastError();  // not an error: this device takes the mma.sync instances
    e = cudaSuccess;
  }
  if (device >= 0 && device < kMaxDevices) g_wgmma_ready[device].store(runs ? 1 : 0);
  return e;
}

bool fold_wgmma_ready() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) return false;
  return g_wgmma_ready[device].load() == 1;
}

cudaError_t launch_fold_wgmma(const LayerView& l, const ModelView& model, const AttendBatch& batch,
                              const void* q, int q_dtype, cudaStream_t stream) {
  // (fold_uses_wgmma has checked that an instance exists for the layer.)
  const bool quantized = l.keys_fp16 == 0;
  switch (l.max_key_rank_pad) {
    case 16:
      return quantized ? launch_wgmma_nr<16, true>(l, model, batch, q, q_dtype, stream)
                       : launch_wgmma_nr<16>(l, model, batch, q, q_dtype, stream);
    case 32:
      return quantized ? launch_wgmma_nr<32, true>(l, model, batch, q, q_dtype, stream)
                       : launch_wgmma_nr<32>(l, model, batch, q, q_dtype, stream);
    case 48:
      return quantized ? launch_wgmma_nr<48, true>(l, model, batch, q, q_dtype, stream)
                       : launch_wgmma_nr<48>(l, model, batch, q, q_dtype, stream);
    case 64:
      return quantized ? launch_wgmma_nr<64, true>(l, model, batch, q, q_dtype, stream)
                       : launch_wgmma_nr<64>(l, model, batch, q, q_dtype, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace kernels
}  // namespace starkv
