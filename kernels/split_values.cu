// Split mode's value stage (see decode_attention.cu for the whole decode step): after a score
// kernel has written each 32-token tile's fp16 probabilities and running max per head, the value
// kernel reads every value latent once for all query heads, and the combine merges the splits.
//
// decode_values_kernel<NHT, MT>   grid work item x block of the value latents (1-D, the block
//   fastest; LayerView::value_block_channels channels, up to 16 * 8 * MT), 256 threads; NHT = n8
//   tiles of query heads (all heads of the model), MT = m-tiles (16 channels) per warp. Per
//   32-token tile: cp.async staging (a ring of kValueStages tiles) of the block's value codes +
//   scales and of the tile's probabilities [H][32] and running max; fp16 latents at 16-byte
//   aligned row offsets (layer.values_fp16) are consumed straight from the staged rows, anything
//   else is first decoded to a token-major fp16 tile Z[32][128 MT + 8] (a lane = a token; each
//   warp decodes the channels its own m-tiles read, 16 per step, 16-byte stores); then
//   acc^T[c][h] = alpha_h acc^T[c][h] + sum_t Z[t][c] P[h][t] on tensor cores, A fragments by
//   ldmatrix.trans (warp w: channels 16w.., 128 + 16w.., ..., all heads).
//   Writes vacc[item][h][c] (unnormalized, relative to the final running max).
// merge_split_values_kernel, combine_split_values_kernel: see their comments below.
#include <cstdint>

#include "kernels/attention_tiles.cuh"
#include "kernels/block_reduce.cuh"
#include "kernels/dtype_io.cuh"
#include "kernels/group_decode.cuh"
#include "kernels/kernel_api.h"
#include "kernels/mma.cuh"
#include "kernels/split_attention.h"
#include "kernels/split_softmax.cuh"
#include "kernels/tile_staging.cuh"

namespace starkv {
namespace kernels {
namespace {

// Each warp owns m-tiles (16 channels) warp + 8 j, j < MT: the probability fragments and the
// rescale of a tile are loaded once for all of them (with one m-tile per warp they were half of
// the kernel's per-tile instructions). MT = 2 covers kValueBlockChannels, 3 covers
// kWideValueBlockChannels.
__host__ __device__ constexpr int value_block_capacity(int mt) { return 16 * kWarps * mt; }
__host__ __device__ constexpr int value_m_tiles(int block_channels) {
  return block_channels > value_block_capacity(2) ? 3 : 2;
}
static_assert(value_block_capacity(2) == kValueBlockChannels, "two m-tiles per warp");
static_assert(value_block_capacity(3) == kWideValueBlockChannels, "three m-tiles per warp");
// Halves per Z row: 528 or 784 bytes, an odd number of 16-byte units (conflict-free ldmatrix).
__host__ __device__ constexpr int z_stride(int mt) { return value_block_capacity(mt) + 8; }

constexpr int kValueStages = 4;  // cp.async ring depth of the value kernel (tiles in flight)

__host__ __device__ inline size_t values_stage_bytes(const LayerView& l, int heads_padded) {
  return align16(static_cast<size_t>(T) * raw_stride(l)) +
         align16(sizeof(__half) * heads_padded * kTileStride) +
         align16(sizeof(float) * heads_padded);
}

__host__ __device__ inline size_t values_smem(const LayerView& l, int heads_padded) {
  const int mt = value_m_tiles(l.value_block_channels);
  return kValueStages * values_stage_bytes(l, heads_padded) +
         (l.values_fp16 ? 0
                        : align16(sizeof(__half) * T * z_stride(mt)) +
                              sizeof(GroupPlan) * (value_block_capacity(mt) / 8));
}

// Two CTAs per SM (up to 128 registers: MT x NHT accumulator tiles).
template <int NHT, int MT>
__global__ void __launch_bounds__(kThreads, 2)
    decode_values_kernel(LayerView layer, ModelView model, AttendBatch batch) {
  constexpr int S = kValueStages;
  constexpr int kValueMTiles = MT;
  constexpr int kZStride = z_stride(MT);
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;
  const int HP = NHT * 8, H = model.n_heads;
  // blockIdx.x = work item x value block, the block fastest: an item's blocks run together, so they
  // share its probability tiles in L2 and read adjacent bytes of the same rows.
  const int n_vblocks = layer.n_value_blocks;
  const int item_index = static_cast<int>(blockIdx.x) / n_vblocks;
  const int vblock = static_cast<int>(blockIdx.x) - item_index * n_vblocks;
  const WorkItem item = batch.items[item_index];
  const int bc = layer.value_block_channels;
  const int c0 = vblock * bc;
  const int ccount = layer.value_width - c0 < bc ? layer.value_width - c0 : bc;
  const int rstride = raw_stride(layer);
  const bool direct = layer.values_fp16 != 0;
  // Stage s: raw rows [T][rstride], probabilities [HP][kTileStride] halves, tile max [HP] f32.
  const size_t raw_sz = align16(static_cast<size_t>(T) * rstride);
  const size_t prob_sz = align16(sizeof(__half) * HP * kTileStride);
  const size_t stage_sz = raw_sz + prob_sz + align16(sizeof(float) * HP);
  __half* zt = reinterpret_cast<__half*>(smem + S * stage_sz);
  GroupPlan* plans = reinterpret_cast<GroupPlan*>(smem + S * stage_sz +
                                                  align16(sizeof(__half) * T * kZStride));

  // Zero everything once but the group plans (written below by other threads before the first
  // barrier): staging slack, Z, probability rows and tile maxima past H.
  {
    uint4* z = reinterpret_cast<uint4*>(smem);
    const size_t zero_bytes =  // (a multiple of 16: every part of the layout is)
        direct ? values_smem(layer, HP)
               : static_cast<size_t>(reinterpret_cast<uint8_t*>(plans) - smem);
    const int units = static_cast<int>(zero_bytes / 16);
    for (int i = tid; i < units; i += kThreads) z[i] = make_uint4(0u, 0u, 0u, 0u);
  }
  const int32_t* pages = batch.pages + batch.page_offsets[item.query];
  const int pt = model.page_tokens;
  const int4 vb = layer.value_block_bytes[vblock];
  const int4 pb = make_int4(0, 0, vb.x, vb.y);
  const int64_t prob_base = static_cast<int64_t>(item_index) * batch.tiles_per_item;
  // Staged row byte of value channel c0 (fp16 direct mode): 16-byte aligned by construction.
  const int direct_off =
      direct ? layer.raw_key_bytes + (layer.blocks[layer.channel_block[layer.key_width]].byte_offset +
                                      2 * c0 - vb.x)
             : 0;
  const int shift = layer.raw_key_bytes - vb.x;
  const int scale_shift = layer.raw_key_bytes + layer.raw_value_bytes - layer.scale_base;
  const int c_end = layer.key_width + layer.value_width;
  if (!direct && tid < (ccount + 7) / 8)
    plans[tid] = plan_group(layer, shift, scale_shift, layer.key_width + c0 + 8 * tid, c_end);
  __syncthreads();
  // The pairs of groups a lane decodes together (2 m, 2 m + 1: one m-tile), chosen once.
  if (!direct && 2 * tid + 1 < (ccount + 7) / 8 &&
      decode_pair_is_fast(plans[2 * tid], plans[2 * tid + 1]))
    plans[2 * tid].b.w = kPlanPairsWithNext;
  __syncthreads();

  PageCursor cursor{item.start / pt, item.start % pt};  // tiles are staged in order k = 0, 1, ...
  const RowCopier copier(layer, pb);
  // Tile k (if any) into stage k % S; always one commit group per call.
  auto stage = [&](int k) {
    const int t0 = item.start + k * T;
    if (t0 < item.end) {
      uint8_t* base = smem + (k % S) * stage_sz;
      __half* pdst = reinterpret_cast<__half*>(base + raw_sz);
      float* mdst = reinterpret_cast<float*>(base + raw_sz + prob_sz);
      const __half* src = batch.probs + (prob_base + k) * H * T;
      for (int i = tid; i < H * 4; i += kThreads)
        cp_async_16(pdst + (i >> 2) * kTileStride + (i & 3) * 8, src + (i >> 2) * T + (i & 3) * 8);
      const float* msrc = batch.tile_max + (prob_base + k) * H;
      for (int h = tid; h < H; h += kThreads) {
        cp_async_4(mdst + h, msrc + h);
      }
      stage_at_cursor(layer, copier, pages, pt, cursor, t0, item.end - t0 < T ? item.end - t0 : T, T, pb,
                      base);
    }
    cp_async_commit();
  };
#pragma unroll
  for (int k = 0; k < S - 1; ++k) stage(k);

  float acc[kValueMTiles][NHT][4];
  float mprev[NHT][2];
#pragma unroll
  for (int n = 0; n < NHT; ++n) {
#pragma unroll
    for (int j = 0; j < kValueMTiles; ++j) acc[j][n][0] = acc[j][n][1] = acc[j][n][2] = acc[j][n][3] = 0.0f;
    mprev[n][0] = mprev[n][1] = -INFINITY;
  }

  for (int t0 = item.start, k = 0; t0 < item.end; t0 += T, ++k) {
    const int n_valid = item.end - t0 < T ? item.end - t0 : T;
    cp_async_wait_group<S - 2>();
    __syncthreads();
    // Stage (k - 1) % S was last read before this barrier: refill it with tile k + S - 1.
    stage(k + S - 1);
    const uint8_t* base = smem + (k % S) * stage_sz;
    const uint8_t* rbuf = base;
    const __half* pk = reinterpret_cast<const __half*>(base + raw_sz);
    const float* tmax = reinterpret_cast<const float*>(base + raw_sz + prob_sz);
    if (!direct) {
      // Each warp decodes the channels of its own m-tiles (the groups 2 (warp + 8 j) and the next,
      // the columns its ldmatrix reads below), so a warp barrier orders the decode before them.
      const uint8_t* r = rbuf + lane * rstride;
      const bool valid = lane < n_valid;
#pragma unroll
      for (int j = 0; j < kValueMTiles; ++j) {
        const int u = 2 * (warp + kWarps * j);
        if (8 * u >= ccount) break;
        const int cf = layer.key_width + c0 + 8 * u;
        uint4 z0, z1;
        if (plans[u].b.w == kPlanPairsWithNext) {
          decode_fast_pair_of(plans[u], plans[u + 1], r, valid, z0, z1);
        } else {
          z0 = decode_planned_group(layer, plans[u], r, shift, scale_shift, cf, c_end, valid);
          z1 = 8 * u + 8 < ccount ? decode_planned_group(layer, plans[u + 1], r, shift, scale_shift,
                                                         cf + 8, c_end, valid)
                                  : make_uint4(0u, 0u, 0u, 0u);  // (past the block: Z stays 0)
        }
        *reinterpret_cast<uint4*>(zt + lane * kZStride + 8 * u) = z0;
        *reinterpret_cast<uint4*>(zt + lane * kZStride + 8 * u + 8) = z1;
      }
      __syncwarp();
    }
    if (16 * warp < ccount) {
      const int m = lane >> 3;
      // m-tile j's A rows: channels 16 (warp + 8 j) .. + 15; m-tiles past the block's channels
      // (the last block of a layer) are skipped, warp-uniformly.
      const uint8_t* abase =
          direct ? rbuf + ((m >> 1) * 8 + (lane & 7)) * rstride + direct_off + 2 * (16 * warp + (m & 1) * 8)
                 : reinterpret_cast<const uint8_t*>(zt + ((m >> 1) * 8 + (lane & 7)) * kZStride +
                                                    16 * warp + (m & 1) * 8);
      const int astep = direct ? 16 * rstride : 16 * kZStride * 2;
      constexpr int kMTileBytes = 2 * 16 * kWarps;  // bytes between m-tiles j and j + 1 of a row
      // Rescale by exp(previous max - tile max). A head's running max rarely moves after the
      // first tiles, and then the factor is exactly 1: skipped unless some lane's max moved.
      float2 mt[NHT];
      bool moved = false;
#pragma unroll
      for (int n = 0; n < NHT; ++n) {
        mt[n] = *reinterpret_cast<const float2*>(tmax + 8 * n + 2 * tq);
        moved |= (mt[n].x != mprev[n][0]) | (mt[n].y != mprev[n][1]);
      }
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int n = 0; n < NHT; ++n) {
          const float al0 = exp_ftz(mprev[n][0] - mt[n].x), al1 = exp_ftz(mprev[n][1] - mt[n].y);
          mprev[n][0] = mt[n].x;
          mprev[n][1] = mt[n].y;
#pragma unroll
          for (int j = 0; j < kValueMTiles; ++j) {
            acc[j][n][0] *= al0;
            acc[j][n][1] *= al1;
            acc[j][n][2] *= al0;
            acc[j][n][3] *= al1;
          }
        }
      }
#pragma unroll
      for (int kstep = 0; kstep < T / 16; ++kstep) {
        uint32_t a[kValueMTiles][4];
#pragma unroll
        for (int j = 0; j < kValueMTiles; ++j)
          if (j == 0 || 16 * (warp + kWarps * j) < ccount)
            ldmatrix_x4_trans(a[j], abase + kstep * astep + j * kMTileBytes);
        // B = the probabilities P[head][token] of head tiles n, n + 1 (ldmatrix rows: lanes
        // 0-7 heads 8n.., tokens 0-7 of the k-step; 8-15 tokens 8-15; 16-31 the same for n + 1).
#pragma unroll
        for (int n = 0; n + 1 < NHT; n += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, pk + (8 * n + (lane & 7) + (lane >> 4) * 8) * kTileStride + kstep * 16 +
                             ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int j = 0; j < kValueMTiles; ++j) {
            if (j > 0 && 16 * (warp + kWarps * j) >= ccount) continue;
            mma_16816(acc[j][n], a[j], b[0], b[1]);
            mma_16816(acc[j][n + 1], a[j], b[2], b[3]);
          }
        }
        if (NHT % 2 == 1) {
          const __half* bp = pk + (8 * (NHT - 1) + grp) * kTileStride + kstep * 16 + 2 * tq;
#pragma unroll
          for (int j = 0; j < kValueMTiles; ++j)
            if (j == 0 || 16 * (warp + kWarps * j) < ccount)
              mma_16816(acc[j][NHT - 1], a[j], ld_h2(bp), ld_h2(bp + 8));
        }
      }
    }
    // The next iteration's barrier orders these reads before stage k % S is refilled (and, when
    // decoding, before Z is rewritten).
  }
  cp_async_wait_all();  // (only empty groups can be pending here)
  if (16 * warp < ccount) {
    // Head-major [h][c], so that the combine reads each head's latent contiguously (8 lanes of a
    // store instruction write 8 consecutive channels of one head: whole 32-byte sectors).
    const int VW = layer.value_width;
    float* dst = batch.vacc + static_cast<int64_t>(item_index) * HP * VW + c0;
#pragma unroll
    for (int j = 0; j < kValueMTiles; ++j) {
      const int row = (warp + kWarps * j) * 16 + grp;
#pragma unroll
      for (int n = 0; n < NHT; ++n) {
        float* d0 = dst + static_cast<int64_t>(8 * n + 2 * tq) * VW;
        if (row < ccount) {
          d0[row] = acc[j][n][0];
          d0[VW + row] = acc[j][n][1];
        }
        if (row + 8 < ccount) {
          d0[row + 8] = acc[j][n][2];
          d0[VW + row + 8] = acc[j][n][3];
        }
      }
    }
  }
}

// Split mode, stage 3a: merges each (query, head)'s split accumulators once, written over the
// query's first split's row. grid (query, query head x chunk of kMergeThreads / kLanes channels of
// its value rank), kMergeThreads threads = kLanes split lanes x the chunk's channels.
// - kLanes = 1, for few splits per query: each thread merges one channel over all of the query's
//   splits (their statistics, then their rows; merge_split_stats, merge_split_channel).
// - kLanes > 1, for many: the CTA merges the statistics together (thread = split, block
//   reductions), then takes the splits kMergeThreads at a time: their weights
//   __expf(max_s - max) / total go to shared memory, split lane l of channel c adds the rows of
//   splits l, l + kLanes, ... (unrolled: several loads in flight), and the lanes' sums are added
//   through shared memory. With one thread per channel over 128 splits (Llama-3-like 75% fp16,
//   b1 x 32K) the merge took 50 of the step's 87 us; with 16 splits per query (batch 16) the CTA's
//   barriers cost more than the loop saves (bench/RESULTS.md, twenty-fourth session).
// The merge is in place: only this CTA reads or writes its channels of the first split's row (one
// thread per channel, after the barrier that follows every read of it when kLanes > 1).
constexpr int kMergeThreads = 256;
constexpr int kMergeManyLanes = 8;
constexpr int kMergeManySplits = 32;  // from this many splits per query on, kMergeManyLanes lanes

template <int kLanes>
__global__ void __launch_bounds__(kMergeThreads)
    merge_split_values_kernel(LayerView layer, ModelView model, AttendBatch batch) {
  constexpr int kChannels = kMergeThreads / kLanes;
  const int chunks = (layer.max_value_rank + kChannels - 1) / kChannels;
  const int h = static_cast<int>(blockIdx.y) / chunks;
  const int c0 = (static_cast<int>(blockIdx.y) - h * chunks) * kChannels;
  const int tid = static_cast<int>(threadIdx.x);
  const int split_lane = tid / kChannels, c = c0 + tid % kChannels;
  const HeadValueInfo hv = layer.head_values[h / model.q_per_kv];
  const int2 range = batch.query_items[blockIdx.x];
  const int64_t item_stride = static_cast<int64_t>(batch.heads_padded) * layer.value_width;
  float* head_acc =
      batch.vacc + static_cast<int64_t>(h) * layer.value_width + (hv.x - layer.key_width);
  if constexpr (kLanes == 1) {
    if (c >= hv.y || range.y == 0) return;  // (no barriers below)
    float m, inv_total;
    merge_split_stats(batch, model, range, h, &m, &inv_total);
    head_acc[range.x * item_stride + c] =
        merge_split_channel(batch, model, range, h, m, inv_total, head_acc, item_stride, c);
  } else {
    __shared__ float weight[kMergeThreads];
    __shared__ float lane_sum[kLanes][kChannels];
    if (c0 >= hv.y || range.y == 0) return;  // (CTA-uniform: no barrier is skipped)
    // Split s's statistics (running max, sum of exponentials) for head h.
    const int stats_stride = 2 * model.n_heads;
    const float* stats = batch.stats + (static_cast<int64_t>(range.x) * model.n_heads + h) * 2;
    float m = -INFINITY;
    for (int s = tid; s < range.y; s += kMergeThreads) m = fmaxf(m, stats[s * stats_stride]);
    m = block_reduce(m, MaxOp{});
    float total = 0.0f;
    for (int s = tid; s < range.y; s += kMergeThreads)
      total += __expf(stats[s * stats_stride] - m) * stats[s * stats_stride + 1];
    total = block_reduce(total, SumOp{});
    const float inv_total = total > 0.0f ? 1.0f / total : 0.0f;
    float v = 0.0f;
    for (int base = 0; base < range.y; base += kMergeThreads) {
      const int n = range.y - base < kMergeThreads ? range.y - base : kMergeThreads;
      if (tid < n) weight[tid] = __expf(stats[(base + tid) * stats_stride] - m) * inv_total;
      __syncthreads();
      if (c < hv.y) {
        const float* row = head_acc + (range.x + base) * item_stride + c;
#pragma unroll 8
        for (int i = split_lane; i < n; i += kLanes) v += weight[i] * row[i * item_stride];
      }
      __syncthreads();  // (the next batch's weights overwrite these)
    }
    lane_sum[split_lane][tid % kChannels] = v;
    __syncthreads();
    if (split_lane == 0 && c < hv.y) {
      float merged = 0.0f;
#pragma unroll
      for (int l = 0; l < kLanes; ++l) merged += lane_sum[l][tid];
      head_acc[range.x * item_stride + c] = merged;
    }
  }
}

// Split mode, stage 3b: like combine_splits_kernel, reading the merged latents of stage 3a.
// grid (query head x 32-column slice of its output, block of 4 queries), kWarps warps: the merged
// latents of the 4 queries go to shared memory (contiguous per head, so the reads are coalesced);
// then warp w up-projects ranks [w*rank/kWarps, (w+1)*rank/kWarps) into the slice's 32 outputs
// (lane = output column: one 128-byte row segment of the up matrix per rank) and the kWarps
// partial sums are added through shared memory. kWarps = 8; 32 when the batch is one block of
// queries: there are then only H x D/32 CTAs (128 for the Llama-2-like layer), and each warp's
// loop over its ranks waited on one up-matrix row at a time (ncu: 24 us at b1 x 32K). Slicing the
// output gives D/32 times more CTAs than one per (head, query block): with 128 of them
// (Llama-2-like, batch 16) the kernel was latency bound at one CTA per SM. The merge used to be
// repeated here per slice, reading every split's accumulators D/32 times (70 us of a 1288 us step,
// Llama-2-like layer at b16/32K).
constexpr int kCombine2Warps = 8;
constexpr int kCombine2WideWarps = 32;  // (one block of queries)
constexpr int kCombineSlice = 32;

__host__ __device__ inline size_t combine2_smem(const LayerView& l, int warps) {
  return sizeof(float) * kCombineQueries *
         (static_cast<size_t>(l.max_value_rank) + static_cast<size_t>(warps) * kCombineSlice);
}

template <int kWarps>
__global__ void __launch_bounds__(32 * kWarps)
    combine_split_values_kernel(LayerView layer, ModelView model, AttendBatch batch,
                                void* __restrict__ out, int out_dtype) {
  extern __shared__ __align__(16) float lat2[];  // [kCombineQueries][rank], then partial sums
  const int D = model.head_dim;
  const int slices = (D + kCombineSlice - 1) / kCombineSlice;
  const int h = blockIdx.x / slices;
  const int d = (blockIdx.x - h * slices) * kCombineSlice + (threadIdx.x & 31);
  const int g = h / model.q_per_kv;
  const HeadValueInfo hv = layer.head_values[g];
  const int rank = hv.y;
  const int v0 = hv.x - layer.key_width;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t item_stride = static_cast<int64_t>(batch.heads_padded) * layer.value_width;
  const float* head_acc = batch.vacc + static_cast<int64_t>(h) * layer.value_width + v0;
  float* part = lat2 + kCombineQueries * layer.max_value_rank;  // [warps][queries][slice]
  for (int qi = 0; qi < kCombineQueries; ++qi) {
    const int query = blockIdx.y * kCombineQueries + qi;
    if (query >= batch.n_queries) break;
    const int2 range = batch.query_items[query];
    for (int c = tid; c < rank; c += 32 * kWarps)
      lat2[qi * rank + c] = range.y > 0 ? head_acc[range.x * item_stride + c] : 0.0f;
  }
  __syncthreads();
  const int per = (rank + kWarps - 1) / kWarps;
  const int c_lo = warp * per, c_hi = c_lo + per < rank ? c_lo + per : rank;
  float o[kCombineQueries] = {};
  if (d < D) {
    const float* up = layer.value_up + hv.w + d;
    for (int c = c_lo; c < c_hi; ++c) {
      const float u = __ldg(up + static_cast<int64_t>(c) * hv.z);
#pragma unroll
      for (int qi = 0; qi < kCombineQueries; ++qi) o[qi] += lat2[qi * rank + c] * u;
    }
  }
#pragma unroll
  for (int qi = 0; qi < kCombineQueries; ++qi)
    part[(warp * kCombineQueries + qi) * kCombineSlice + lane] = o[qi];
  __syncthreads();
  if (tid < kCombineQueries * kCombineSlice) {
    const int qi = tid / kCombineSlice, j = tid - qi * kCombineSlice;
    const int query = blockIdx.y * kCombineQueries + qi;
    const int dj = d - lane + j;
    if (query < batch.n_queries && dj < D) {
      float v = 0.0f;
      for (int w = 0; w < kWarps; ++w) v += part[(w * kCombineQueries + qi) * kCombineSlice + j];
      store_elem(out, out_dtype, (static_cast<int64_t>(query) * model.n_heads + h) * D + dj, v);
    }
  }
}

template <int NHT>
cudaError_t launch_values_nht(const LayerView& layer, const ModelView& model,
                              const AttendBatch& batch, cudaStream_t stream) {
  const unsigned grid =
      static_cast<unsigned>(batch.n_items) * static_cast<unsigned>(layer.n_value_blocks);
  const size_t smem = values_smem(layer, NHT * 8);
  if (value_m_tiles(layer.value_block_channels) == 2) {
    decode_values_kernel<NHT, 2><<<grid, kThreads, smem, stream>>>(layer, model, batch);
  } else if (NHT * 8 <= kWideValueMaxHeads) {
    // (The template argument is clamped so that no 64-head wide instance is compiled: its 3 x 8
    // accumulator tiles would spill.)
    decode_values_kernel<(NHT * 8 <= kWideValueMaxHeads ? NHT : 1), 3>
        <<<grid, kThreads, smem, stream>>>(layer, model, batch);
  } else {
    return cudaErrorInvalidValue;  // (DeviceLayer keeps wide blocks to <= kWideValueMaxHeads)
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t configure_value_kernels(int bytes) {
  const void* const kernels_used[] = {
      reinterpret_cast<const void*>(decode_values_kernel<1, 2>),
      reinterpret_cast<const void*>(decode_values_kernel<2, 2>),
      reinterpret_cast<const void*>(decode_values_kernel<4, 2>),
      reinterpret_cast<const void*>(decode_values_kernel<8, 2>),
      reinterpret_cast<const void*>(decode_values_kernel<1, 3>),
      reinterpret_cast<const void*>(decode_values_kernel<2, 3>),
      reinterpret_cast<const void*>(decode_values_kernel<4, 3>),
      reinterpret_cast<const void*>(combine_split_values_kernel<kCombine2Warps>),
      reinterpret_cast<const void*>(combine_split_values_kernel<kCombine2WideWarps>),
  };
  return allow_dynamic_smem(kernels_used, bytes);
}

size_t split_values_smem_bytes(const LayerView& layer, const ModelView& model) {
  const int hp = padded_heads(model.n_heads);
  return hp > 64 ? 0 : values_smem(layer, hp);
}

// Split mode, stages 2 and 3: the value kernel (when there are work items) and the combine.
cudaError_t launch_values_and_combine(const LayerView& layer, const ModelView& model,
                                      const AttendBatch& batch, void* out, int out_dtype,
                                      cudaStream_t stream) {
  if (batch.n_items > 0) {
    cudaError_t e = cudaSuccess;
    switch (batch.heads_padded) {
      case 8:
        e = launch_values_nht<1>(layer, model, batch, stream);
        break;
      case 16:
        e = launch_values_nht<2>(layer, model, batch, stream);
        break;
      case 32:
        e = launch_values_nht<4>(layer, model, batch, stream);
        break;
      case 64:
        e = launch_values_nht<8>(layer, model, batch, stream);
        break;
      default:
        return cudaErrorInvalidValue;
    }
    if (e != cudaSuccess) return e;
  }
  if (batch.n_queries > 0) {
    const bool many = batch.max_query_items >= kMergeManySplits;
    const int channels = kMergeThreads / (many ? kMergeManyLanes : 1);
    const int chunks = (layer.max_value_rank + channels - 1) / channels;
    const dim3 grid(static_cast<unsigned>(batch.n_queries),
                    static_cast<unsigned>(model.n_heads * chunks));
    if (many) {
      merge_split_values_kernel<kMergeManyLanes>
          <<<grid, kMergeThreads, 0, stream>>>(layer, model, batch);
    } else {
      merge_split_values_kernel<1><<<grid, kMergeThreads, 0, stream>>>(layer, model, batch);
    }
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  const int slices = (model.head_dim + kCombineSlice - 1) / kCombineSlice;
  const dim3 grid(static_cast<unsigned>(model.n_heads * slices),
                  static_cast<unsigned>((batch.n_queries + kCombineQueries - 1) / kCombineQueries));
  if (batch.n_queries <= kCombineQueries) {
    combine_split_values_kernel<kCombine2WideWarps>
        <<<grid, 32 * kCombine2WideWarps, combine2_smem(layer, kCombine2WideWarps), stream>>>(
            layer, model, batch, out, out_dtype);
  } else {
    combine_split_values_kernel<kCombine2Warps>
        <<<grid, 32 * kCombine2Warps, combine2_smem(layer, kCombine2Warps), stream>>>(
            layer, model, batch, out, out_dtype);
  }
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace starkv
