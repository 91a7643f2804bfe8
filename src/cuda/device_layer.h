// One layer of a profile as the CUDA kernels read it: row layout flattened to block and channel
// descriptors, the key up-projections transposed to fp16 per KV head (key dims permuted so that
// RoPE pairs are adjacent, ranks zero-padded to 16), the value up-projections and every down
// projection in f32, and the head-chunk schedule of the attention kernel. Built once per pool
// (a pool's profile is immutable) and uploaded with the pool's storage.
#pragma once

#include <cstdint>
#include <vector>

#include "core/profile.h"
#include "cuda/device_buffer.h"
#include "kernels/kernel_api.h"

namespace starkv {

// Model-wide constants shared by all layers.
struct DeviceModel {
  kernels::ModelView view{};
  int32_t n_chunks = 0;  // head chunks per layer
  int32_t kv_heads_per_chunk = 0;
  int32_t n_score_chunks = 0;  // split mode's score kernel: chunks of up to 32 query heads
  int32_t score_kv_heads_per_chunk = 0;
  DeviceBuffer inv_freq, rope_step, perm;

  DeviceModel(const Profile& profile, int32_t page_tokens, cudaStream_t stream);
  // Column j of the permuted key space holds head dim perm[j] (neox pairs made adjacent).
  static std::vector<int32_t> key_permutation(const Profile& profile);
};

// Where an uncompressed layer's rows keep its keys and values when attention over them is exactly
// plain dense attention: the layer is not compressed, every key and value factor is exactly the
// identity (down and up, rank = in_dim), every block of the row holds fp16 values, and KV head g's
// D keys (values) are D consecutive halves in head-dim order at row byte *key_offset + 2*g*D
// (*value_offset + 2*g*D), both offsets 16-byte aligned. Returns false, leaving the offsets
// untouched, for any other layer (which then keeps the low-rank kernels).
bool dense_row_offsets(const Profile& profile, int32_t layer, int32_t* key_offset,
                       int32_t* value_offset);

struct DeviceLayer {
  kernels::LayerView view{};         // the fused kernel's view
  kernels::LayerView scores_view{};  // split mode: the score kernel's view (keys only)
  kernels::LayerView values_view{};  // split mode: the value kernel's view
  kernels::LayerView fold_view{};    // split mode: the fold-the-query score kernel's view
  // The fold view in chunks of kReconKvHeadsPerCta (4) KV heads (has_wide_fold_view says it
  // exists; the backend swaps it in). GQA layers, when the fold reconstructs keys: model chunks of
  // 8 query heads leave it 1 or 2 KV heads at q_per_kv 8 or 4, too little work per tile for its CS
  // table, staging and barriers. MHA layers with quantized keys, on the narrow wgmma instances
  // (kernels::fold_narrow): 4 heads' AB and decoded tile leave room for two staging buffers at two
  // CTAs per SM. Quantized keys get their own head infos (key tile columns of the chunk's decoded
  // tile).
  kernels::LayerView wide_fold_view{};
  bool has_wide_fold_view = false;
  DeviceBuffer rows;                 // [n_pages][page_tokens][row_bytes]
  // The fold's tensor maps (kernels::LayerView::key_row_maps), when the layer allows them (empty
  // otherwise); the backend decides whether fold_view uses them.
  DeviceBuffer fold_row_maps;
  DeviceBuffer wide_fold_row_maps;  // the same for wide_fold_view's chunks (fp16 keys)
  DeviceBuffer blocks, channel_block, key_columns, head_keys, head_values, chunks, chunk_slot_base;
  DeviceBuffer key_ut, value_up, groups, down, part_bytes, proj_items, score_part_bytes,
      value_block_bytes, score_chunk_info, score_key_columns, score_head_keys, key_row_offset,
      key_channel, key_group_columns, wide_fold_part_bytes, wide_fold_head_keys;
  // Split mode (score kernel + value kernel): chosen by the backend for layers with several head
  // chunks, where the fused kernel would decode the value latents once per chunk.
  bool use_split = false;
  // Split mode's score pass through the fold-the-query kernel (when its shared memory fits).
  bool use_fold = false;
  // Dense path (kernels/dense_layer_attention.cu): dense_exact when the rows are exactly the fp16
  // keys and values (dense_row_offsets); use_dense when the backend runs the dense kernels for the
  // layer (chosen at pool creation; the other paths' flags then stay false).
  kernels::DenseLayerView dense_view{};
  bool dense_exact = false;
  bool use_dense = false;
  // Host copies used by the prefill path (cuBLAS per group).
  std::vector<kernels::DevGroup> host_groups;

  // n_sms: the device's SM count (sizes the decode-sized projection's work items).
  DeviceLayer(const Profile& profile, int32_t layer, const DeviceModel& model, int64_t n_pages,
              int32_t page_tokens, int32_t n_sms, cudaStream_t stream);
};

}  // namespace starkv
