// Dense attention over uncompressed layers (flash-decoding: split-K partials, then a combine).
//
// An uncompressed layer (LayerProfile::compressed == false) stores per token its G*D pre-RoPE keys
// and then its G*D values as fp16, in head-dim order, behind identity factors (checked on the host:
// dense_row_offsets, src/cuda/device_layer.h). Attention over it is plain dense attention, so these
// kernels read the rows straight, each byte once, instead of running the low-rank kernels with
// identity up-projections and a G*D-wide value latent (~4x the time over the same bytes).
//
// dense_layer_attention_kernel<D, MODE, NST>   grid (work item, KV head), 128 threads (4 warps).
//   A work item is one query and a token range [start, end) (the plan's split-K schedule); the
//   CTA attends the q_per_kv query heads of one KV head over it, so each key and value is read
//   once for all of them. The 4 warps run independently (no block barrier until the final merge):
//   warp w takes the 16-token tiles w, w + 4, w + 8, ... of the range, each staged by cp.async into
//   the warp's own NST-deep ring of buffers [16 tokens][keys 2D bytes | values 2D bytes] (16-byte
//   chunks XOR-swizzled by token, so that the key loads and ldmatrix reads below avoid bank
//   conflicts). Per tile:
//     1. scores on tensor cores, S[16 tokens][8 heads] = K' Q^T (mma.sync m16n8k16, fp16 in, f32
//        accumulate; query heads past q_per_kv are zero columns). The k dimension is ordered RoPE
//        pair by pair, so a key's rotary pair is one A register: each thread loads 4 pairs of its
//        2 tokens per chunk, rotates them in f32 by the exact angle of their position (a per-warp
//        table of the tile's base angles, exact at the item start, advanced by a 64-token rotation
//        per tile and recomputed exactly every 8 tiles, times a per-block table of the offsets
//        0..15) and packs them to fp16. The query's B fragments, in the same pair order, are
//        loaded once per block.
//     2. online softmax in f32, in log2 units with the softmax scale folded in: a thread holds 2
//        heads x 2 tokens; a head's tile max is a 3-shuffle reduction over the 8 lanes holding it.
//     3. values on tensor cores, O^T[D][8 heads] += V^T P: the fp16 probabilities are transposed
//        in registers (movmatrix) into B fragments, V^T comes from the staged rows by
//        ldmatrix.trans; the accumulators O^T stay in registers (D/16 m-tiles).
//   Why this shape: the kernel is memory bound (4*D bytes per token and KV head), so it reads
//   only the rows and stages them asynchronously, keeps several tiles in flight per warp and at
//   least 12 warps per SM, and leaves the arithmetic (RoPE, the 8-column MMAs) well below the
//   issue rate. Writes per block: the item's unnormalized output [q_per_kv][D] (f32, relative to
//   its max) and each head's (max, sum) into the plan's workspace, after merging the 4 warps.
// dense_combine_kernel<D>   grid (query, group of heads), 128 threads (D/4 per head, 4 channels
//   each): merges a query's items by their log-sum-exp weights and writes out[q][h][0..D) in the
//   caller's dtype.
#include <cstdint>

#include "kernels/cp_async.cuh"
#include "kernels/dtype_io.cuh"
#include "kernels/kernel_api.h"
#include "kernels/mma.cuh"
#include "kernels/rope_angle.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileTokens = 16;  // a warp's tile: the m16 of the score MMA
constexpr int kHeadCols = 8;     // query heads per MMA: the n8 of the score MMA
constexpr int kReanchor = 8;     // tiles between exactly computed base angles
constexpr int kCombineThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kAttnTileTokens >= kTileTokens, "ModelView::rope_step covers a tile's offsets");

// Stages per warp: enough bytes in flight per SM (Little's law: ~36 KB at 4.8 TB/s and ~1 us)
// while the shared memory still fits 3 (D = 128) or 4 (D <= 64) blocks per SM.
template <int D>
constexpr int stages() {
  return D == 128 ? 2 : D == 64 ? 3 : 4;
}

// Shared memory: the RoPE offset table (16 rows of D/2 pairs, padded by two pairs so that the 8
// rows a quarter-warp reads fall in different banks), each warp's base-angle table, then each
// warp's ring of staged tiles. After the main loop the ring area holds the warps' partial results.
template <int D, int NST>
struct DenseSmem {
  static constexpr int kPairs = D / 2;
  static constexpr int kStepStride = kPairs + 2;  // float2 per row of the offset table
  static constexpr int kRowBytes = 4 * D;         // keys then values of one token
  static constexpr int kBufBytes = kTileTokens * kRowBytes;
  static constexpr size_t kStep = 0;
  static constexpr size_t kBase = kStep + sizeof(float2) * kTileTokens * kStepStride;
  static constexpr size_t kStage = kBase + sizeof(float2) * kWarps * kPairs;
  static constexpr size_t kTotal = kStage + static_cast<size_t>(kWarps) * NST * kBufBytes;
  // Per warp: O [8 heads][D], then max [8] and sum [8], f32.
  static constexpr int kMergeFloats = kHeadCols * D + 2 * kHeadCols;
  static_assert(kStage % 16 == 0 && (sizeof(float2) * kStepStride) % 16 == 0, "16-byte rows");
  static_assert(sizeof(float) * kWarps * kMergeFloats <= kTotal - kStage, "merge fits the ring");
};

// The physical 16-byte chunk of logical chunk `chunk` in the row of token `tok`: the low three bits
// of the chunk index are XORed with a bit permutation of tok % 8, chosen so that (a) the 8 rows an
// ldmatrix reads, (b) the 2 rows of a quarter-warp's 16-byte key loads and (c) the 4 rows of a
// half-warp's 8-byte key loads each touch distinct banks.
__device__ __forceinline__ int swizzle(int tok) {
  return ((tok & 1) << 2) | (tok & 2) | ((tok >> 2) & 1);
}
__device__ __forceinline__ int chunk_byte(int byte, int sw) {
  return (((byte >> 4) ^ sw) << 4) | (byte & 15);
}

__device__ __forceinline__ float2 unpack_half2(uint32_t u) {
  return __half22float2(*reinterpret_cast<const __half2*>(&u));
}

__device__ __forceinline__ float2 rotate(float2 a, float2 b) {  // complex product a * b
  return make_float2(a.x * b.x - a.y * b.y, a.y * b.x + a.x * b.y);
}

// Stages the rows of tokens [t0, t0 + 16) (those before `end`; the rest are zero-filled so that
// masked tokens contribute 0 * finite) of KV head g: keys at row bytes [koff, koff + 2D), values at
// [voff, voff + 2D), into buf[token][0 .. 4D) with swizzled chunks. Lanes 0..15 find the rows; a
// lane then always copies the same chunk (lane % (D/4)) of every (32 / (D/4))-th token.
template <int D>
__device__ __forceinline__ void stage_tile(const DenseLayerView& layer,
                                           const int32_t* __restrict__ pages, int pt, int t0,
                                           int end, int koff, int voff, uint8_t* buf, int lane) {
  constexpr int kChunks = D / 4;  // 16-byte chunks per token: keys, then values
  constexpr int kKeyChunks = D / 8;
  constexpr int kTokensPerPass = 32 / kChunks;
  int row = 0;
  if (lane < kTileTokens && t0 + lane < end) {
    const int t = t0 + lane;
    row = pages[t / pt] * pt + t % pt;
  }
  const int ch = lane % kChunks, sub = lane / kChunks;
  const uint8_t* src =
      layer.rows + (ch < kKeyChunks ? koff + 16 * ch : voff + 16 * (ch - kKeyChunks));
#pragma unroll
  for (int k = 0; k < kTileTokens / kTokensPerPass; ++k) {
    const int tok = k * kTokensPerPass + sub;
    const int r = __shfl_sync(0xffffffffu, row, tok);
    cp_async_16_zfill(buf + tok * (4 * D) + 16 * (ch ^ swizzle(tok & 7)),
                      src + static_cast<int64_t>(r) * layer.row_bytes, t0 + tok < end ? 16 : 0);
  }
}

// The A-fragment words of one staged token for the 4 RoPE pair slots 4c .. 4c+3 (slot i is the
// head dims (perm[2i], perm[2i+1]), low half first), rotated by the angles base[i] * step[i].
template <int D, int MODE>
__device__ __forceinline__ void key_pairs(const uint8_t* row, int sw, int c, int rp,
                                          const float2* base, const float2* step,
                                          uint32_t (&r)[4]) {
  float a[4], b[4];  // the 4 pairs (a_m, b_m) before rotation
  if (MODE == kDenseRopeNeox && 4 * c < rp) {
    // Pair i = dims (i, i + rp): dims [4c, 4c + 4) and [4c + rp, 4c + rp + 4), 8 bytes each.
    const uint2 x = *reinterpret_cast<const uint2*>(row + chunk_byte(8 * c, sw));
    const uint2 y = *reinterpret_cast<const uint2*>(row + chunk_byte(8 * c + 2 * rp, sw));
    const float2 x0 = unpack_half2(x.x), x1 = unpack_half2(x.y);
    const float2 y0 = unpack_half2(y.x), y1 = unpack_half2(y.y);
    a[0] = x0.x, a[1] = x0.y, a[2] = x1.x, a[3] = x1.y;
    b[0] = y0.x, b[1] = y0.y, b[2] = y1.x, b[3] = y1.y;
  } else {
    // Pair i = dims (2i, 2i + 1): dims [8c, 8c + 8), one 16-byte chunk.
    const uint4 v = *reinterpret_cast<const uint4*>(row + 16 * (c ^ sw));
    if (MODE == kDenseRopeNone || 4 * c >= rp) {  // past the rotary dims: the words as they are
      r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
      return;
    }
    const float2 p0 = unpack_half2(v.x), p1 = unpack_half2(v.y);
    const float2 p2 = unpack_half2(v.z), p3 = unpack_half2(v.w);
    a[0] = p0.x, b[0] = p0.y, a[1] = p1.x, b[1] = p1.y;
    a[2] = p2.x, b[2] = p2.y, a[3] = p3.x, b[3] = p3.y;
  }
  // Slots past rope_pairs (a gptj rotary dim that is not a multiple of 8) have (1, 0) in both
  // tables: an exact identity.
  const float4 b01 = *reinterpret_cast<const float4*>(base + 4 * c);
  const float4 b23 = *reinterpret_cast<const float4*>(base + 4 * c + 2);
  const float4 s01 = *reinterpret_cast<const float4*>(step + 4 * c);
  const float4 s23 = *reinterpret_cast<const float4*>(step + 4 * c + 2);
  const float2 rot[4] = {rotate(make_float2(b01.x, b01.y), make_float2(s01.x, s01.y)),
                         rotate(make_float2(b01.z, b01.w), make_float2(s01.z, s01.w)),
                         rotate(make_float2(b23.x, b23.y), make_float2(s23.x, s23.y)),
                         rotate(make_float2(b23.z, b23.w), make_float2(s23.z, s23.w))};
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    r[m] = pack_half2(a[m] * rot[m].x - b[m] * rot[m].y, b[m] * rot[m].x + a[m] * rot[m].y);
  }
}

template <int D, int MODE, int NST>
__global__ void __launch_bounds__(kThreads, D == 128 ? 3 : 4)
    dense_layer_attention_kernel(DenseLayerView layer, ModelView model, AttendBatch batch,
                                 const void* __restrict__ q, int q_dtype) {
  using L = DenseSmem<D, NST>;
  constexpr int P = D / 2;        // pair slots per head
  constexpr int KSTEPS = D / 16;  // k steps of the score MMA (8 pair slots each)
  constexpr int CHUNKS = D / 32;  // 4-slot chunks per thread and token (2 k steps each)
  constexpr int DTILES = D / 16;  // m tiles of the value MMA (head dims)
  static_assert(P <= 64, "a lane advances the base angles of at most 2 pairs");
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;

  const WorkItem item = batch.items[blockIdx.x];
  const int g = blockIdx.y;
  const int qpk = model.q_per_kv;
  const int rp = MODE == kDenseRopeNone ? 0 : model.rope_pairs;
  float2* step = reinterpret_cast<float2*>(smem + L::kStep);
  float2* base = reinterpret_cast<float2*>(smem + L::kBase) + warp * P;
  uint8_t* ring = smem + L::kStage + static_cast<size_t>(warp) * NST * L::kBufBytes;

  // Start fetching the first tiles; the tables and the query are set up meanwhile.
  const int n_tiles = (item.end - item.start + kTileTokens - 1) / kTileTokens;
  const int my_tiles = n_tiles > warp ? (n_tiles - warp + kWarps - 1) / kWarps : 0;
  const int32_t* pages = batch.pages + batch.page_offsets[item.query];
  const int pt = model.page_tokens;
  const int koff = layer.key_offset + 2 * g * D, voff = layer.value_offset + 2 * g * D;
  auto tile_start = [&](int k) { return item.start + kTileTokens * (warp + kWarps * k); };
#pragma unroll
  for (int s = 0; s < NST - 1; ++s) {
    if (s < my_tiles) {
      stage_tile<D>(layer, pages, pt, tile_start(s), item.end, koff, voff, ring + s * L::kBufBytes,
                    lane);
    }
    cp_async_commit();
  }

  // Offset table rows j = 0..15 (cos, sin of j * inv_freq[i], from the host's double table) and the
  // base tables; (1, 0) past the rotary pairs, so that those slots rotate by exactly nothing.
  for (int i = tid; i < kTileTokens * L::kStepStride; i += kThreads) {
    const int j = i / L::kStepStride, p = i - j * L::kStepStride;
    step[i] = p < rp ? model.rope_step[j * rp + p] : make_float2(1.0f, 0.0f);
  }
  for (int i = lane; i < P; i += 32) base[i] = make_float2(1.0f, 0.0f);

  // B fragments of the query: column n = local head grp (zero past q_per_kv); k step kk holds the
  // pair slots 16*(kk/2) + 4*tq + 2*(kk%2) + {0, 1} of this lane, i.e. chunk c = tq + 4*(kk/2).
  uint32_t qf[KSTEPS][2];
  {
    const bool live = grp < qpk;
    const int64_t qe = (static_cast<int64_t>(item.query) * model.n_heads + g * qpk + grp) * D;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const int slot = 16 * (kk >> 1) + 4 * tq + 2 * (kk & 1) + hi;
        float x = 0.0f, y = 0.0f;
        if (live) {
          x = load_elem(q, q_dtype, qe + model.perm[2 * slot]);
          y = load_elem(q, q_dtype, qe + model.perm[2 * slot + 1]);
        }
        qf[kk][hi] = pack_half2(x, y);
      }
    }
  }

  // Base angles of this lane's pairs (lane, lane + 32) and their advance from one of the warp's
  // tiles to its next (kWarps * 16 tokens).
  float2 cur[2], adv[2];
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int i = lane + 32 * k;
    cur[k] = make_float2(1.0f, 0.0f);
    adv[k] =
        i < rp ? exact_rotation(kWarps * kTileTokens, model.inv_freq[i]) : make_float2(1.0f, 0.0f);
  }

  const float scale_log2 = model.scale * kLog2e;

  float o[DTILES][4];  // O^T[16 dt + grp (+8)][heads 2tq, 2tq + 1]
#pragma unroll
  for (int dt = 0; dt < DTILES; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float run_max[2] = {-INFINITY, -INFINITY};  // heads 2tq, 2tq + 1, log2 units
  float run_sum[2] = {0.0f, 0.0f};            // this lane's tokens only, summed at the end
  // This lane's ldmatrix row of the value tiles: token (lane % 8) + 8 * (lane / 16), dims
  // 8 * ((lane / 8) % 2) of each 16-dim tile.
  const int v_tok = (lane & 7) + ((lane >> 4) << 3);
  const int v_sw = swizzle(v_tok & 7);
  const int v_chunk = D / 8 + ((lane >> 3) & 1);
  const int k_sw = swizzle(grp);  // tokens grp and grp + 8 share it
  __syncthreads();                // the offset table

  for (int it = 0; it < my_tiles; ++it) {
    cp_async_wait_group<NST - 2>();
    __syncwarp();  // tile it is visible to the warp; tile it - 1's buffer and base are free
    {
      const int next = it + NST - 1;
      if (next < my_tiles) {
        stage_tile<D>(layer, pages, pt, tile_start(next), item.end, koff, voff,
                      ring + (next % NST) * L::kBufBytes, lane);
      }
      cp_async_commit();  // possibly empty: keeps the group count uniform
    }
    const int t0 = tile_start(it);
    const uint8_t* buf = ring + (it % NST) * L::kBufBytes;
    if (rp > 0) {
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const int i = lane + 32 * k;
        if (i < rp) {
          cur[k] =
              it % kReanchor == 0 ? exact_rotation(t0, model.inv_freq[i]) : rotate(cur[k], adv[k]);
          base[i] = cur[k];
        }
      }
      __syncwarp();
    }

    // 1. Scores of tokens t0 + grp (rows c0, c1) and t0 + grp + 8 (c2, c3), heads 2tq, 2tq + 1.
    float sc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    {
      const uint8_t* row0 = buf + grp * L::kRowBytes;
      const uint8_t* row1 = row0 + 8 * L::kRowBytes;
      const float2* step0 = step + grp * L::kStepStride;
      const float2* step1 = step0 + 8 * L::kStepStride;
#pragma unroll
      for (int jj = 0; jj < CHUNKS; ++jj) {
        const int c = tq + 4 * jj;
        uint32_t r0[4], r1[4];
        key_pairs<D, MODE>(row0, k_sw, c, rp, base, step0, r0);
        key_pairs<D, MODE>(row1, k_sw, c, rp, base, step1, r1);
        const uint32_t a0[4] = {r0[0], r1[0], r0[1], r1[1]};
        mma_16816(sc, a0, qf[2 * jj][0], qf[2 * jj][1]);
        const uint32_t a1[4] = {r0[2], r1[2], r0[3], r1[3]};
        mma_16816(sc, a1, qf[2 * jj + 1][0], qf[2 * jj + 1][1]);
      }
    }

    // 2. Online softmax (a tile always holds at least one valid token, so the new max is finite).
    const bool valid0 = t0 + grp < item.end, valid8 = t0 + grp + 8 < item.end;
    const float x0 = valid0 ? sc[0] * scale_log2 : -INFINITY;
    const float x1 = valid0 ? sc[1] * scale_log2 : -INFINITY;
    const float x2 = valid8 ? sc[2] * scale_log2 : -INFINITY;
    const float x3 = valid8 ? sc[3] * scale_log2 : -INFINITY;
    float mt0 = fmaxf(x0, x2), mt1 = fmaxf(x1, x3);
#pragma unroll
    for (int off = 4; off < 32; off <<= 1) {
      mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, off));
      mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, off));
    }
    const float m0 = fmaxf(run_max[0], mt0), m1 = fmaxf(run_max[1], mt1);
    const float alpha0 = exp2f(run_max[0] - m0), alpha1 = exp2f(run_max[1] - m1);
    run_max[0] = m0;
    run_max[1] = m1;
    // The probabilities as the value MMA sees them (fp16); the sums use the same rounded values.
    const uint32_t p_lo = pack_half2(exp2f(x0 - m0), exp2f(x1 - m1));  // token grp
    const uint32_t p_hi = pack_half2(exp2f(x2 - m0), exp2f(x3 - m1));  // token grp + 8
    const float2 f_lo = unpack_half2(p_lo), f_hi = unpack_half2(p_hi);
    run_sum[0] = run_sum[0] * alpha0 + f_lo.x + f_hi.x;
    run_sum[1] = run_sum[1] * alpha1 + f_lo.y + f_hi.y;

    // 3. O^T = alpha O^T + V^T P: P^T [8 heads][16 tokens] is the transpose of the score tile, so
    // movmatrix turns this lane's rows of P into its B fragments (tokens 2tq, 2tq + 1 (+8), head
    // grp).
    const uint32_t pb0 = movmatrix_trans(p_lo), pb1 = movmatrix_trans(p_hi);
    const uint8_t* vrow = buf + v_tok * L::kRowBytes;
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt) {
      o[dt][0] *= alpha0;
      o[dt][1] *= alpha1;
      o[dt][2] *= alpha0;
      o[dt][3] *= alpha1;
      uint32_t va[4];
      ldmatrix_x4_trans(va, vrow + 16 * ((v_chunk + 2 * dt) ^ v_sw));
      mma_16816(o[dt], va, pb0, pb1);
    }
  }
  cp_async_wait_group<0>();

  // Merge the 4 warps (each relative to its own max; a warp without tiles has max -inf, weight 0).
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) {
    run_sum[0] += __shfl_xor_sync(0xffffffffu, run_sum[0], off);
    run_sum[1] += __shfl_xor_sync(0xffffffffu, run_sum[1], off);
  }
  __syncthreads();  // every warp is done with its ring
  float* merge = reinterpret_cast<float*>(smem + L::kStage);
  {
    float* mine = merge + warp * L::kMergeFloats;
    const int h0 = 2 * tq, h1 = 2 * tq + 1;
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt) {
      const int d = 16 * dt + grp;
      mine[h0 * D + d] = o[dt][0];
      mine[h1 * D + d] = o[dt][1];
      mine[h0 * D + d + 8] = o[dt][2];
      mine[h1 * D + d + 8] = o[dt][3];
    }
    if (grp == 0) {
      mine[kHeadCols * D + h0] = run_max[0];
      mine[kHeadCols * D + h1] = run_max[1];
      mine[kHeadCols * D + kHeadCols + h0] = run_sum[0];
      mine[kHeadCols * D + kHeadCols + h1] = run_sum[1];
    }
  }
  __syncthreads();
  for (int idx = tid; idx < qpk * D; idx += kThreads) {
    const int h = idx / D, d = idx - h * D;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, merge[w * L::kMergeFloats + kHeadCols * D + h]);
    float acc = 0.0f, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float* part = merge + w * L::kMergeFloats;
      const float e = exp2f(part[kHeadCols * D + h] - m);
      acc += e * part[h * D + d];
      sum += e * part[kHeadCols * D + kHeadCols + h];
    }
    const int64_t slot = static_cast<int64_t>(blockIdx.x) * model.n_heads + g * qpk + h;
    batch.dense_acc[slot * D + d] = acc;
    if (d == 0) {
      batch.stats[slot * 2] = m;
      batch.stats[slot * 2 + 1] = sum;
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kCombineThreads)
    dense_combine_kernel(ModelView model, AttendBatch batch, void* __restrict__ out,
                         int out_dtype) {
  constexpr int kLanesPerHead = D / 4;
  constexpr int kHeadsPerBlock = kCombineThreads / kLanesPerHead;
  const int query = blockIdx.x;
  const int h = blockIdx.y * kHeadsPerBlock + static_cast<int>(threadIdx.x) / kLanesPerHead;
  const int d = 4 * (static_cast<int>(threadIdx.x) % kLanesPerHead);
  const int H = model.n_heads;
  if (h >= H) return;
  const int2 range = batch.query_items[query];
  float m = -INFINITY;
  for (int s = 0; s < range.y; ++s) {
    m = fmaxf(m, batch.stats[(static_cast<int64_t>(range.x + s) * H + h) * 2]);
  }
  float total = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s = 0; s < range.y; ++s) {
    const int64_t slot = static_cast<int64_t>(range.x + s) * H + h;
    const float w = exp2f(batch.stats[slot * 2] - m);
    total += w * batch.stats[slot * 2 + 1];
    const float4 p = *reinterpret_cast<const float4*>(batch.dense_acc + slot * D + d);
    acc.x += w * p.x;
    acc.y += w * p.y;
    acc.z += w * p.z;
    acc.w += w * p.w;
  }
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
  const int64_t e = (static_cast<int64_t>(query) * H + h) * D + d;
  store_elem(out, out_dtype, e, acc.x * inv);
  store_elem(out, out_dtype, e + 1, acc.y * inv);
  store_elem(out, out_dtype, e + 2, acc.z * inv);
  store_elem(out, out_dtype, e + 3, acc.w * inv);
}

template <int D, int MODE>
cudaError_t launch_dense(const DenseLayerView& layer, const ModelView& model,
                         const AttendBatch& batch, const void* q, int q_dtype, void* out,
                         int out_dtype, cudaStream_t stream) {
  constexpr int NST = stages<D>();
  if (batch.n_items > 0) {
    const dim3 grid(static_cast<unsigned>(batch.n_items), static_cast<unsigned>(model.n_kv_heads));
    dense_layer_attention_kernel<D, MODE, NST>
        <<<grid, kThreads, DenseSmem<D, NST>::kTotal, stream>>>(layer, model, batch, q, q_dtype);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  if (batch.n_queries > 0) {
    constexpr int kHeadsPerBlock = kCombineThreads / (D / 4);
    const dim3 grid(static_cast<unsigned>(batch.n_queries),
                    static_cast<unsigned>((model.n_heads + kHeadsPerBlock - 1) / kHeadsPerBlock));
    dense_combine_kernel<D><<<grid, kCombineThreads, 0, stream>>>(model, batch, out, out_dtype);
  }
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_dense_d(const DenseLayerView& layer, const ModelView& model,
                           const AttendBatch& batch, const void* q, int q_dtype, void* out,
                           int out_dtype, cudaStream_t stream) {
  switch (layer.rope_mode) {
    case kDenseRopeNone:
      return launch_dense<D, kDenseRopeNone>(layer, model, batch, q, q_dtype, out, out_dtype,
                                             stream);
    case kDenseRopeGptj:
      return launch_dense<D, kDenseRopeGptj>(layer, model, batch, q, q_dtype, out, out_dtype,
                                             stream);
    case kDenseRopeNeox:
      return launch_dense<D, kDenseRopeNeox>(layer, model, batch, q, q_dtype, out, out_dtype,
                                             stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <int D>
cudaError_t configure_dense_d(int bytes) {
  constexpr int NST = stages<D>();
  const cudaFuncAttribute a = cudaFuncAttributeMaxDynamicSharedMemorySize;
  // The kernel's reads bypass L1 (cp.async.cg): all of the unified memory may go to shared memory.
  const cudaFuncAttribute c = cudaFuncAttributePreferredSharedMemoryCarveout;
  const int most = cudaSharedmemCarveoutMaxShared;
  cudaError_t e =
      cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeNone, NST>, a, bytes);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeGptj, NST>, a, bytes);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeNeox, NST>, a, bytes);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeNone, NST>, c, most);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeGptj, NST>, c, most);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(dense_layer_attention_kernel<D, kDenseRopeNeox, NST>, c, most);
  return e;
}

}  // namespace

bool dense_layer_attention_supported(const ModelView& model, int rope_mode) {
  const int D = model.head_dim;
  if (D != 32 && D != 64 && D != 128) return false;
  if (model.q_per_kv < 1 || model.q_per_kv > kHeadCols) return false;
  if (model.rope_pairs < 0 || model.rope_pairs > D / 2) return false;
  switch (rope_mode) {
    case kDenseRopeNone:
      return model.rope_pairs == 0;
    case kDenseRopeGptj:
      return true;
    case kDenseRopeNeox:
      // A chunk of 4 pair slots must lie wholly inside or outside the rotary dims.
      return model.rope_pairs % 4 == 0;
    default:
      return false;
  }
}

size_t dense_layer_attention_smem_bytes(int head_dim) {
  switch (head_dim) {
    case 32:
      return DenseSmem<32, stages<32>()>::kTotal;
    case 64:
      return DenseSmem<64, stages<64>()>::kTotal;
    case 128:
      return DenseSmem<128, stages<128>()>::kTotal;
    default:
      return 0;
  }
}

cudaError_t configure_dense_layer_attention(int bytes) {
  cudaError_t e = configure_dense_d<32>(bytes);
  if (e == cudaSuccess) e = configure_dense_d<64>(bytes);
  if (e == cudaSuccess) e = configure_dense_d<128>(bytes);
  return e;
}

cudaError_t launch_dense_layer_attention(const DenseLayerView& layer, const ModelView& model,
                                         const AttendBatch& batch, const void* q, int q_dtype,
                                         void* out, int out_dtype, cudaStream_t stream) {
  switch (model.head_dim) {
    case 32:
      return launch_dense_d<32>(layer, model, batch, q, q_dtype, out, out_dtype, stream);
    case 64:
      return launch_dense_d<64>(layer, model, batch, q, q_dtype, out, out_dtype, stream);
    case 128:
      return launch_dense_d<128>(layer, model, batch, q, q_dtype, out, out_dtype, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace kernels
}  // namespace starkv
