// The host-callable entry points of the CUDA kernels, and the plain structs that describe one
// layer's device data to them. This header is included by both src/cuda (plain C++) and the .cu
// files; it holds no device code and no handles (kernels know nothing of contexts or pools).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starkv {
namespace kernels {

// Tokens per attention tile and value-latent channels per attention CTA (see decode_attention.cu).
constexpr int kAttnTileTokens = 32;
constexpr int kAttnValueChannels = 1024;
constexpr int kAttnHeadsPerCta = 8;    // query heads per CTA: the n8 of the value MMA
constexpr int kScoreHeadsPerCta = 32;  // query heads per CTA of the split mode's score kernel
// KV heads whose keys one fold CTA reconstructs (recon_keys): its up-projections fill the shared
// memory the folded queries take otherwise. A chunk of them holds up to 4 x 8 = 32 query heads.
constexpr int kReconKvHeadsPerCta = kAttnHeadsPerCta / 2;
constexpr int kFoldMaxHeads = kReconKvHeadsPerCta * kAttnHeadsPerCta;

// The columns of a quantized key group in the fold's decoded key tile (KeyColumns in
// group_decode.cuh, which says why): n_outlier | gap << 8 where the group's outlier block (its
// first n_outlier of rank channels) and inlier block are both quantized, the outlier block does
// not end on a multiple of 8 and decoding each block in whole groups of 8 from its own start takes
// no more groups than decoding the group from its first channel; else 0 (the identity). (n_outlier
// takes 8 bits: a joint key group with more outlier channels keeps the identity.)
inline int32_t pack_key_group_columns(int32_t n_outlier, int32_t rank, bool both_quantized) {
  const int32_t outlier_groups = (n_outlier + 7) / 8, inlier_groups = (rank - n_outlier + 7) / 8;
  if (!both_quantized || n_outlier <= 0 || n_outlier >= rank || n_outlier % 8 == 0 ||
      n_outlier > 255 || outlier_groups + inlier_groups > (rank + 7) / 8)
    return 0;
  return n_outlier | (8 * outlier_groups - n_outlier) << 8;
}

// One block of a row (row_layout.h BlockLayout, flattened for the device).
struct DevBlock {
  int32_t first_channel;
  int32_t n_channels;
  int32_t bits;
  int32_t storage_bits;
  int32_t byte_offset;
  int32_t byte_count;
  int32_t scale_offset;  // -1 for 16/32-bit blocks
  int32_t pad;
};

// Per layer channel (host side, to find the bytes a CTA stages): x: block byte offset, y: index
// within the block, z: bits | storage_bits << 8, w: scale byte offset (-1 for 16/32-bit).
using ChannelDesc = int4;

// Per KV head key info: x: latent channel offset of the head's key group, y: rank of the group,
// z: rank padded to 16, w: element offset of the head's transposed up slice Ut[D][z] in `key_ut`.
using HeadKeyInfo = int4;
// Per KV head value info: x: latent channel offset of the head's value group (within the row),
// y: rank, z: row stride of the group's up matrix (its in_dim), w: element offset in `value_up` of
// the head's D-column slice (row r of the slice starts at w + r * z).
using HeadValueInfo = int4;
// Per head chunk: x: first key channel kc0, y: key channels the tile holds (max over heads of
// local offset + padded rank), z: first value channel vc0, w: value channels of the chunk.
using ChunkInfo = int4;

// A projection group for append: latent[lat_off + r] = sum_i x[in_offset + i] * down[i, r].
struct DevGroup {
  int32_t in_offset;
  int32_t in_dim;
  int32_t rank;
  int32_t lat_off;
  int64_t down_off;  // element offset into `down`
  int32_t is_value;
  int32_t pad;
};

// The decode-sized projection (launch_project_latents) splits each group's latent channels into
// tiles of kProjectTileChannels and its input rows into slices; one CTA per (tile, slice) item.
// Slice z of every item writes partial sums into buffer z of [proj_slices][n][latent_width], which
// the encode adds in slice order. A group with fewer slices than the layer has (few input rows)
// fills the buffers past its last slice with zeros (from its last slice's items).
constexpr int32_t kProjectTileChannels = 64;
constexpr int32_t kMaxProjectSlices = 16;  // the encode unrolls its sum of the slices to this
constexpr int32_t kProjectCtasPerSm = 2;   // the kernel's occupancy (__launch_bounds__)
constexpr int32_t kMinProjectSliceRows = 64;

// Everything one projection CTA needs (no dependent load of its group).
struct ProjectionItem {
  int64_t down_offset;    // element of `down` at (the slice's first row, the tile's first channel)
  int32_t down_stride;    // the group's rank: elements between consecutive rows of `down`
  int32_t channels;       // channels of the tile (up to kProjectTileChannels)
  int32_t input_offset;   // input column (within keys or values) of the slice's first row
  int32_t rows;           // input rows of the slice
  int32_t latent_offset;  // latent channel of the tile's first channel
  int32_t is_value;       // inputs from `values` (1) or `keys` (0)
  int32_t slice;          // the partial-sum buffer this item writes
  int32_t zero_slices;    // buffers slice + 1 .. slice + zero_slices it fills with zeros
};

// Everything the kernels read about one layer (device pointers into the storage's buffers).
struct LayerView {
  int32_t row_bytes;
  int32_t latent_width;
  int32_t n_blocks;
  int32_t n_groups;
  int32_t n_chunks;
  int32_t kv_heads_per_chunk;  // gc
  int32_t key_tile_stride;     // halves per token row of the key tile (multiple of 16, + 8)
  int32_t max_value_parts;     // max over chunks of ceil(value channels / kAttnValueChannels)
  int32_t max_key_rank_pad;
  int32_t value_rows;  // LvT rows allocated: min(kAttnValueChannels, chunk channels, 16-aligned)
  int32_t max_value_rank;  // largest value group rank (combine kernel's shared memory)
  int32_t key_width;       // key latent channels (value channels follow them in a row)
  int32_t value_width;     // value latent channels
  // Split mode's value kernel: n_value_blocks blocks of value_block_channels value latents (a
  // multiple of 16; the last block may hold fewer) and the row bytes each stages (x, y: 16-aligned
  // begin/end; z, w unused).
  const int4* value_block_bytes;
  int32_t value_block_channels;
  int32_t n_value_blocks;
  const DevBlock* blocks;
  const int32_t* key_columns;    // per key channel: its column in the attention key tile
  const int32_t* channel_block;  // per channel: index of its block in `blocks`
  // Raw row bytes staged per token by the attention kernel: the chunk's key codes, the value
  // part's codes and the scale region, each 16-byte aligned. part_bytes[chunk * max_value_parts
  // + part] = {key begin, key end, value begin, value end} (row byte offsets); the scale region is
  // [scale_base, row_bytes). raw_* are the largest sizes over all (chunk, part).
  const int4* part_bytes;
  int32_t raw_key_bytes, raw_value_bytes, raw_scale_bytes, scale_base;
  const HeadKeyInfo* head_keys;
  const HeadValueInfo* head_values;
  const ChunkInfo* chunks;
  const int32_t* chunk_slot_base;  // first accumulator slot of each chunk (slots per item)
  int32_t slots_per_item;
  const __half* key_ut;
  const float* value_up;
  // Fold-the-query score kernel: per KV head, the row byte offset of its first key latent when the
  // keys are stored as fp16 (read straight from the staged rows), else -1; keys_fp16 is 1 when
  // every key block of the layer is fp16.
  const int32_t* key_row_offset;
  const int32_t* key_channel;  // per KV head: first latent channel of its key group
  // Fold kernel, quantized keys: per KV head, the decoded key tile's columns for its key group
  // (pack_key_group_columns; 0: the identity). nullptr in views the fold does not take.
  const int32_t* key_group_columns;
  int32_t keys_fp16;
  // Fold kernel, GQA layers: 1 when it reconstructs each KV head's keys once (K = L Ut on tensor
  // cores, RoPE on the accumulators, scores for the head's query group by a second MMA) instead of
  // folding every query head into the up-projection (q_per_kv times the tensor work). Set by the
  // backend for q_per_kv >= 2 (STARKV_NO_RECON=1 keeps the fold).
  int32_t recon_keys;
  // Split mode's value kernel: 1 when every value block is fp16 and the first value latent starts
  // 16-byte aligned in the row (the kernel then feeds the staged rows to ldmatrix directly).
  int32_t values_fp16;
  const DevGroup* groups;
  const float* down;
  // Decode-sized projection work, largest first (see ProjectionItem), and the partial-sum buffers
  // it writes (1..kMaxProjectSlices).
  const ProjectionItem* proj_items;
  int32_t n_proj_items;
  int32_t proj_slices;
  uint8_t* rows;  // [n_pages][page_tokens][row_bytes]
  // Fold kernel: per head chunk, a 128-byte 2-D tensor map (CUtensorMap) of the layer's rows
  // (rows x the chunk's key bytes, from its first key byte; box: a tile's rows x the staged row's
  // bytes), when the fold stages each tile by one tensor copy (sm_90's TMA); nullptr: cp.async.
  // (Last, so that the other kernels' parameter offsets stay as they were.)
  const void* key_row_maps;
};
// Rows per box of those maps: the fold kernel's usual tile, always the wgmma instances' tile.
constexpr int kFoldTensorTileTokens = 64;

// Model-wide attention constants.
struct ModelView {
  int32_t n_heads, n_kv_heads, head_dim, q_per_kv;
  int32_t rope_pairs;       // rotary pairs (rotary_dim / 2), 0 for no RoPE
  float scale;              // softmax scale
  const float* inv_freq;    // [rope_pairs]
  const float2* rope_step;  // [kAttnTileTokens][rope_pairs]: cos, sin of k * inv_freq[i]
  const int32_t* perm;      // [head_dim]: column j of the permuted key space is dim perm[j]
  int32_t page_tokens;
};

// A split-K work item: query, token range [start, end).
struct WorkItem {
  int32_t query;
  int32_t start;
  int32_t end;
  int32_t pad;
};

struct AttendBatch {
  int32_t n_queries;
  int32_t n_items;
  const WorkItem* items;
  const int32_t* page_offsets;  // [n_queries]: first entry of the query's page table in `pages`
  const int32_t* pages;
  const int2* query_items;  // [n_queries]: first item, item count
  int32_t max_query_items = 0;  // the largest item count of a query (the split merge's schedule)
  float* acc;               // [n_items][slots_per_item][kAttnValueChannels][8]
  float* stats;             // [n_items][n_heads][2]: running max, running sum
  // Split mode (score kernel, then value kernel): per item and 32-token tile, each head's fp16
  // probabilities [tiles_per_item][n_heads][32] and running max [tiles_per_item][n_heads]; value
  // accumulators [n_items][heads_padded][value_width] f32.
  int32_t tiles_per_item;
  int32_t heads_padded;  // n_heads rounded up to 8 * a power of two (the value kernel's n8 tiles)
  __half* probs;
  float* tile_max;
  float* vacc;
  // Dense layers (dense_layer_attention.cu): each item's unnormalized partial output
  // [n_items][n_heads][head_dim] f32; `stats` then holds each head's max in log2 units.
  float* dense_acc;
  // 1 when items 2p and 2p + 1 belong to the same query for every p: the paired fold may run
  // (kernels/fold_scores_kernel.cuh, fold_paired_layout).
  int32_t items_paired = 0;
};

// Raises every kernel's dynamic shared-memory limit to `bytes` (the device's opt-in maximum).
// Called once per context, so that launches (and graph captures) set no attributes.
cudaError_t configure_kernels(int bytes);

// Dynamic shared memory the attention kernel needs for this layer.
size_t attention_smem_bytes(const LayerView& layer, const ModelView& model);

// Stage 1 (split-K partial attention over the compressed rows) and stage 2 (combine splits and
// up-project values). Return the launch error, if any.
cudaError_t launch_decode_attention(const LayerView& layer, const ModelView& model,
                                    const AttendBatch& batch, const void* q, int q_dtype,
                                    cudaStream_t stream);
// Split mode, for layers with several head chunks (each would decode the value latents again):
// the score kernel writes probabilities, the value kernel decodes each value channel once and
// accumulates P * values for all heads, the combine merges splits and up-projects.
cudaError_t launch_split_attention(const LayerView& scores_layer, const LayerView& layer,
                                   const ModelView& model, const AttendBatch& batch, const void* q,
                                   int q_dtype, void* out, int out_dtype, cudaStream_t stream);
// The score kernel's and the value kernel's shared memory for a layer (0: mode not possible).
size_t split_scores_smem_bytes(const LayerView& scores_layer, const ModelView& model);
size_t split_values_smem_bytes(const LayerView& layer, const ModelView& model);
// Fold-the-query score kernel (see fold_scores.cu): shared memory for a layer's fold view
// (the fused view's chunks of up to 8 query heads, staging key codes and scales only).
size_t fold_scores_smem_bytes(const LayerView& fold_layer, const ModelView& model);
// Whether the fold of this view may stage its tiles by tensor copies (LayerView::key_row_maps):
// it runs the wgmma instances, whose tiles are 64 tokens.
bool fold_uses_tensor_staging(const LayerView& fold_layer, const ModelView& model);
// Whether an MHA layer's view in chunks of 4 heads (DeviceLayer::wide_fold_view) runs the narrow
// wgmma instances: the backend then folds with it instead of the model's chunks of 8 heads.
bool fold_runs_narrow(const LayerView& wide_fold_layer, const ModelView& model);
// Split mode with the fold score kernel: scores per chunk of the fold view (8 query heads, or 4
// KV heads: DeviceLayer::wide_fold_view), then the value kernel and the combine as in
// launch_split_attention.
cudaError_t launch_fold_split_attention(const LayerView& fold_layer, const LayerView& layer,
                                        const ModelView& model, const AttendBatch& batch,
                                        const void* q, int q_dtype, void* out, int out_dtype,
                                        cudaStream_t stream);
// Value channels per CTA of split mode's value kernel: up to kValueBlockChannels (two 16-channel
// m-tiles per warp, so that each probability fragment and rescale serves 32 channels) or, for
// layers of up to 32 query heads, up to kWideValueBlockChannels (three m-tiles for some warps), so
// that a value width just past 256 (Llama-3-8B-like at 75%: 307) is one block instead of a full
// one and a sixth of one. DeviceLayer chooses a layer's block (LayerView::value_block_channels).
constexpr int kValueBlockChannels = 256;
constexpr int kWideValueBlockChannels = 384;
constexpr int kWideValueMaxHeads = 32;  // (3 m-tiles x 8 head tiles of accumulators would spill)
// Query heads padded to whole n8 tiles of the value kernel's accumulators: 8, 16, 32, 64, ...
// (AttendBatch::heads_padded; the value kernel has instances for up to 64).
inline int32_t padded_heads(int32_t n_heads) {
  int32_t hp = 8;
  while (hp < n_heads) hp *= 2;
  return hp;
}
// The most shared memory a CTA may use for two to fit on one sm_90 SM (228 KB per SM, 1 KB of it
// reserved per CTA).
constexpr size_t kSmemTwoCtasPerSm = 233472 / 2 - 1024;

cudaError_t launch_combine_splits(const LayerView& layer, const ModelView& model,
                                  const AttendBatch& batch, void* out, int out_dtype,
                                  cudaStream_t stream);

// ---- Dense attention over uncompressed layers (dense_layer_attention.cu) -----------------------
// An uncompressed layer's rows hold its pre-RoPE keys and its values as fp16 in head-dim order
// (identity factors, checked on the host: dense_row_offsets in src/cuda/device_layer.h), so its
// attention is plain dense attention over the rows.

// How RoPE pairs a head's dims (ModelView::perm is the same pairing as a permutation).
constexpr int kDenseRopeNone = 0;  // no rotation
constexpr int kDenseRopeGptj = 1;  // pairs (2i, 2i + 1)
constexpr int kDenseRopeNeox = 2;  // pairs (i, i + rope_pairs)

struct DenseLayerView {
  const uint8_t* rows;  // [n_pages][page_tokens][row_bytes], as LayerView::rows
  int32_t row_bytes;
  int32_t key_offset;    // row byte offset of KV head 0's D keys; head g's start 2*g*D further
  int32_t value_offset;  // the same for the values
  int32_t rope_mode;     // kDenseRope*
};

// Whether the dense kernels cover this model (head_dim 32, 64 or 128; up to 8 query heads per KV
// head; for neox RoPE, a rotary dim that is a multiple of 8). Host only.
bool dense_layer_attention_supported(const ModelView& model, int rope_mode);
// Dynamic shared memory of the dense attention kernel for this head_dim (0 if not covered).
size_t dense_layer_attention_smem_bytes(int head_dim);
// Raises the dense kernels' dynamic shared-memory limit (called by configure_kernels).
cudaError_t configure_dense_layer_attention(int bytes);
// Split-K partials over the batch's work items (into batch.dense_acc and batch.stats), then the
// combine into out [n_queries][n_heads][head_dim] in out_dtype. Returns the launch error, if any.
cudaError_t launch_dense_layer_attention(const DenseLayerView& layer, const ModelView& model,
                                         const AttendBatch& batch, const void* q, int q_dtype,
                                         void* out, int out_dtype, cudaStream_t stream);

// Projects n tokens' keys and values ([n, G*D] each, in dtype) onto f32 latents (used for
// decode-sized batches, any n; prefill uses cuBLAS): one CTA per layer.proj_items entry. latents
// receives the slices' partial sums, [layer.proj_slices][n][latent_width], which
// launch_encode_rows adds in slice order.
cudaError_t launch_project_latents(const LayerView& layer, int32_t kv_width, int32_t n,
                                   const void* keys, const void* values, int dtype, float* latents,
                                   cudaStream_t stream);
// Converts [n] elements of dtype to f32.
cudaError_t launch_to_float(const void* src, int dtype, int64_t n, float* dst, cudaStream_t stream);
// Encodes n latent rows into their target rows: latents [slices][n][latent_width] in dtype, the
// slices summed in order (slices > 1 only for f32 partial sums from launch_project_latents).
// Targets: [n] (page, slot) pairs; up to kInlineTargets of them travel in the launch's parameters
// from host_targets (no copy to the device), more are read from device_targets.
// after_projection: the kernel just before it on the stream is launch_project_latents, which lets
// it launch early (programmatic dependent launch): its CTAs clear their rows and copy the block
// descriptors while the projection finishes, and wait for it only before reading the latents.
constexpr int32_t kInlineTargets = 64;
cudaError_t launch_encode_rows(const LayerView& layer, int32_t page_tokens, int32_t n,
                               const void* latents, int dtype, int32_t slices,
                               const int2* host_targets, const int2* device_targets,
                               bool after_projection, cudaStream_t stream);

}  // namespace kernels
}  // namespace starkv
