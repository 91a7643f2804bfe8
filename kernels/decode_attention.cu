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
// head to the plan's workspace; decode_values_kernel then reads each 128-channel block of value
// latents once and accumulates P * values for all query heads; combine_split_values_kernel
// finishes as below. The score pass is fold_scores_kernel (fold the query into the key
// up-projection, see its comment) whenever its shared memory fits (the backend's `use_fold`), else
// the kernel above with kFused = false, stopping after step 3 (STARKV_NO_FOLD=1 forces that).
// combine_splits_kernel   grid (query head, block of 4 queries), 128 threads. Merges the splits
//   of each query (log-sum-exp weights), divides by the softmax sum and multiplies the head's
//   value latent by its slice of the value up-projection (f32), writing out[q][h][0..D).
#include <cstdint>
#include <type_traits>

#include "kernels/dtype_io.cuh"
#include "kernels/kernel_api.h"
#include "kernels/latent_codec.cuh"
#include "kernels/mma.cuh"
#include "kernels/rope_angle.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int T = kAttnTileTokens;
constexpr int kVch = kAttnValueChannels;
constexpr int kHeads = kAttnHeadsPerCta;
constexpr int kScoreHeads = kScoreHeadsPerCta;
constexpr int kTileStride = T + 8;  // halves per LvT / P row: 20 words, conflict-free fragments
constexpr int kMaxValueTiles = kVch / 16 / kWarps;
constexpr int kMaxSplit = 4;  // key-reconstruction jobs split a head's columns this many ways
constexpr int kCombineThreads = 128;
constexpr int kCombineQueries = 4;
static_assert(T == 32, "the softmax maps one token to one lane");
static_assert(kWarps == kHeads, "the fused softmax maps one query head to one warp");

struct SmemLayout {
  size_t qs, rope, rope_base, scores, alpha, probs, raw, lk, lvt, total;
};

__host__ __device__ inline size_t align16(size_t x) { return (x + 15) & ~size_t{15}; }

__host__ __device__ inline int raw_stride(const LayerView& l) {
  return l.raw_key_bytes + l.raw_value_bytes + l.raw_scale_bytes;
}

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
  s.raw = o;
  o = align16(o + static_cast<size_t>(T) * raw_bytes_per_token);
  s.lk = o;
  o = align16(o + sizeof(__half) * T * key_stride);
  s.lvt = o;
  o = align16(o + sizeof(__half) * value_rows * kTileStride);
  s.total = o;
  return s;
}

// Merges the online-softmax statistics (running max, sum of exponentials) that the splits of one
// query wrote for head h: *m is the overall max, *inv_total the reciprocal of the overall sum, so
// split s's partial output weighs __expf(max_s - *m) * *inv_total.
__device__ __forceinline__ void merge_split_stats(const AttendBatch& batch, const ModelView& model,
                                                  int2 range, int h, float* m, float* inv_total) {
  float max = -INFINITY;
  for (int s = 0; s < range.y; ++s)
    max = fmaxf(max, batch.stats[((range.x + s) * model.n_heads + h) * 2]);
  float total = 0.0f;
  for (int s = 0; s < range.y; ++s) {
    const float* st = batch.stats + ((range.x + s) * model.n_heads + h) * 2;
    total += __expf(st[0] - max) * st[1];
  }
  *m = max;
  *inv_total = total > 0.0f ? 1.0f / total : 0.0f;
}

__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async_wait_one() {
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

// e^x as one ex2.approx.ftz (x * log2 e): __expf without its denormal-range fix-ups. Results
// below 2^-126 flush to zero (they scale accumulators that are then negligible anyway).
__device__ __forceinline__ float exp_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x * 1.4426950408889634f));
  return y;
}

// Chunk i of a staged row (16 bytes): its byte offset in the layer's row and in the staged row.
// nk key chunks [pb.x, pb.y), then nv value chunks [pb.z, pb.w), then the scale region.
__device__ __forceinline__ void chunk_offsets(const LayerView& layer, int4 pb, int nk, int nv,
                                              int i, int& src, int& dst) {
  if (i < nk) {
    src = pb.x + 16 * i;
    dst = 16 * i;
  } else if (i < nk + nv) {
    src = pb.z + 16 * (i - nk);
    dst = layer.raw_key_bytes + 16 * (i - nk);
  } else {
    src = layer.scale_base + 16 * (i - nk - nv);
    dst = layer.raw_key_bytes + layer.raw_value_bytes + 16 * (i - nk - nv);
  }
}

// 16-byte chunks per staged row.
__device__ __forceinline__ int staged_chunks(const LayerView& layer, int4 pb) {
  const int ns = layer.raw_scale_bytes > 0 ? (layer.row_bytes - layer.scale_base) >> 4 : 0;
  return ((pb.y - pb.x) >> 4) + ((pb.w - pb.z) >> 4) + ns;
}

// Stages the raw bytes of tokens [t0, t0 + n_tok) (n_tok <= 64) that a CTA reads: the chunk's key
// codes [pb.x, pb.y), the value codes [pb.z, pb.w) and the scale region, 16 bytes per cp.async,
// into raw[t][...] (keys at 0, values at raw_key_bytes, scales after both).
//
// Fast path (the usual case: tiles start at multiples of their length from 64-aligned items, so
// with a page size that is a multiple of the tile every tile lies inside one page): one page-table
// lookup per call, then the n_tok x per 16-byte copies are spread flat over all threads (thread i:
// token i / per, chunk i % per; consecutive threads copy consecutive chunks of a row, so the global
// reads stay coalesced). The division is a multiply-shift, exact for per < 528 and i < 64 * per
// (checked exhaustively on the host). This replaced a warp-per-token loop whose address math and
// idle lanes (per is often 16-26) were a third of the value kernel's instructions.
// General path (a tile that crosses a page): lane l finds the rows of tokens l and l + 32 once;
// warp w then copies tokens w, w + 8, ... with lanes over chunks.
__device__ __forceinline__ void stage_rows(const LayerView& layer,
                                           const int32_t* __restrict__ pages, int pt, int t0,
                                           int n_tok, int4 pb, uint8_t* raw) {
  const int nk = (pb.y - pb.x) >> 4, nv = (pb.w - pb.z) >> 4;
  const int per = staged_chunks(layer, pb);
  const int stride = raw_stride(layer);
  auto offsets = [&](int i, int& src, int& dst) { chunk_offsets(layer, pb, nk, nv, i, src, dst); };
  const int first_page = t0 / pt;
  const int in_page = t0 - first_page * pt;
  if (in_page + n_tok <= pt && per < 512) {
    const uint8_t* src_rows =
        layer.rows + (static_cast<int64_t>(pages[first_page]) * pt + in_page) * layer.row_bytes;
    const unsigned inv = ((1u << 24) + per - 1) / per;
    const int total = n_tok * per;
    for (int i = threadIdx.x; i < total; i += kThreads) {
      const int t = static_cast<int>((static_cast<unsigned>(i) * inv) >> 24);
      int src, dst;
      offsets(i - t * per, src, dst);
      cp_async_16(raw + t * stride + dst, src_rows + static_cast<int64_t>(t) * layer.row_bytes + src);
    }
    return;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int row_a = 0, row_b = 0;  // row index of tokens lane, lane + 32 (in the layer's row array)
  if (lane < n_tok) {
    const int t = t0 + lane;
    row_a = pages[t / pt] * pt + t % pt;
  }
  if (lane + 32 < n_tok) {
    const int t = t0 + lane + 32;
    row_b = pages[t / pt] * pt + t % pt;
  }
  int src0 = 0, dst0 = 0;
  if (lane < per) offsets(lane, src0, dst0);
  for (int t = warp; t < n_tok; t += kWarps) {
    const int r = __shfl_sync(0xffffffffu, t < 32 ? row_a : row_b, t & 31);
    const uint8_t* row = layer.rows + static_cast<int64_t>(r) * layer.row_bytes;
    uint8_t* dst_row = raw + t * stride;
    if (lane < per) cp_async_16(dst_row + dst0, row + src0);
    for (int i = lane + 32; i < per; i += 32) {
      int src, dst;
      offsets(i, src, dst);
      cp_async_16(dst_row + dst, row + src);
    }
  }
}

// The page position of a CTA's tiles, advanced tile by tile (no division per tile).
struct PageCursor {
  int page, in_page;  // of the next tile's first token
  __device__ __forceinline__ void advance(int tokens, int pt) {
    in_page += tokens;
    while (in_page >= pt) {
      in_page -= pt;
      ++page;
    }
  }
};

// A fixed thread -> (row chunk, tokens) map for tiles that lie inside one page (the usual case),
// set up once per CTA: chunk c = tid % CP (CP the power of two >= per), tokens tid / CP + k *
// (256 / CP). A thread's chunk is the same in every tile, so a copy costs an address increment
// and a cp.async. (stage_rows' fast path divides and selects the row region per copy; with its
// per-call setup that was 60% of the value kernel's instructions and a fifth of the fold's.)
struct RowCopier {
  int src, dst;        // byte offsets of this thread's first copy: from the tile's first row, in raw
  int t_first, t_step;  // t_step 0: rows of more than 256 chunks, always staged by stage_rows
  bool active;         // c < per
  __device__ __forceinline__ RowCopier(const LayerView& layer, int4 pb) {
    const int per = staged_chunks(layer, pb);
    src = dst = t_first = t_step = 0;
    active = false;
    if (per < 1 || per > kThreads) return;
    const int lg = 32 - __clz(per - 1);  // CP = 1 << lg
    const int c = static_cast<int>(threadIdx.x) & ((1 << lg) - 1);
    t_first = static_cast<int>(threadIdx.x) >> lg;
    t_step = kThreads >> lg;
    active = c < per;
    if (active) {
      chunk_offsets(layer, pb, (pb.y - pb.x) >> 4, (pb.w - pb.z) >> 4, c, src, dst);
      src += t_first * layer.row_bytes;
      dst += t_first * raw_stride(layer);
    }
  }
};

// Stages the n_tok tokens at the cursor like stage_rows (tiles inside one page through the
// copier), then advances the cursor by `advance` tokens (the kernels stage their tiles in order).
__device__ __forceinline__ void stage_at_cursor(const LayerView& layer, const RowCopier& rc,
                                                const int32_t* __restrict__ pages, int pt,
                                                PageCursor& cur, int t0, int n_tok, int advance,
                                                int4 pb, uint8_t* raw) {
  if (cur.in_page + n_tok <= pt && rc.t_step > 0) {
    if (rc.active) {
      const uint8_t* from =
          layer.rows + (static_cast<int64_t>(pages[cur.page]) * pt + cur.in_page) * layer.row_bytes +
          rc.src;
      uint8_t* to = raw + rc.dst;
      const int from_step = rc.t_step * layer.row_bytes, to_step = rc.t_step * raw_stride(layer);
      for (int t = rc.t_first; t < n_tok; t += rc.t_step, from += from_step, to += to_step)
        cp_async_16(to, from);
    }
  } else {
    stage_rows(layer, pages, pt, t0, n_tok, pb, raw);
  }
  cur.advance(advance, pt);
}

// Stages tokens [t0, min(t0 + T, end)) (see stage_rows), then commits the group unless told not to.
__device__ __forceinline__ void stage_tile(const LayerView& layer,
                                           const int32_t* __restrict__ pages, int pt, int t0,
                                           int end, int4 pb, uint8_t* raw, bool commit = true) {
  stage_rows(layer, pages, pt, t0, end - t0 < T ? end - t0 : T, pb, raw);
  if (commit) cp_async_commit();
}

// A block descriptor (read-only for the whole launch: two 16-byte loads through the read-only path;
// device arrays are cudaMalloc'ed and DevBlock is 32 bytes, so each element is 16-byte aligned).
__device__ __forceinline__ DevBlock load_block(const LayerView& layer, int b) {
  const int4* p = reinterpret_cast<const int4*>(layer.blocks + b);
  const int4 u = __ldg(p), v = __ldg(p + 1);
  return DevBlock{u.x, u.y, u.z, u.w, v.x, v.y, v.z, v.w};
}

__device__ __forceinline__ uint16_t ld_u16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}

// The bit stream of a staged row r (16-byte aligned) from bit p on: lo = bits [p, p + 32) and, for
// sb > 4, hi = bits [p + 32, p + 64) (else 0). Only the aligned 32-bit words that hold bits
// [p, p + 8 * sb) are read (one or two, three for sb = 8): they start at most 3 bytes before the
// window's first byte and end at most 3 bytes after its last, i.e. inside the 16-byte staged unit
// of either end (staged ranges are 16-byte aligned) -- the same units that a byte-by-byte read of
// the window touches.
__device__ __forceinline__ void load_code_window(const uint8_t* r, int p, int sb, uint32_t& lo,
                                                 uint32_t& hi) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(r) + (p >> 5);
  const int sh = p & 31, end = sh + 8 * sb;
  const uint32_t w0 = w[0];
  const uint32_t w1 = end > 32 ? w[1] : 0u;
  lo = __funnelshift_r(w0, w1, sh);
  hi = 0u;
  if (sb > 4) {
    const uint32_t w2 = end > 64 ? w[2] : 0u;
    hi = __funnelshift_r(w1, w2, sh);
  }
}

// Ones in the halves 2i, 2i + 1 of a group of 8 that are below n (n in [0, 8]).
__device__ __forceinline__ uint32_t halves_below(int n, int i) {
  const int s = 16 * n - 32 * i;
  return __funnelshift_lc(0xffffffffu, 0u, s > 0 ? s : 0);  // low min(s, 32) bits
}

// Eight fp16 values as a uint4 from floats (the 16/32-bit blocks: the float path as before).
__device__ __forceinline__ uint4 pack8_rn(const float (&v)[8]) {
  uint4 o;
  o.x = __half_as_ushort(__float2half_rn(v[0])) |
        (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[1]))) << 16);
  o.y = __half_as_ushort(__float2half_rn(v[2])) |
        (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[3]))) << 16);
  o.z = __half_as_ushort(__float2half_rn(v[4])) |
        (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[5]))) << 16);
  o.w = __half_as_ushort(__float2half_rn(v[6])) |
        (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[7]))) << 16);
  return o;
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
      float v = 0.0f;
      for (int s = 0; s < range.y; ++s) {
        const float w = __expf(batch.stats[((range.x + s) * model.n_heads + h) * 2] - m);
        v += w * batch.acc[(range.x + s) * item_stride + off];
      }
      lat[qi * rank + c] = v * inv_total;
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

// Split mode, stage 2: decode_values_kernel<NHT>   grid work item x 128-channel block of the value
//   latents (1-D, the block fastest), 256 threads; NHT = n8 tiles of query heads (all heads of the
//   model). Per 32-token tile: cp.async staging (a ring of kValueStages tiles) of the block's value codes + scales and of the tile's
//   probabilities [H][32] and running max written by the score kernel; fp16 latents at 16-byte
//   aligned row offsets (layer.values_fp16) are consumed straight from the staged rows, anything
//   else is first decoded to a token-major fp16 tile Z[32][136] (a lane = a token, 8 channels per
//   step, 16-byte stores); then acc^T[c][h] = alpha_h acc^T[c][h] + sum_t Z[t][c] P[h][t] on tensor
//   cores, A fragments by ldmatrix.trans (warp w: channels 16w..16w+15, all heads).
//   Writes vacc[item][h][c] (unnormalized, relative to the final running max).

// A group of 8 latent channels [c_first, c_first + 8), clipped at c_end, resolved once per CTA
// instead of once per tile (decode_value_group finds its blocks through two dependent global loads
// per call, and a group that crosses a block boundary loops): at most two segments, each inside one
// quantized block. seg.x: bit position of the segment's first code in a staged row; seg.y: k0 |
// k1 << 8 | storage_bits << 16 | bits << 24 (the group's halves [k0, k1) come from this block);
// seg.z: staged byte offset of the block's scale; seg.w: 1 when used. a.w == -1: the group touches
// a 16/32-bit block or three blocks, and decode_value_group handles it as before.
struct GroupPlan {
  int4 a, b;
};

constexpr int kZStride = kValueBlockChannels + 8;  // halves per Z row (272 bytes: conflict-free)

constexpr int kValueStages = 4;  // cp.async ring depth of the value kernel (tiles in flight)

__host__ __device__ inline size_t values_stage_bytes(const LayerView& l, int heads_padded) {
  return align16(static_cast<size_t>(T) * raw_stride(l)) +
         align16(sizeof(__half) * heads_padded * kTileStride) +
         align16(sizeof(float) * heads_padded);
}

__host__ __device__ inline size_t values_smem(const LayerView& l, int heads_padded) {
  return kValueStages * values_stage_bytes(l, heads_padded) +
         (l.values_fp16 ? 0
                        : align16(sizeof(__half) * T * kZStride) +
                              sizeof(GroupPlan) * (kValueBlockChannels / 8));
}

// Decodes layer channels [c_first, c_first + 8) of one token from its staged row r (row byte b at
// b + shift, scales at their offset + scale_shift) into 8 halves; channels at or past c_end and
// invalid tokens give +0. The channels are taken block by block (a warp-uniform loop; usually one
// block holds all 8): a quantized block's 8-code window from the group's first channel in it,
// dequantized in half2 (dequant8) and merged into the halves it covers; 16/32-bit blocks channel
// by channel through float, as before. A window starts at a staged code (the first of the group
// in its block) and spans sb <= 8 bytes (+1 when it starts inside a byte), so its words lie in the
// 16-byte unit of that code or the next one; in every staged row a staged code range is followed
// by at least one more unit (value slack, padding or the scale region of the same row).
__device__ __forceinline__ uint4 decode_value_group(const LayerView& layer, const uint8_t* r,
                                                    int shift, int scale_shift, int c_first,
                                                    int c_end, bool valid) {
  uint4 out = make_uint4(0u, 0u, 0u, 0u);
  if (!valid) return out;
  const int n = c_end - c_first < 8 ? c_end - c_first : 8;  // channels to decode (>= 1)
  int k0 = 0;  // first half not yet decoded
  DevBlock b = load_block(layer, __ldg(layer.channel_block + c_first));
  while (true) {
    const int bend = b.first_channel + b.n_channels - c_first;  // halves [k0, k1) in block b
    const int k1 = n < bend ? n : bend;
    const int j = c_first + k0 - b.first_channel;  // block index of channel c_first + k0
    if (b.bits < 16) {
      const int sb = b.storage_bits;
      uint32_t lo, hi;
      load_code_window(r, 8 * (b.byte_offset + shift) + j * sb, sb, lo, hi);
      if (k0 > 0) {  // code 0 of the window belongs in half k0 (k0 * sb <= 56)
        const uint64_t w = ((static_cast<uint64_t>(hi) << 32) | lo) << (k0 * sb);
        lo = static_cast<uint32_t>(w);
        hi = static_cast<uint32_t>(w >> 32);
      }
      const uint4 z = dequant8(lo, hi, sb, b.bits, ld_u16(r + b.scale_offset + scale_shift));
      if (k0 == 0 && k1 == 8) return z;  // the common case: one block, all 8 channels
      const uint32_t m0 = halves_below(k1, 0) & ~halves_below(k0, 0);
      const uint32_t m1 = halves_below(k1, 1) & ~halves_below(k0, 1);
      const uint32_t m2 = halves_below(k1, 2) & ~halves_below(k0, 2);
      const uint32_t m3 = halves_below(k1, 3) & ~halves_below(k0, 3);
      out.x |= z.x & m0;
      out.y |= z.y & m1;
      out.z |= z.z & m2;
      out.w |= z.w & m3;
    } else {
      float v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int e = j + (k - k0);  // element index in the block
        v[k] = 0.0f;
        if (k >= k0 && k < k1) {
          const uint8_t* p = r + b.byte_offset + shift;
          v[k] = b.bits == 16 ? __half2float(*reinterpret_cast<const __half*>(p + 2 * e))
                              : *reinterpret_cast<const float*>(p + 4 * e);
        }
      }
      const uint4 z = pack8_rn(v);  // +0 outside [k0, k1)
      out.x |= z.x;
      out.y |= z.y;
      out.z |= z.z;
      out.w |= z.w;
    }
    if (k1 >= n) return out;
    k0 = k1;
    b = load_block(layer, __ldg(layer.channel_block + c_first + k0));
  }
}

__device__ GroupPlan plan_group(const LayerView& layer, int shift, int scale_shift, int c_first,
                                int c_end) {
  GroupPlan g{make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
  const int n = c_end - c_first < 8 ? c_end - c_first : 8;
  int k0 = 0;
  for (int seg = 0;; ++seg) {
    const DevBlock b = load_block(layer, __ldg(layer.channel_block + c_first + k0));
    const int bend = b.first_channel + b.n_channels - c_first;
    const int k1 = n < bend ? n : bend;
    if (b.bits >= 16 || seg == 2) {
      g.a.w = -1;
      return g;
    }
    const int4 v = make_int4(8 * (b.byte_offset + shift) + (c_first + k0 - b.first_channel) * b.storage_bits,
                             k0 | k1 << 8 | b.storage_bits << 16 | b.bits << 24,
                             b.scale_offset + scale_shift, 1);
    (seg == 0 ? g.a : g.b) = v;
    if (k1 >= n) return g;
    k0 = k1;
  }
}

// One segment of a planned group: its halves [k0, k1) of the group, decoded from staged row r.
__device__ __forceinline__ void decode_segment(const int4 v, const uint8_t* r, uint4& out) {
  const int k0 = v.y & 255, k1 = (v.y >> 8) & 255, sb = (v.y >> 16) & 255, bits = v.y >> 24;
  uint32_t lo, hi;
  load_code_window(r, v.x, sb, lo, hi);
  if (k0 > 0) {  // code 0 of the window belongs in half k0 (k0 * sb <= 56)
    const uint64_t w = ((static_cast<uint64_t>(hi) << 32) | lo) << (k0 * sb);
    lo = static_cast<uint32_t>(w);
    hi = static_cast<uint32_t>(w >> 32);
  }
  const uint4 z = dequant8(lo, hi, sb, bits, ld_u16(r + v.z));
  if (k0 == 0 && k1 == 8) {
    out = z;
    return;
  }
  out.x |= z.x & halves_below(k1, 0) & ~halves_below(k0, 0);
  out.y |= z.y & halves_below(k1, 1) & ~halves_below(k0, 1);
  out.z |= z.z & halves_below(k1, 2) & ~halves_below(k0, 2);
  out.w |= z.w & halves_below(k1, 3) & ~halves_below(k0, 3);
}

// decode_value_group's result for a planned group (same bits: the same windows and dequant8).
__device__ __forceinline__ uint4 decode_planned_group(const LayerView& layer, const GroupPlan& g,
                                                      const uint8_t* r, int shift, int scale_shift,
                                                      int c_first, int c_end, bool valid) {
  if (g.a.w < 0) return decode_value_group(layer, r, shift, scale_shift, c_first, c_end, valid);
  uint4 out = make_uint4(0u, 0u, 0u, 0u);
  if (!valid) return out;
  decode_segment(g.a, r, out);
  if (g.b.w) decode_segment(g.b, r, out);
  return out;
}

// Up to 32 heads (NHT <= 4) the accumulators are small enough for three CTAs per SM (80
// registers, no spills): small models' layers (e.g. 9 heads) need it for latency hiding, and
// without the bound the 32-head instance drifts to 91 registers and two CTAs per SM.
template <int NHT>
__global__ void __launch_bounds__(kThreads, NHT <= 4 ? 3 : 2)
    decode_values_kernel(LayerView layer, ModelView model, AttendBatch batch) {
  constexpr int S = kValueStages;
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;
  const int HP = NHT * 8, H = model.n_heads;
  // blockIdx.x = work item x value block, the block fastest: an item's blocks run together, so they
  // share its probability tiles in L2 and read adjacent bytes of the same rows.
  const int n_vblocks = (layer.value_width + kValueBlockChannels - 1) / kValueBlockChannels;
  const int item_index = static_cast<int>(blockIdx.x) / n_vblocks;
  const int vblock = static_cast<int>(blockIdx.x) - item_index * n_vblocks;
  const WorkItem item = batch.items[item_index];
  const int c0 = vblock * kValueBlockChannels;
  const int ccount =
      layer.value_width - c0 < kValueBlockChannels ? layer.value_width - c0 : kValueBlockChannels;
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
    uint32_t* z = reinterpret_cast<uint32_t*>(smem);
    const size_t zero_bytes =
        direct ? values_smem(layer, HP) : static_cast<size_t>(reinterpret_cast<uint8_t*>(plans) - smem);
    const int words = static_cast<int>(zero_bytes / 4);
    for (int i = tid; i < words; i += kThreads) z[i] = 0u;
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
        const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(mdst + h));
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(msrc + h));
      }
      stage_at_cursor(layer, copier, pages, pt, cursor, t0, item.end - t0 < T ? item.end - t0 : T, T, pb,
                      base);
    }
    cp_async_commit();
  };
#pragma unroll
  for (int k = 0; k < S - 1; ++k) stage(k);

  float acc[NHT][4];
  float mprev[NHT][2];
#pragma unroll
  for (int n = 0; n < NHT; ++n) {
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    mprev[n][0] = mprev[n][1] = -INFINITY;
  }

  for (int t0 = item.start, k = 0; t0 < item.end; t0 += T, ++k) {
    const int n_valid = item.end - t0 < T ? item.end - t0 : T;
    asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 2) : "memory");
    __syncthreads();
    // Stage (k - 1) % S was last read before this barrier: refill it with tile k + S - 1.
    stage(k + S - 1);
    const uint8_t* base = smem + (k % S) * stage_sz;
    const uint8_t* rbuf = base;
    const __half* pk = reinterpret_cast<const __half*>(base + raw_sz);
    const float* tmax = reinterpret_cast<const float*>(base + raw_sz + prob_sz);
    if (!direct) {
      const uint8_t* r = rbuf + lane * rstride;
      for (int u = warp; u < (ccount + 7) / 8; u += kWarps) {
        const uint4 z8 = decode_planned_group(layer, plans[u], r, shift, scale_shift,
                                              layer.key_width + c0 + 8 * u, c_end, lane < n_valid);
        *reinterpret_cast<uint4*>(zt + lane * kZStride + 8 * u) = z8;
      }
      __syncthreads();
    }
    if (16 * warp < ccount) {
      const int m = lane >> 3;
      const uint8_t* abase =
          direct ? rbuf + ((m >> 1) * 8 + (lane & 7)) * rstride + direct_off + 2 * (16 * warp + (m & 1) * 8)
                 : reinterpret_cast<const uint8_t*>(zt + ((m >> 1) * 8 + (lane & 7)) * kZStride +
                                                    16 * warp + (m & 1) * 8);
      const int astep = direct ? 16 * rstride : 16 * kZStride * 2;
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
          acc[n][0] *= al0;
          acc[n][1] *= al1;
          acc[n][2] *= al0;
          acc[n][3] *= al1;
        }
      }
#pragma unroll
      for (int kstep = 0; kstep < T / 16; ++kstep) {
        uint32_t a[4];
        ldmatrix_x4_trans(a, abase + kstep * astep);
        // B = the probabilities P[head][token] of head tiles n, n + 1 (ldmatrix rows: lanes
        // 0-7 heads 8n.., tokens 0-7 of the k-step; 8-15 tokens 8-15; 16-31 the same for n + 1).
#pragma unroll
        for (int n = 0; n + 1 < NHT; n += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, pk + (8 * n + (lane & 7) + (lane >> 4) * 8) * kTileStride + kstep * 16 +
                             ((lane >> 3) & 1) * 8);
          mma_16816(acc[n], a, b[0], b[1]);
          mma_16816(acc[n + 1], a, b[2], b[3]);
        }
        if (NHT % 2 == 1) {
          const __half* bp = pk + (8 * (NHT - 1) + grp) * kTileStride + kstep * 16 + 2 * tq;
          mma_16816(acc[NHT - 1], a, ld_h2(bp), ld_h2(bp + 8));
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
    const int row = warp * 16 + grp;
#pragma unroll
    for (int n = 0; n < NHT; ++n) {
      float* d0 = dst + static_cast<int64_t>(8 * n + 2 * tq) * VW;
      if (row < ccount) {
        d0[row] = acc[n][0];
        d0[VW + row] = acc[n][1];
      }
      if (row + 8 < ccount) {
        d0[row + 8] = acc[n][2];
        d0[VW + row + 8] = acc[n][3];
      }
    }
  }
}

// Fold-the-query score kernel (split mode): fold_scores_kernel<NT, TT>   grid work item x head chunk
//   of the fused view (up to 8 query heads; 1-D, the chunk fastest), 256 threads. DESIGN §5's "fold the query": with the
//   key dims permuted so that rotary pair i is columns 2i, 2i+1 and Ut the head's up-projection,
//     q . RoPE_t(Ut l) = sum_r l[r] z_t[r],   z_t = CS_t . AB,
//   CS_t[2i] = cos(t theta_i), CS_t[2i+1] = sin(t theta_i) (1 and 0 past the rotary pairs), and
//   AB[2i][r] = q0 u0 + q1 u1, AB[2i+1][r] = q1 u0 - q0 u1 (u0, u1 = Ut[2i][r], Ut[2i+1][r]; q
//   pre-scaled), built once per CTA in shared memory. Per TT-token tile (64; 32 where that fits two
//   CTAs per SM and 64 does not, see fold_layout): cp.async double-buffered
//   staging of the chunk's key codes (+ scales), the tile's CS table (fp16), then warp (m-tile of
//   16 tokens, half of the heads): Z = CS . AB on tensor cores (ldmatrix fragments, CS held in
//   registers across heads), scores = sum of Z times the latents (fp16 latents read straight from
//   the staged rows; quantized ones decoded to an fp16 tile first), quad-reduced; then the online
//   softmax (warp = head) writes fp16 probabilities and the running max per 32-token tile, exactly
//   the split-mode interface that decode_values_kernel consumes.
constexpr int kFoldTokens = 64;      // the usual tile
constexpr int kFoldTokensSmall = 32;  // the tile of layers whose 64-token layout allows 1 CTA/SM

struct FoldSmem {
  size_t ab, cs, sc, raw, lk, plans, heads, total;
  int tokens;   // tokens per tile: kFoldTokens or kFoldTokensSmall
  int buffers;  // staged key-row buffers: 2 (the next tile loads during this one) or 1
};

// The sm_90 opt-in shared memory per block, and the most a block may use for two to fit on one SM
// (228 KB per SM, 1 KB of it reserved per block).
constexpr size_t kFoldSmemLimit = 232448;
constexpr size_t kFoldSmemTwoPerSm = 233472 / 2 - 1024;

__host__ __device__ inline FoldSmem fold_layout_with(int head_dim, int max_rkp, int rstride, int ks,
                                                     bool decode, int tokens, int buffers) {
  FoldSmem f{};
  f.tokens = tokens;
  f.buffers = buffers;
  size_t o = 0;
  f.ab = o;
  o = align16(o + sizeof(__half) * kHeads * static_cast<size_t>(max_rkp) * (head_dim + 8));
  f.cs = o;
  o = align16(o + sizeof(__half) * tokens * (head_dim + 8));
  f.sc = o;
  o = align16(o + sizeof(float) * kHeads * tokens);
  f.raw = o;
  o = align16(o + static_cast<size_t>(buffers) * tokens * static_cast<size_t>(rstride) +
              64);  // + read slack
  f.lk = o;
  o = align16(o + (decode ? sizeof(__half) * tokens * static_cast<size_t>(ks) : 0));
  f.plans = o;  // quantized keys: GroupPlan per (KV head of the chunk, 8-channel group)
  o = align16(o + (decode ? sizeof(GroupPlan) * kHeads * static_cast<size_t>(max_rkp / 8) : 0));
  f.heads = o;  // FoldHead per query head of the chunk
  o = align16(o + sizeof(int4) * kHeads);
  f.total = o;
  return f;
}

// The layout a layer runs with (host and device agree on it). Latency hiding needs two CTAs per
// SM more than it needs the 64-token tile's fragment reuse (Llama-2-7B-like at 75%: 144 KB at 64
// tokens -> one CTA per SM, 106 KB at 32): the first of these that fits two CTAs per SM, else the
// first that fits at all: 64 tokens double-buffered, 32 double-buffered, 64 single, 32 single.
__host__ __device__ inline FoldSmem fold_layout(int head_dim, int max_rkp, int rstride, int ks,
                                                bool decode) {
  const int tokens[4] = {kFoldTokens, kFoldTokensSmall, kFoldTokens, kFoldTokensSmall};
  const int buffers[4] = {2, 2, 1, 1};
  for (int i = 0; i < 4; ++i) {
    const FoldSmem f = fold_layout_with(head_dim, max_rkp, rstride, ks, decode, tokens[i], buffers[i]);
    if (f.total <= kFoldSmemTwoPerSm) return f;
  }
  for (int i = 0; i < 4; ++i) {
    const FoldSmem f = fold_layout_with(head_dim, max_rkp, rstride, ks, decode, tokens[i], buffers[i]);
    if (f.total <= kFoldSmemLimit || i == 3) return f;
  }
  return FoldSmem{};  // not reached
}

// Stages key codes [pb.x, pb.y) and the scale region of tokens [t0, min(t0 + TT, end)).
template <int TT>
__device__ __forceinline__ void stage_fold(const LayerView& layer, const RowCopier& rc,
                                           const int32_t* __restrict__ pages, int pt,
                                           PageCursor& cur, int t0, int end, int4 pb,
                                           uint8_t* raw) {
  stage_at_cursor(layer, rc, pages, pt, cur, t0, end - t0 < TT ? end - t0 : TT, TT,
                  make_int4(pb.x, pb.y, 0, 0), raw);
  cp_async_commit();
}

// Two floats as one fp16x2 word (low half = a), for a fragment built from accumulators.
__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Two consecutive fp16 latents at p as one word: one 32-bit load when p is 4-byte aligned (every
// head's latents start at an even rank offset), else two 16-bit loads.
template <bool kAligned>
__device__ __forceinline__ uint32_t latent_pair(const uint8_t* p) {
  if (kAligned) return *reinterpret_cast<const uint32_t*>(p);
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(p)) |
         static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(p + 2)) << 16;
}

template <int NT, int TT>
__global__ void __launch_bounds__(kThreads, 2)
    fold_scores_kernel(LayerView layer, ModelView model, AttendBatch batch,
                       const void* __restrict__ q, int q_dtype) {
  constexpr int D = NT * 8;
  constexpr int DS = D + 8;  // halves per AB / CS row (16-byte pad: conflict-free ldmatrix)
  constexpr int MPW = TT / 32;  // m-tiles (16 tokens) per warp: the 8 warps are 2 x 4 head groups
  constexpr int KSTEPS = D / 16;
  constexpr int P = D / 2;             // rotary pair slots
  constexpr int SEGS = kThreads / P;   // CS table: thread = (pair, segment of tokens)
  constexpr int TPS = TT / SEGS;
  static_assert(TPS <= kAttnTileTokens, "rope_step holds kAttnTileTokens offsets");
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;

  // blockIdx.x = work item x chunk, the chunk fastest: an item's chunks run together and read
  // adjacent bytes of the same rows.
  const int item_index = static_cast<int>(blockIdx.x) / layer.n_chunks;
  const WorkItem item = batch.items[item_index];
  const int chunk = static_cast<int>(blockIdx.x) - item_index * layer.n_chunks;
  const int qpk = model.q_per_kv;
  const int gc = layer.kv_heads_per_chunk;
  const int g0 = chunk * gc;
  const int ngc = model.n_kv_heads - g0 < gc ? model.n_kv_heads - g0 : gc;
  const int nh = ngc * qpk;
  const int rp = model.rope_pairs;
  const int ks = layer.key_tile_stride;
  const int rkp_max = layer.max_key_rank_pad;
  const int rstride = raw_stride(layer);
  const bool decode = layer.keys_fp16 == 0;
  const FoldSmem L = fold_layout(D, rkp_max, rstride, ks, decode);
  __half* ab = reinterpret_cast<__half*>(smem + L.ab);
  __half* cs = reinterpret_cast<__half*>(smem + L.cs);
  float* sc = reinterpret_cast<float*>(smem + L.sc);
  uint8_t* raw = smem + L.raw;
  __half* lk = reinterpret_cast<__half*>(smem + L.lk);

  // AB[h][r][j] (rank-major rows): the query folded into the head's up-projection. Thread =
  // (head, pair), looping over ranks; rows past the head's rank are zero, so Z is exactly zero
  // there and the (finite) latents read past a head's rank contribute nothing.
  for (int idx = tid; idx < nh * P; idx += kThreads) {
    const int h = idx / P, i = idx - h * P;
    const HeadKeyInfo hk = layer.head_keys[g0 + h / qpk];
    const int64_t qe = (static_cast<int64_t>(item.query) * model.n_heads + g0 * qpk + h) * D;
    const float q0 = load_elem(q, q_dtype, qe + model.perm[2 * i]) * model.scale;
    const float q1 = load_elem(q, q_dtype, qe + model.perm[2 * i + 1]) * model.scale;
    const __half* u0p = layer.key_ut + hk.w + (2 * i) * hk.z;
    const __half* u1p = u0p + hk.z;
    __half* dst = ab + h * rkp_max * DS + 2 * i;
    for (int r = 0; r < rkp_max; ++r) {
      float a = 0.0f, b = 0.0f;
      if (r < hk.y) {
        const float u0 = __half2float(u0p[r]), u1 = __half2float(u1p[r]);
        a = q0 * u0 + q1 * u1;
        b = q1 * u0 - q0 * u1;
      }
      *reinterpret_cast<__half2*>(dst + r * DS) = __floats2half2_rn(a, b);
    }
  }
  // Zero the staging buffers and the decoded tile (padding columns must stay finite zeros).
  {
    uint32_t* z = reinterpret_cast<uint32_t*>(smem + L.raw);
    const int words = static_cast<int>((L.plans - L.raw) / 4);
    for (int i = tid; i < words; i += kThreads) z[i] = 0u;
  }
  // CS table: pairs past the rotary ones are (1, 0) once for all; a rotary pair's segment base
  // angle is exact at the item's start and advances by a 64-token rotation per tile.
  const int pi = tid % P, seg = tid / P;
  float bc = 1.0f, bs = 0.0f, rc = 1.0f, rs = 0.0f;
  {
    __half* dst = cs + seg * TPS * DS + 2 * pi;
    if (pi < rp) {
      const float2 b = exact_rotation(item.start + seg * TPS, model.inv_freq[pi]);
      const float2 r = exact_rotation(TT, model.inv_freq[pi]);
      bc = b.x;
      bs = b.y;
      rc = r.x;
      rs = r.y;
    } else {
      for (int k = 0; k < TPS; ++k)
        *reinterpret_cast<__half2*>(dst + k * DS) = __floats2half2_rn(1.0f, 0.0f);
    }
  }
  const int32_t* pages = batch.pages + batch.page_offsets[item.query];
  const int pt = model.page_tokens;
  const int4 pb = layer.part_bytes[chunk * layer.max_value_parts];
  // Quantized keys: each (KV head, 8-channel group) resolved to its blocks once (GroupPlan).
  const int scale_shift = layer.raw_key_bytes + layer.raw_value_bytes - layer.scale_base;
  const int gpr = rkp_max / 8;  // plan slots per KV head
  GroupPlan* plans = reinterpret_cast<GroupPlan*>(smem + L.plans);
  if (decode) {
    for (int idx = tid; idx < ngc * gpr; idx += kThreads) {
      const int gl = idx / gpr, u = idx - gl * gpr;
      const HeadKeyInfo hk = layer.head_keys[g0 + gl];
      const int kch = layer.key_channel[g0 + gl];
      if (8 * u < hk.y) plans[idx] = plan_group(layer, -pb.x, scale_shift, kch + 8 * u, kch + hk.y);
    }
  }
  // Per query head of the chunk, resolved once: x = the latents' byte offset in a staged row
  // (fp16 keys) or in the decoded tile, y = the head's padded rank, z = 1 when x is 4-byte aligned.
  int4* heads = reinterpret_cast<int4*>(smem + L.heads);
  for (int h = tid; h < nh; h += kThreads) {
    const int g = g0 + h / qpk;
    const HeadKeyInfo hk = layer.head_keys[g];
    const int off = decode ? 2 * hk.x : layer.key_row_offset[g] - pb.x;
    heads[h] = make_int4(off, hk.z, (off & 3) == 0 ? 1 : 0, 0);
  }
  float run_max = -INFINITY, run_sum = 0.0f;  // of head `warp`; run_sum: this lane's tokens
  PageCursor cursor{item.start / pt, item.start % pt};  // tiles are staged in order
  const RowCopier copier(layer, make_int4(pb.x, pb.y, 0, 0));
  __syncthreads();
  stage_fold<TT>(layer, copier, pages, pt, cursor, item.start, item.end, pb, raw);

  const int mp = warp & 1, hq = warp >> 1;  // warp: m-tiles MPW*mp + m; heads hq, hq + 4
  // Two buffers: tile k+1 loads while tile k is scored. One buffer: it loads once tile k's rows
  // have been read (after the scores), overlapping only the softmax.
  const bool two_buffers = L.buffers == 2;
  int buf = 0;
  for (int t0 = item.start; t0 < item.end; t0 += TT, buf = two_buffers ? buf ^ 1 : 0) {
    const int n_valid = item.end - t0 < TT ? item.end - t0 : TT;
    const bool more = t0 + TT < item.end;
    if (more && two_buffers)
      stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb, raw + (buf ^ 1) * TT * rstride);
    if (pi < rp) {
      const float2* st = model.rope_step + pi;
      __half* dst = cs + seg * TPS * DS + 2 * pi;
#pragma unroll 4
      for (int k = 0; k < TPS; ++k) {
        const float2 e = st[k * rp];
        *reinterpret_cast<__half2*>(dst + k * DS) =
            __floats2half2_rn(bc * e.x - bs * e.y, bs * e.x + bc * e.y);
      }
      const float nc = bc * rc - bs * rs, ns = bs * rc + bc * rs;
      bc = nc;
      bs = ns;
    }
    if (more && two_buffers) {
      cp_async_wait_one();
    } else {
      cp_async_wait_all();
    }
    __syncthreads();
    const uint8_t* rbuf = raw + buf * TT * rstride;
    if (decode) {
      // Units (KV head with its own key group, 8-channel group, token half), round-robin over the
      // warps; lane = token. 16-byte stores of 8 decoded halves into the head's columns.
      int unit = 0, prev_col = -1;
      for (int gl = 0; gl < ngc; ++gl) {
        const HeadKeyInfo hk = layer.head_keys[g0 + gl];
        if (hk.x == prev_col) continue;  // a shared (joint) key group: decoded once
        prev_col = hk.x;
        const int kch = layer.key_channel[g0 + gl];
        for (int u = 0; 8 * u < hk.y; ++u) {
          for (int th = 0; th < TT / 32; ++th, ++unit) {
            if (unit % kWarps != warp) continue;
            const int t = 32 * th + lane;
            const uint4 z8 =
                decode_planned_group(layer, plans[gl * gpr + u], rbuf + t * rstride, -pb.x,
                                     scale_shift, kch + 8 * u, kch + hk.y, t < n_valid);
            *reinterpret_cast<uint4*>(lk + t * ks + hk.x + 8 * u) = z8;
          }
        }
      }
      __syncthreads();
    }

    // Z = CS . AB on tensor cores (two m-tiles per warp share each AB fragment), scores.
    uint32_t af[MPW][KSTEPS][4];
#pragma unroll
    for (int m = 0; m < MPW; ++m)
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk)
        ldmatrix_x4(af[m][kk],
                    cs + ((MPW * mp + m) * 16 + (lane & 15)) * DS + kk * 16 + (lane >> 4) * 8);
    for (int h = hq; h < nh; h += 4) {
      const int4 hd = heads[h];
      const int rkp = hd.y;
      const uint8_t* src = (decode ? reinterpret_cast<const uint8_t*>(lk) : rbuf) + hd.x;
      const int sstride = decode ? 2 * ks : rstride;
      const bool aligned = hd.z != 0;
      const uint8_t* row0 = src + (MPW * mp * 16 + grp) * sstride + 4 * tq;
      const __half* abh = ab + h * rkp_max * DS;
      float s[MPW][2] = {};  // [m-tile][token grp, grp + 8]
      // The latent loads are compiled once per alignment (a uniform branch per head) so that the
      // common 4-byte-aligned case does not also execute the predicated 2-byte path.
      auto rank_blocks = [&](auto aligned_tag) {
      constexpr bool kAligned = decltype(aligned_tag)::value;
      for (int rb0 = 0; rb0 < rkp; rb0 += 16) {
        float acc[MPW][2][4];
#pragma unroll
        for (int m = 0; m < MPW; ++m)
#pragma unroll
          for (int n = 0; n < 2; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
        const __half* bbase =
            abh + (rb0 + (lane >> 4) * 8 + (lane & 7)) * DS + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk) {
          uint32_t b[4];
          ldmatrix_x4(b, bbase + kk * 16);
#pragma unroll
          for (int m = 0; m < MPW; ++m) {
            mma_16816(acc[m][0], af[m][kk], b[0], b[1]);
            mma_16816(acc[m][1], af[m][kk], b[2], b[3]);
          }
        }
        // Scores on tensor cores: score[t] = sum_r Z[t][r] l_t[r] is the diagonal of Z L^T. The two
        // accumulator tiles of Z (16 tokens x 16 ranks) are, packed to fp16, exactly an A
        // fragment (FlashAttention-2's reuse of P); B = L^T of the m-tile's tokens 0-7 and 8-15
        // comes from the same latent words the f32 epilogue read. Only the diagonal is kept: token
        // grp's score lands in lane (grp, tq = grp / 2) of the first product, token grp + 8's in
        // that lane of the second. The fp16 rounding of Z adds about 30% to the fold's rounding
        // error (2.0e-4 -> 2.6e-4 relative output error in a numpy model of the test inputs).
#pragma unroll
        for (int m = 0; m < MPW; ++m) {
          uint32_t za[4];
          za[0] = pack_half2(acc[m][0][0], acc[m][0][1]);
          za[1] = pack_half2(acc[m][0][2], acc[m][0][3]);
          za[2] = pack_half2(acc[m][1][0], acc[m][1][1]);
          za[3] = pack_half2(acc[m][1][2], acc[m][1][3]);
          // Ranks rb0 + 2tq, +1 (and + 8) of tokens grp and grp + 8 of m-tile MPW*mp + m.
          const uint8_t* pl = row0 + m * 16 * sstride + 2 * rb0;
          const uint8_t* ph = pl + 8 * sstride;
          float d0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, d1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          mma_16816(d0, za, latent_pair<kAligned>(pl), latent_pair<kAligned>(pl + 16));
          mma_16816(d1, za, latent_pair<kAligned>(ph), latent_pair<kAligned>(ph + 16));
          s[m][0] += (grp & 1) ? d0[1] : d0[0];
          s[m][1] += (grp & 1) ? d1[3] : d1[2];
        }
      }
      };
      if (aligned) {
        rank_blocks(std::true_type{});
      } else {
        rank_blocks(std::false_type{});
      }
#pragma unroll
      for (int m = 0; m < MPW; ++m) {
        if (tq == (grp >> 1)) {  // the lane that holds the diagonal (see rank_blocks)
          sc[h * TT + (MPW * mp + m) * 16 + grp] = s[m][0];
          sc[h * TT + (MPW * mp + m) * 16 + grp + 8] = s[m][1];
        }
      }
    }
    __syncthreads();
    // Single buffer: every read of this tile's rows is behind the barrier above.
    if (more && !two_buffers) stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb, raw);

    // Online softmax: warp = head, lane = tokens lane and lane + 32.
    if (warp < nh) {
      const float s0 = lane < n_valid ? sc[warp * TT + lane] : -INFINITY;
      const float s1 = TT > 32 && lane + 32 < n_valid ? sc[warp * TT + 32 + lane] : -INFINITY;
      float tmax = fmaxf(s0, s1);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
      const float new_max = fmaxf(run_max, tmax);
      const float alpha = exp_ftz(run_max - new_max);
      const float p0 = lane < n_valid ? exp_ftz(s0 - new_max) : 0.0f;
      const float p1 = TT > 32 && lane + 32 < n_valid ? exp_ftz(s1 - new_max) : 0.0f;
      // The max is the same in every lane, so each lane keeps its own partial sum (reduced once,
      // after the last tile).
      run_sum = run_sum * alpha + (p0 + p1);
      run_max = new_max;
      const int64_t row0 =
          (static_cast<int64_t>(item_index) * batch.tiles_per_item + ((t0 - item.start) >> 5)) *
              model.n_heads +
          g0 * qpk + warp;
      batch.probs[row0 * T + lane] = __float2half_rn(p0);
      if (lane == 0) batch.tile_max[row0] = new_max;
      if (TT > 32 && n_valid > T) {
        const int64_t row1 = row0 + model.n_heads;
        batch.probs[row1 * T + lane] = __float2half_rn(p1);
        if (lane == 0) batch.tile_max[row1] = new_max;
      }
    }
    // The next tile's first barrier orders these reads of sc before it is written again.
  }
  if (warp < nh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) run_sum += __shfl_xor_sync(0xffffffffu, run_sum, o);
    if (lane == 0) {
      float* st =
          batch.stats + (static_cast<int64_t>(item_index) * model.n_heads + g0 * qpk + warp) * 2;
      st[0] = run_max;
      st[1] = run_sum;
    }
  }
}

// Split mode, stage 3: like combine_splits_kernel, reading the value kernel's accumulators.
// grid (query head x 32-column slice of its output, block of 4 queries), 256 threads: the merged,
// normalized latents of the 4 queries go to shared memory (each head's accumulators are contiguous
// per work item, so the reads are coalesced); then warp w up-projects ranks [w*rank/8,
// (w+1)*rank/8) into the slice's 32 outputs (lane = output column: one 128-byte row segment of
// the up matrix per rank) and the 8 partial sums are added through shared memory. Slicing the
// output gives D/32 times more CTAs than one per (head, query block): with 128 of them (Llama-2-
// like, batch 16) the kernel was latency bound at one CTA per SM; the merge it repeats per slice
// is cheap next to the up-projection.
constexpr int kCombine2Threads = 256;
constexpr int kCombine2Warps = kCombine2Threads / 32;
constexpr int kCombineSlice = 32;

__host__ __device__ inline size_t combine2_smem(const LayerView& l) {
  return sizeof(float) * kCombineQueries *
         (static_cast<size_t>(l.max_value_rank) + static_cast<size_t>(kCombine2Warps) * kCombineSlice);
}

__global__ void __launch_bounds__(kCombine2Threads)
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
    float m, inv_total;
    merge_split_stats(batch, model, range, h, &m, &inv_total);
    for (int c = tid; c < rank; c += kCombine2Threads) {
      float v = 0.0f;
      for (int s = 0; s < range.y; ++s) {
        const float w = __expf(batch.stats[((range.x + s) * model.n_heads + h) * 2] - m);
        v += w * head_acc[(range.x + s) * item_stride + c];
      }
      lat2[qi * rank + c] = v * inv_total;
    }
  }
  __syncthreads();
  const int per = (rank + kCombine2Warps - 1) / kCombine2Warps;
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
      for (int w = 0; w < kCombine2Warps; ++w) v += part[(w * kCombineQueries + qi) * kCombineSlice + j];
      store_elem(out, out_dtype, (static_cast<int64_t>(query) * model.n_heads + h) * D + dj, v);
    }
  }
}

template <int NHT>
cudaError_t launch_values_nht(const LayerView& layer, const ModelView& model,
                              const AttendBatch& batch, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(batch.n_items) *
                       static_cast<unsigned>((layer.value_width + kValueBlockChannels - 1) /
                                             kValueBlockChannels);
  decode_values_kernel<NHT>
      <<<grid, kThreads, values_smem(layer, NHT * 8), stream>>>(layer, model, batch);
  return cudaGetLastError();
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

cudaError_t configure_attention_kernels(int bytes) {
  // Every attention kernel instance a launch may pick (head_dim 32/64/128; see the launchers).
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
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokens>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokens>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokens>),
      reinterpret_cast<const void*>(fold_scores_kernel<4, kFoldTokensSmall>),
      reinterpret_cast<const void*>(fold_scores_kernel<8, kFoldTokensSmall>),
      reinterpret_cast<const void*>(fold_scores_kernel<16, kFoldTokensSmall>),
      reinterpret_cast<const void*>(decode_values_kernel<1>),
      reinterpret_cast<const void*>(decode_values_kernel<2>),
      reinterpret_cast<const void*>(decode_values_kernel<4>),
      reinterpret_cast<const void*>(decode_values_kernel<8>),
      reinterpret_cast<const void*>(combine_splits_kernel),
      reinterpret_cast<const void*>(combine_split_values_kernel),
  };
  for (const void* k : kernels_used) {
    const cudaError_t e =
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
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

size_t split_values_smem_bytes(const LayerView& layer, const ModelView& model) {
  int hp = 8;
  while (hp < model.n_heads) hp *= 2;
  return hp > 64 ? 0 : values_smem(layer, hp);
}

namespace {
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
  const size_t smem = combine2_smem(layer);
  const int slices = (model.head_dim + kCombineSlice - 1) / kCombineSlice;
  const dim3 grid(static_cast<unsigned>(model.n_heads * slices),
                  static_cast<unsigned>((batch.n_queries + kCombineQueries - 1) / kCombineQueries));
  combine_split_values_kernel<<<grid, kCombine2Threads, smem, stream>>>(layer, model, batch, out,
                                                                        out_dtype);
  return cudaGetLastError();
}

FoldSmem fold_layer_layout(const LayerView& l, const ModelView& model) {
  return fold_layout(model.head_dim, l.max_key_rank_pad, raw_stride(l), l.key_tile_stride,
                     l.keys_fp16 == 0);
}

size_t fold_smem(const LayerView& l, const ModelView& model) {
  return fold_layer_layout(l, model).total;
}

template <int NT>
cudaError_t launch_fold_nt(const LayerView& l, const ModelView& model, const AttendBatch& batch,
                           const void* q, int q_dtype, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(batch.n_items) * static_cast<unsigned>(l.n_chunks);
  const FoldSmem f = fold_layer_layout(l, model);
  if (f.tokens == kFoldTokens) {
    fold_scores_kernel<NT, kFoldTokens>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  } else {
    fold_scores_kernel<NT, kFoldTokensSmall>
        <<<grid, kThreads, f.total, stream>>>(l, model, batch, q, q_dtype);
  }
  return cudaGetLastError();
}
}  // namespace

size_t fold_scores_smem_bytes(const LayerView& fold_layer, const ModelView& model) {
  return fold_smem(fold_layer, model);
}

cudaError_t launch_fold_split_attention(const LayerView& fold_layer, const LayerView& layer,
                                        const ModelView& model, const AttendBatch& batch,
                                        const void* q, int q_dtype, void* out, int out_dtype,
                                        cudaStream_t stream) {
  if (batch.n_items > 0) {
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
