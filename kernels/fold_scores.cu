// Split mode's fold-the-query score kernel: the mma.sync instances (sm_90 machine code and PTX)
// and the launch, which takes the wgmma instances (kernels/sm90a/fold_scores_wgmma.cu) where the
// device and the layer allow. The kernel itself is in kernels/fold_scores_kernel.cuh.
#include <cstdlib>

#include "kernels/fold_scores_kernel.cuh"

namespace starkv {
namespace kernels {
namespace {

// Whether a layer's fold runs on the wgmma instances: head_dim 128, a padded key rank they are
// instantiated for, a device that runs them, and STARKV_NO_WGMMA unset (the mma.sync instances
// then run, for comparison).
// - fp16 keys, folded: padded ranks 16 to 64.
// - Quantized keys, folded (STARKV_NO_QUANT_WGMMA=1: never): padded ranks 48 and 64 in chunks of
//   8 heads, their decoded tile in the CS table's space, one CTA per SM, 64-token tiles whose AB
//   fragments the tensor cores read once per 64 tokens instead of once per 16 (Llama-2-like
//   layer, b16 x 32K: 4/3 bits at 60% 2852 -> 2489 us, at 50% 3884 -> 3299; tenth session);
//   padded ranks 16, 32 and (since the twenty-eighth session) 48 in chunks of 4 heads instead,
//   two CTAs per SM (fold_narrow says why; STARKV_NO_NARROW_FOLD=1 keeps 48 in chunks of 8).
// - Reconstructed keys (GQA), fp16 or quantized (from the decoded tile), unless
//   STARKV_NO_RECON_WGMMA=1: K = L Ut on warpgroup MMAs (Llama-3-8B-like layer, b16 x 32K, fp16:
//   75% 491 -> 396 us, 60% 614 -> 461, 50% 757 -> 652; eleventh session).
// (bench/RESULTS.md.)
bool fold_uses_wgmma(const LayerView& l, const ModelView& model) {
  static const bool disabled = std::getenv("STARKV_NO_WGMMA") != nullptr;
  static const bool no_quantized = std::getenv("STARKV_NO_QUANT_WGMMA") != nullptr;
  static const bool no_recon = std::getenv("STARKV_NO_RECON_WGMMA") != nullptr;
  const int r = l.max_key_rank_pad;
  const bool keys_ok = l.keys_fp16 != 0
                           ? (r == 16 || r == 32 || r == 48 || r == 64)
                           : !no_quantized && (r == 48 || r == 64 || fold_narrow(l, model));
  const bool recon_ok = !no_recon && model.q_per_kv >= 2 &&
                        l.kv_heads_per_chunk <= kReconKvHeadsPerCta &&
                        (r == 16 || r == 32 || r == 48 || r == 64);
  if (l.recon_keys != 0)
    return !disabled && model.head_dim == 128 && recon_ok && fold_wgmma_ready();
  return !disabled && model.head_dim == 128 && keys_ok && fold_wgmma_ready();
}

template <int NT>
cudaError_t launch_fold_nt(const LayerView& l, const ModelView& model, const AttendBatch& batch,
                           const void* q, int q_dtype, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(batch.n_items) * static_cast<unsigned>(l.n_chunks);
  const FoldSmem f = fold_layer_layout(l, model, false);
  const bool small = f.tokens != kFoldTokens;
  if (l.recon_keys != 0) {
    if (model.q_per_kv < 2) return cudaErrorInvalidValue;  // UT holds kHeads / 2 KV heads
    if (small) {
      fold_scores_kernel<NT, kFoldTokensSmall, true>
          <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
    } else {
      fold_scores_kernel<NT, kFoldTokens, true>
          <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
    }
  } else if (small) {
    fold_scores_kernel<NT, kFoldTokensSmall, false>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  } else {
    fold_scores_kernel<NT, kFoldTokens, false>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t configure_fold_kernels(int bytes) {
  const void* const kernels_used[] = {
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokens, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokens, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokensSmall, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokensSmall, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokensSmall, false>),
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokens, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokens, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokensSmall, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokensSmall, true>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokensSmall, true>),
  };
  const cudaError_t e = allow_dynamic_smem(kernels_used, bytes);
  return e == cudaSuccess ? configure_fold_wgmma_kernels(bytes) : e;
}

bool fold_uses_tensor_staging(const LayerView& fold_layer, const ModelView& model) {
  // (The maps are encoded for fp16 keys, in the model's chunks and in the wide recon chunks.)
  return fold_uses_wgmma(fold_layer, model);
}

bool fold_runs_narrow(const LayerView& wide_fold_layer, const ModelView& model) {
  return wide_fold_layer.recon_keys == 0 && fold_narrow(wide_fold_layer, model) &&
         fold_uses_wgmma(wide_fold_layer, model);
}

size_t fold_scores_smem_bytes(const LayerView& fold_layer, const ModelView& model) {
  return fold_layer_layout(fold_layer, model, fold_uses_wgmma(fold_layer, model)).total;
}

cudaError_t launch_fold_split_attention(const LayerView& fold_layer, const LayerView& layer,
                                        const ModelView& model, const AttendBatch& batch,
                                        const void* q, int q_dtype, void* out, int out_dtype,
                                        cudaStream_t stream) {
  if (batch.n_items > 0 && fold_uses_wgmma(fold_layer, model)) {
    const cudaError_t e = launch_fold_wgmma(fold_layer, model, batch, q, q_dtype, stream);
    if (e != cudaSuccess) return e;
  } else if (batch.n_items > 0) {
    cudaError_t e = cudaSuccess;
    switch (model.head_dim) {
      case 32:
        e = launch_fold_nt<4>(fold_layer, model, batch, q, q_dtype, stream);
        break;
      case 64:
        e = launch_fold_nt<8>(fold_layer, model, batch, q, q_dtype, stream);
        break;
      case 128:
        e = launch_fold_nt<16>(fold_layer, model, batch, q, q_dtype, stream);
        break;
      default:
        return cudaErrorInvalidValue;
    }
    if (e != cudaSuccess) return e;
  }
  return launch_values_and_combine(layer, model, batch, out, out_dtype, stream);
}

}  // namespace kernels
}  // namespace starkv
