// Decode attention over the compressed cache (flash-decoding: split-K partials, then a combine).
//
// decode_attention_kernel<NT>   grid (work item, head chunk, value part), 256 threads (8 warps),
//   NT = head_dim / 8, at most 2 CTAs per SM (128 registers). A work item is one query and a token
//   range [start, end) of its sequence (the split-K schedule made by the plan); a head chunk is
//   the KV heads whose query heads fit in 8 (8 / q_per_kv of them); a value part is up to 1024
//   channels of the chunk's value latents. The CTA walks its range in tiles of 32 tokens:
//     0. stage: cp.async copies, per token, the 16-byte-aligned byte ranges this CTA needs (the
//        chunk's key codes, the part's value codes, the scale region) into shared memory; the
//        next tile's copy is issued as soon as this tile is decoded, so it overlaps steps 2-4.
//     1. decode: block by block (uniform width and scale), lane = token, each warp turns groups
//        of 8 codes (storage_bits bytes) into fp16: key latents token-major Lk[32][ks] (each KV
//        head's group in its own 16-aligned, zero-padded column region), value latents
//        channel-major LvT[c][40]; the tile's RoPE table is the exact base angle of the tile
//        times a per-model table of offsets 0..31.
//     2. keys and scores: warp job = (16-token m-tile, KV head, column slice). K = Lk * Ut on
//        tensor cores (mma.sync m16n8k16, fp16 in, fp32 accumulate; ranks padded to 16 with zero
//        rows of Ut), RoPE in registers (key dims are permuted so that every rotary pair is two
//        adjacent columns of one thread), dot with each query head of the group, quad-reduced:
//        partial scores S[slice][8][32] (the softmax scale is folded into q).
//     3. online softmax: warp h owns query head h, lane t token t: running max/sum in registers,
//        probabilities P[8][32] as fp16 and the head's rescale factor.
//     4. values: acc^T[c][h] = alpha_h * acc^T[c][h] + sum_t LvT[c][t] P[h][t] on tensor cores;
//        warp w owns channel m-tiles w, w+8, ... and keeps their accumulators in registers.
//   Reads per tile: the staged bytes of 32 rows, the heads' Ut slices (L1/L2-resident), the
//   queries once per CTA. Writes per CTA: the unnormalized value-latent accumulators [1024][8]
//   f32 and, from value part 0, each head's running max and sum.
// Split mode (layers with several head chunks, where every chunk would decode the whole value
// latent again): a score pass writes each 32-token tile's fp16 probabilities and running max per
// head to the plan's workspace; decode_values_kernel then reads each 256-channel block of value
// latents once and accumulates P * values for all query heads; combine_split_values_kernel
// finishes as below (both in split_values.cu). The score pass is fold_scores_kernel
// (fold_scores.cu: fold the query into the key up-projection) whenever its shared memory fits
// (the backend's `use_fold`), else the kernel above with kFused = false, stopping after step 3
// (STARKV_NO_FOLD=1 forces that). Shared pieces: attention_tiles.cuh (tile geometry),
// tile_staging.cuh (cp.async staging of rows), group_decode.cuh (codes to fp16),
// split_softmax.cuh.
// combine_splits_kernel   grid (query head, block of 4 queries), 128 threads. Merges the splits
//   of each query (log-sum-exp weights), divides by the softmax sum and multiplies the head's
//   value latent by its slice of the value up-projection (f32), writing out[q][h][0..D).
#include <cstdint>

#include "kernels/attention_tiles.cuh"
#include "kernels/dtype_io.cuh"
#include "kernels/group_decode.cuh"
#include "kernels/kernel_api.h"
#include "kernels/latent_codec.cuh"
#include "kernels/mma.cuh"
#include "kernels/rope_angle.cuh"
#include "kernels/split_attention.h"
#include "kernels/split_softmax.cuh"
#include "kernels/tile_staging.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kScoreHeads = kScoreHeadsPerCta;
constexpr int kVch = kAttnValueChannels;
constexpr int kMaxValueTiles = kVch / 16 / kWarps;
constexpr int kMaxSplit = 4;  // key-reconstruction jobs split a head's columns this many ways
constexpr int kCombineThreads = 128;

struct SmemLayout {
  size_t qs, rope, rope_base, scores, alpha, probs, raw, lk, lvt, total;
};

__host__ __device__ inline SmemLayout smem_layout(int head_dim, int rope_pairs, int key_stride,
                                                  int value_rows, int raw_bytes_per_token,
                                                  int heads = kHeads) {
  SmemLayout s{};
  size_t o = 0;
  s.qs = o;
  o = align16(o + sizeof(float) * heads * head_dim);
  s.rope = o;
  o = align16(o + sizeof(float2) * T * (rope_pairs > 0 ? rope_pairs : 1));
  s.rope_base = o;
  o = align16(o + sizeof(float2) * (rope_pairs > 0 ? rope_pairs : 1));
  s.scores = o;
  o = align16(o + sizeof(float) * kMaxSplit * heads * T);
  s.alpha = o;
  o = align16(o + sizeof(float) * heads);
  s.probs = o;
  o = align16(o + sizeof(__half) * heads * kTileStride);
  // (+ 32 bytes of slack: decode_range reads whole groups of 8 latents, up to 28 bytes past a
  // block's last one, which the last token's row would take from lk while it is being written.)
  s.raw = o;
  o = align16(o + static_cast<size_t>(T) * raw_bytes_per_token + 32);
  s.lk = o;
  o = align16(o + sizeof(__half) * T * key_stride);
  s.lvt = o;
  o = align16(o + sizeof(__half) * value_rows * kTileStride);
  s.total = o;
  return s;
}

__device__ __forceinline__ __half half_of(const uint4& z, int k) {
  const uint32_t w = k < 2 ? z.x : k < 4 ? z.y : k < 6 ? z.z : z.w;
  return __ushort_as_half(static_cast<unsigned short>(w >> (16 * (k & 1))));
}

// Decodes layer channels [c_lo, c_hi) of the tile's tokens from the staged rows, block by block
// (a block's width, scale and position are uniform). Lane = token (T == 32); each warp takes
// groups of 8 consecutive codes of a block, which occupy exactly storage_bits bytes (8 fp16
// values = 16 bytes), so a lane reads one to three aligned words (load_code_window), dequantizes
// them in half2 (dequant8, the same bits as the float formula) and writes 8 values. A staged row
// holds row byte b at b + shift (codes) and the scale region at raw_key + raw_value bytes.
// Keys go to lk[t][column] (columns from key_columns), values to lvt[c - lv_first][t].
template <bool kKeys>
__device__ __forceinline__ void decode_range(const LayerView& layer, int c_lo, int c_hi,
                                             const uint8_t* raw, int rstride, int shift,
                                             int n_valid, __half* lk, int ks, __half* lvt,
                                             int lv_first) {
  const int scale_shift = layer.raw_key_bytes + layer.raw_value_bytes - layer.scale_base;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint8_t* r = raw + lane * rstride;
  const bool valid = lane < n_valid;
  const int b_end = layer.channel_block[c_hi - 1] + 1;
  for (int b = layer.channel_block[c_lo]; b < b_end; ++b) {
    const DevBlock blk = load_block(layer, b);
    const int lo = c_lo > blk.first_channel ? c_lo : blk.first_channel;
    const int end = blk.first_channel + blk.n_channels;
    const int hi = c_hi < end ? c_hi : end;
    if (lo >= hi) continue;
    const int dst0 = kKeys ? layer.key_columns[lo] : lo - lv_first;
    const int j0 = lo - blk.first_channel, j1 = hi - blk.first_channel;
    const int bits = blk.bits, sb = blk.storage_bits;
    const int base = blk.byte_offset + shift;
    const uint16_t scale_bits =
        (bits < 16 && valid) ? ld_u16(r + blk.scale_offset + scale_shift) : uint16_t{0};
    // Keys: channel j of the block goes to column dst0 + j - j0; whole groups whose columns start
    // at a multiple of 8 take one 16-byte store (lk rows are 16-byte aligned: ks % 8 == 0).
    const bool vec_store = kKeys && ((dst0 - j0) & 7) == 0;
    for (int g = (j0 >> 3) + warp; g < (j1 + 7) >> 3; g += kWarps) {
      uint4 z = make_uint4(0u, 0u, 0u, 0u);
      if (valid) {
        if (bits < 16) {  // 8 codes = sb bytes from bit 8 * (base + g * sb) of the row
          uint32_t wlo, whi;
          load_code_window(r, 8 * (base + g * sb), sb, wlo, whi);
          z = dequant8(wlo, whi, sb, bits, scale_bits);
        } else {
          float v[8];
          if (bits == 16) {
            const __half* p = reinterpret_cast<const __half*>(r + base) + 8 * g;
#pragma unroll
            for (int k = 0; k < 8; ++k) v[k] = __half2float(p[k]);
          } else {
            const float* p = reinterpret_cast<const float*>(r + base) + 8 * g;
#pragma unroll
            for (int k = 0; k < 8; ++k) v[k] = p[k];
          }
          z = pack8_rn(v);
        }
      }
      if (kKeys && vec_store && 8 * g >= j0 && 8 * g + 8 <= j1) {
        *reinterpret_cast<uint4*>(lk + lane * ks + dst0 + (8 * g - j0)) = z;
        continue;
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int j = 8 * g + k;
        if (j >= j0 && j < j1) {
          const __half h = half_of(z, k);
          if (kKeys) {
            lk[lane * ks + dst0 + (j - j0)] = h;
          } else {
            lvt[(dst0 + (j - j0)) * kTileStride + lane] = h;
          }
        }
      }
    }
  }
}

// One key job of a warp: K[16 tokens x NTP*8 columns] of KV head g0+gl, columns from n-tile
// part*NTP, reconstructed on tensor cores, rotated (RoPE), dotted with the head's queries; the
// quad-reduced partial scores go to scores[part][head][token].
template <int NT, int NTP>
__device__ __forceinline__ void key_job(const LayerView& layer, const __half* lk, int ks,
                                        const float2* rope, int rp, const float* qs, float* scores,
                                        int g0, int gl, int mt, int part, int qpk, int heads) {
  constexpr int D = NT * 8;
  const int lane = threadIdx.x & 31, grp = lane >> 2, tq = lane & 3;
  const int jt0 = part * NTP;
  const HeadKeyInfo hk = layer.head_keys[g0 + gl];
  const int rkp = hk.z;
  const __half* __restrict__ ut = layer.key_ut + hk.w + (8 * jt0 + grp) * rkp + 2 * tq;
  float kacc[NTP][4];
#pragma unroll
  for (int j = 0; j < NTP; ++j) kacc[j][0] = kacc[j][1] = kacc[j][2] = kacc[j][3] = 0.0f;
  const __half* arow0 = lk + (mt * 16 + grp) * ks + hk.x + 2 * tq;
  const __half* arow1 = arow0 + 8 * ks;
  for (int kk = 0; kk < rkp; kk += 16) {
    uint32_t a[4];
    a[0] = ld_h2(arow0 + kk);
    a[1] = ld_h2(arow1 + kk);
    a[2] = ld_h2(arow0 + kk + 8);
    a[3] = ld_h2(arow1 + kk + 8);
#pragma unroll
    for (int j = 0; j < NTP; ++j) {
      const __half* bp = ut + 8 * j * rkp + kk;
      const uint32_t b0 = __ldg(reinterpret_cast<const unsigned int*>(bp));
      const uint32_t b1 = __ldg(reinterpret_cast<const unsigned int*>(bp + 8));
      mma_16816(kacc[j], a, b0, b1);
    }
  }
  const int r0 = mt * 16 + grp;
#pragma unroll
  for (int j = 0; j < NTP; ++j) {
    const int i = 4 * (jt0 + j) + tq;  // rotary pair of columns 2i, 2i+1
    if (i < rp) {
      const float2 c0 = rope[r0 * rp + i];
      const float2 c1 = rope[(r0 + 8) * rp + i];
      const float x0 = kacc[j][0], x1 = kacc[j][1], y0 = kacc[j][2], y1 = kacc[j][3];
      kacc[j][0] = x0 * c0.x - x1 * c0.y;
      kacc[j][1] = x1 * c0.x + x0 * c0.y;
      kacc[j][2] = y0 * c1.x - y1 * c1.y;
      kacc[j][3] = y1 * c1.x + y0 * c1.y;
    }
  }
  for (int hh = 0; hh < qpk; ++hh) {
    const int hl = gl * qpk + hh;
    const float* qrow = qs + hl * D + 8 * jt0 + 2 * tq;
    float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
    for (int j = 0; j < NTP; ++j) {
      const float2 qv = *reinterpret_cast<const float2*>(qrow + 8 * j);
      s0 += kacc[j][0] * qv.x + kacc[j][1] * qv.y;
      s1 += kacc[j][2] * qv.x + kacc[j][3] * qv.y;
    }
    s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
    s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
    s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
    s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
    if (tq == 0) {
      scores[(part * heads + hl) * T + r0] = s0;
      scores[(part * heads + hl) * T + r0 + 8] = s1;
    }
  }
}

template <int NT, bool kFused, int HC>
__global__ void __launch_bounds__(kThreads, 2)
    decode_attention_kernel(LayerView layer, ModelView model, AttendBatch batch,
                            const void* __restrict__ q, int q_dtype) {
  constexpr int D = NT * 8;
  static_assert(!kFused || HC == kHeads, "the fused kernel holds 8 query heads");
  constexpr int HPW = HC / kWarps;  // of them per warp in the softmax
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;

  const WorkItem item = batch.items[blockIdx.x];
  const int chunk = blockIdx.y, vpart = blockIdx.z;
  const ChunkInfo ci = layer.chunks[chunk];
  const int v_begin = vpart * kVch;
  const int n_vparts = ci.w > 0 ? (ci.w + kVch - 1) / kVch : 1;
  if (vpart >= n_vparts) return;
  const int vcount = !kFused ? 0 : (ci.w - v_begin < kVch ? ci.w - v_begin : kVch);
  const int vtiles = (vcount + 15) / 16;
  const int qpk = model.q_per_kv;
  const int gc = layer.kv_heads_per_chunk;
  const int g0 = chunk * gc;
  const int ngc = model.n_kv_heads - g0 < gc ? model.n_kv_heads - g0 : gc;
  const int n_local_heads = ngc * qpk;
  const int rp = model.rope_pairs;
  const int ks = layer.key_tile_stride;
  // Split each (m-tile, KV head) job's columns so that all 8 warps have work (GQA chunks hold few
  // KV heads); the partial scores are summed by the softmax.
  int nsplit = 1;
  while (nsplit < kMaxSplit && 2 * ngc * nsplit < kWarps && (NT % (2 * nsplit)) == 0) nsplit *= 2;

  const SmemLayout L = smem_layout(D, rp, ks, layer.value_rows, raw_stride(layer), HC);
  float* qs = reinterpret_cast<float*>(smem + L.qs);
  float2* rope = reinterpret_cast<float2*>(smem + L.rope);
  float2* rope_base = reinterpret_cast<float2*>(smem + L.rope_base);
  float* scores = reinterpret_cast<float*>(smem + L.scores);
  float* alpha_s = reinterpret_cast<float*>(smem + L.alpha);
  uint8_t* raw = smem + L.raw;
  __half* probs = reinterpret_cast<__half*>(smem + L.probs);
  __half* lk = reinterpret_cast<__half*>(smem + L.lk);
  __half* lvt = reinterpret_cast<__half*>(smem + L.lvt);

  // Queries of the chunk's heads, permuted like the key columns and pre-scaled.
  for (int idx = tid; idx < HC * D; idx += kThreads) {
    const int h = idx / D, j = idx - h * D;
    float v = 0.0f;
    if (h < n_local_heads) {
      const int64_t e =
          (static_cast<int64_t>(item.query) * model.n_heads + g0 * qpk + h) * D + model.perm[j];
      v = load_elem(q, q_dtype, e) * model.scale;
    }
    qs[idx] = v;
  }
  // Zero the tiles once: padding columns/rows are never written again and must be finite zeros.
  {
    uint32_t* z = reinterpret_cast<uint32_t*>(smem + L.lk);
    const int words = static_cast<int>((L.total - L.lk) / 4);
    for (int i = tid; i < words; i += kThreads) z[i] = 0u;
  }
  const int32_t* pages = batch.pages + batch.page_offsets[item.query];
  const int pt = model.page_tokens;

  float acc[kMaxValueTiles][4];
#pragma unroll
  for (int i = 0; i < kMaxValueTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  float run_max[HPW], run_sum[HPW];  // of query heads warp + 8j, kept by every lane
#pragma unroll
  for (int j = 0; j < HPW; ++j) {
    run_max[j] = -INFINITY;
    run_sum[j] = 0.0f;
  }
  __syncthreads();

  const int4 pb = layer.part_bytes[chunk * layer.max_value_parts + vpart];
  const int rstride = raw_stride(layer);
  stage_tile(layer, pages, pt, item.start, item.end, pb, raw);

  for (int t0 = item.start; t0 < item.end; t0 += T) {
    const int n_valid = item.end - t0 < T ? item.end - t0 : T;
    for (int i = tid; i < rp; i += kThreads) {
      rope_base[i] = exact_rotation(t0, model.inv_freq[i]);
    }
    cp_async_wait_all();
    __syncthreads();

    // RoPE table of the tile: the accurate base angle (pair i at position t0) times the per-model
    // table of offsets 0..31 (two unit complex numbers: a product, ~2 ulp).
    for (int idx = tid; idx < T * rp; idx += kThreads) {
      const int t = idx / rp, i = idx - t * rp;
      const float2 b = rope_base[i], st = model.rope_step[idx];
      rope[idx] = make_float2(b.x * st.x - b.y * st.y, b.y * st.x + b.x * st.y);
    }
    // 1. Decode the tile's key and value latents from the staged bytes.
    if (ci.y > 0) {
      decode_range<true>(layer, ci.x, ci.x + ci.y, raw, rstride, -pb.x, n_valid, lk, ks, lvt, 0);
    }
    if (vcount > 0) {
      decode_range<false>(layer, ci.z + v_begin, ci.z + v_begin + vcount, raw, rstride,
                          layer.raw_key_bytes - pb.z, n_valid, lk, ks, lvt, ci.z + v_begin);
    }
    __syncthreads();
    // The staging buffer is free again: fetch the next tile while this one is computed.
    if (t0 + T < item.end) stage_tile(layer, pages, pt, t0 + T, item.end, pb, raw);

    // 2. Reconstruct keys on tensor cores, RoPE, scores.
    for (int job = warp; job < 2 * ngc * nsplit; job += kWarps) {
      const int part = job % nsplit, mt = (job / nsplit) & 1, gl = job / nsplit >> 1;
      if (nsplit == 1) {
        key_job<NT, NT>(layer, lk, ks, rope, rp, qs, scores, g0, gl, mt, part, qpk, HC);
      } else if (nsplit == 2) {
        key_job<NT, NT / 2>(layer, lk, ks, rope, rp, qs, scores, g0, gl, mt, part, qpk, HC);
      } else {
        key_job<NT, (NT / 4 > 0 ? NT / 4 : 1)>(layer, lk, ks, rope, rp, qs, scores, g0, gl, mt,
                                               part, qpk, HC);
      }
    }
    __syncthreads();

    // 3. Online softmax: warp = query head (heads warp + 8j in split mode), lane = token.
#pragma unroll
    for (int j = 0; j < HPW; ++j) {
      const int h = warp + kWarps * j;
      float alpha = 1.0f, p = 0.0f;
      if (h < n_local_heads) {
        float s = -INFINITY;
        if (lane < n_valid) {
          s = scores[h * T + lane];
          for (int part = 1; part < nsplit; ++part) s += scores[(part * HC + h) * T + lane];
        }
        float tile_max = s;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, o));
        const float new_max = fmaxf(run_max[j], tile_max);
        alpha = __expf(run_max[j] - new_max);
        p = lane < n_valid ? __expf(s - new_max) : 0.0f;
        float sum = p;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        run_sum[j] = run_sum[j] * alpha + sum;
        run_max[j] = new_max;
      }
      if (kFused) {
        probs[h * kTileStride + lane] = __float2half_rn(p);
        if (lane == 0) alpha_s[h] = alpha;
      } else if (h < n_local_heads) {
        // Split mode: the value kernel consumes this tile's probabilities and running max.
        const int64_t row =
            (static_cast<int64_t>(blockIdx.x) * batch.tiles_per_item + (t0 - item.start) / T) *
                model.n_heads +
            g0 * qpk + h;
        batch.probs[row * T + lane] = __float2half_rn(p);
        if (lane == 0) batch.tile_max[row] = run_max[j];
      }
    }
    if (!kFused) continue;  // (uniform) no value work in split mode; the next barrier is at the top
    __syncthreads();

    // 4. Value latents: acc^T = alpha * acc^T + LvT * P^T.
    {
      uint32_t b[2][2];
#pragma unroll
      for (int kstep = 0; kstep < T / 16; ++kstep) {
        const __half* bp = probs + grp * kTileStride + kstep * 16 + 2 * tq;
        b[kstep][0] = ld_h2(bp);
        b[kstep][1] = ld_h2(bp + 8);
      }
      const float al0 = alpha_s[2 * tq], al1 = alpha_s[2 * tq + 1];
#pragma unroll
      for (int i = 0; i < kMaxValueTiles; ++i) {
        const int mtile = warp + kWarps * i;
        if (mtile < vtiles) {
          acc[i][0] *= al0;
          acc[i][1] *= al1;
          acc[i][2] *= al0;
          acc[i][3] *= al1;
#pragma unroll
          for (int kstep = 0; kstep < T / 16; ++kstep) {
            const __half* ap = lvt + (mtile * 16 + grp) * kTileStride + kstep * 16 + 2 * tq;
            uint32_t a[4];
            a[0] = ld_h2(ap);
            a[1] = ld_h2(ap + 8 * kTileStride);
            a[2] = ld_h2(ap + 8);
            a[3] = ld_h2(ap + 8 * kTileStride + 8);
            mma_16816(acc[i], a, b[kstep][0], b[kstep][1]);
          }
        }
      }
    }
    // The next tile's first barrier orders these reads before the tiles are overwritten.
    __syncthreads();
  }

  if (kFused) {
    float* dst = batch.acc + (static_cast<int64_t>(blockIdx.x) * layer.slots_per_item +
                              layer.chunk_slot_base[chunk] + vpart) *
                                 static_cast<int64_t>(kVch * kHeads);
#pragma unroll
    for (int i = 0; i < kMaxValueTiles; ++i) {
      const int mtile = warp + kWarps * i;
      if (mtile < vtiles) {
        const int row = mtile * 16 + grp;
        *reinterpret_cast<float2*>(dst + row * kHeads + 2 * tq) = make_float2(acc[i][0], acc[i][1]);
        *reinterpret_cast<float2*>(dst + (row + 8) * kHeads + 2 * tq) =
            make_float2(acc[i][2], acc[i][3]);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < HPW; ++j) {
    const int h = warp + kWarps * j;
    if (vpart == 0 && h < n_local_heads && lane == 0) {
      float* st =
          batch.stats + (static_cast<int64_t>(blockIdx.x) * model.n_heads + g0 * qpk + h) * 2;
      st[0] = run_max[j];
      st[1] = run_sum[j];
    }
  }
}

__global__ void __launch_bounds__(kCombineThreads)
    combine_splits_kernel(LayerView layer, ModelView model, AttendBatch batch,
                          void* __restrict__ out, int out_dtype) {
  extern __shared__ __align__(16) float lat[];  // [kCombineQueries][rank]
  const int h = blockIdx.x;
  const int g = h / model.q_per_kv;
  const int chunk = g / layer.kv_heads_per_chunk;
  const int hl = h - chunk * layer.kv_heads_per_chunk * model.q_per_kv;
  const HeadValueInfo hv = layer.head_values[g];
  const ChunkInfo ci = layer.chunks[chunk];
  const int rank = hv.y;
  const int local0 = hv.x - ci.z;
  const int D = model.head_dim;
  const int tid = threadIdx.x;
  const int64_t item_stride = static_cast<int64_t>(layer.slots_per_item) * kVch * kHeads;

  for (int qi = 0; qi < kCombineQueries; ++qi) {
    const int query = blockIdx.y * kCombineQueries + qi;
    if (query >= batch.n_queries) break;
    const int2 range = batch.query_items[query];
    float m, inv_total;
    merge_split_stats(batch, model, range, h, &m, &inv_total);
    for (int c = tid; c < rank; c += kCombineThreads) {
      const int local = local0 + c;
      const int slot = layer.chunk_slot_base[chunk] + local / kVch;
      const int64_t off = static_cast<int64_t>(slot) * kVch * kHeads + (local % kVch) * kHeads + hl;
      lat[qi * rank + c] =
          merge_split_channel(batch, model, range, h, m, inv_total, batch.acc, item_stride, off);
    }
  }
  __syncthreads();
  for (int d = tid; d < D; d += kCombineThreads) {
    float o[kCombineQueries];
#pragma unroll
    for (int qi = 0; qi < kCombineQueries; ++qi) o[qi] = 0.0f;
    const float* up = layer.value_up + hv.w + d;
    for (int c = 0; c < rank; ++c) {
      const float w = __ldg(up + static_cast<int64_t>(c) * hv.z);
#pragma unroll
      for (int qi = 0; qi < kCombineQueries; ++qi) o[qi] += lat[qi * rank + c] * w;
    }
#pragma unroll
    for (int qi = 0; qi < kCombineQueries; ++qi) {
      const int query = blockIdx.y * kCombineQueries + qi;
      if (query < batch.n_queries) {
        store_elem(out, out_dtype, (static_cast<int64_t>(query) * model.n_heads + h) * D + d,
                   o[qi]);
      }
    }
  }
}

template <int NT, bool kFused, int HC = kHeads>
cudaError_t launch_attention_nt(const LayerView& layer, const ModelView& model,
                                const AttendBatch& batch, const void* q, int q_dtype,
                                cudaStream_t stream) {
  const size_t smem = kFused ? attention_smem_bytes(layer, model)
                             : smem_layout(model.head_dim, model.rope_pairs, layer.key_tile_stride,
                                           0, raw_stride(layer), HC)
                                   .total;
  const dim3 grid(static_cast<unsigned>(batch.n_items), static_cast<unsigned>(layer.n_chunks),
                  static_cast<unsigned>(layer.max_value_parts));
  decode_attention_kernel<NT, kFused, HC>
      <<<grid, kThreads, smem, stream>>>(layer, model, batch, q, q_dtype);
  return cudaGetLastError();
}

}  // namespace

// Every attention kernel instance a launch may pick (head_dim 32/64/128; see the launchers).
cudaError_t configure_attention_kernels(int bytes) {
  const void* const kernels_used[] = {
      reinterpret_cast<const void*>(decode_attention_kernel<4, true, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<8, true, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<16, true, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<4, false, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<8, false, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<16, false, kHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<4, false, kScoreHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<8, false, kScoreHeads>),
      reinterpret_cast<const void*>(decode_attention_kernel<16, false, kScoreHeads>),
      reinterpret_cast<const void*>(combine_splits_kernel),
  };
  cudaError_t e = allow_dynamic_smem(kernels_used, bytes);
  if (e == cudaSuccess) e = configure_fold_kernels(bytes);
  return e == cudaSuccess ? configure_value_kernels(bytes) : e;
}

size_t attention_smem_bytes(const LayerView& layer, const ModelView& model) {
  return smem_layout(model.head_dim, model.rope_pairs, layer.key_tile_stride, layer.value_rows,
                     raw_stride(layer))
      .total;
}

cudaError_t launch_decode_attention(const LayerView& layer, const ModelView& model,
                                    const AttendBatch& batch, const void* q, int q_dtype,
                                    cudaStream_t stream) {
  if (batch.n_items <= 0) return cudaSuccess;
  switch (model.head_dim) {
    case 32:
      return launch_attention_nt<4, true>(layer, model, batch, q, q_dtype, stream);
    case 64:
      return launch_attention_nt<8, true>(layer, model, batch, q, q_dtype, stream);
    case 128:
      return launch_attention_nt<16, true>(layer, model, batch, q, q_dtype, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_combine_splits(const LayerView& layer, const ModelView& model,
                                  const AttendBatch& batch, void* out, int out_dtype,
                                  cudaStream_t stream) {
  const size_t smem = sizeof(float) * kCombineQueries * static_cast<size_t>(layer.max_value_rank);
  const dim3 grid(static_cast<unsigned>(model.n_heads),
                  static_cast<unsigned>((batch.n_queries + kCombineQueries - 1) / kCombineQueries));
  combine_splits_kernel<<<grid, kCombineThreads, smem, stream>>>(layer, model, batch, out,
                                                                 out_dtype);
  return cudaGetLastError();
}

size_t split_scores_smem_bytes(const LayerView& scores_layer, const ModelView& model) {
  const bool wide = scores_layer.kv_heads_per_chunk * model.q_per_kv > kHeads;
  return smem_layout(model.head_dim, model.rope_pairs, scores_layer.key_tile_stride, 0,
                     raw_stride(scores_layer), wide ? kScoreHeads : kHeads)
      .total;
}

cudaError_t launch_split_attention(const LayerView& scores_layer, const LayerView& layer,
                                   const ModelView& model, const AttendBatch& batch, const void* q,
                                   int q_dtype, void* out, int out_dtype, cudaStream_t stream) {
  if (batch.n_items > 0) {
    cudaError_t e = cudaSuccess;
    const bool wide = scores_layer.kv_heads_per_chunk * model.q_per_kv > kHeads;
    switch (model.head_dim * (wide ? -1 : 1)) {
      case 32:
        e = launch_attention_nt<4, false, kHeads>(scores_layer, model, batch, q, q_dtype, stream);
        break;
      case 64:
        e = launch_attention_nt<8, false, kHeads>(scores_layer, model, batch, q, q_dtype, stream);
        break;
      case 128:
        e = launch_attention_nt<16, false, kHeads>(scores_layer, model, batch, q, q_dtype, stream);
        break;
      case -32:
        e = launch_attention_nt<4, false, kScoreHeads>(scores_layer, model, batch, q, q_dtype,
                                                       stream);
        break;
      case -64:
        e = launch_attention_nt<8, false, kScoreHeads>(scores_layer, model, batch, q, q_dtype,
                                                       stream);
        break;
      case -128:
        e = launch_attention_nt<16, false, kScoreHeads>(scores_layer, model, batch, q, q_dtype,
                                                        stream);
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
