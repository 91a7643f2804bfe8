// The fold-the-query score kernel of split mode, shared by kernels/fold_scores.cu (sm_90 machine
// code and PTX: the mma.sync instances) and kernels/sm90a/fold_scores_wgmma.cu (sm_90a: the wgmma
// instances, kWgmma). Each file instantiates its own (internal linkage: anonymous namespace).
//
// Split mode's fold-the-query score kernel (see decode_attention.cu for the whole decode step).
//
// fold_scores_kernel<NT, TT, kRecon>   grid work item x head chunk of the fused view (up to 8 query
//   heads; 1-D, the chunk fastest), 256 threads. kRecon = false (MHA, or STARKV_NO_RECON=1):
//   DESIGN §5's "fold the query": with the key dims
//   permuted so that rotary pair i is columns 2i, 2i+1 and Ut the head's up-projection,
//     q . RoPE_t(Ut l) = sum_r l[r] z_t[r],   z_t = CS_t . AB,
//   CS_t[2i] = cos(t theta_i), CS_t[2i+1] = sin(t theta_i) (1 and 0 past the rotary pairs), and
//   AB[2i][r] = q0 u0 + q1 u1, AB[2i+1][r] = q1 u0 - q0 u1 (u0, u1 = Ut[2i][r], Ut[2i+1][r]; q
//   pre-scaled), built once per CTA in shared memory. Per TT-token tile (64; 32 where that fits two
//   CTAs per SM and 64 does not, see fold_layout): cp.async double-buffered staging of the chunk's
//   key codes (+ scales), the tile's CS table (fp16), then warp (m-tile of 16 tokens, half of the
//   heads): Z = CS . AB on tensor cores (ldmatrix fragments, CS held in registers across heads),
//   scores = the diagonal of Z times the latents, also on tensor cores (fp16 latents read straight
//   from the staged rows; quantized ones decoded to an fp16 tile first); then the online softmax
//   (warp = head; at padded key ranks 48 and 64 on wgmma, during the next tile's MMAs:
//   kDeferSoftmax) writes fp16 probabilities and the running max per 32-token tile, exactly the
//   split-mode interface that decode_values_kernel (split_values.cu) consumes.
//   kRecon = true (GQA, q_per_kv >= 2): the fold would redo the same key's work for each query of
//   a group, so instead each KV head's keys are reconstructed once, K = L Ut on tensor cores with
//   RoPE applied to the accumulators, and the group's queries score them with one more MMA (see
//   the recon block of the tile loop); staging, CS table and softmax are the same. Its chunks
//   hold 4 KV heads (DeviceLayer::wide_fold_view: up to 32 query heads; warp w then runs the
//   softmax of heads w, w + 8, ...), or the model's chunks of 8 query heads with
//   STARKV_NO_WIDE_RECON=1. CS table: each thread's segment starts from an angle exact at the
//   item's start, advanced by a TT-token rotation per tile; within the segment each token rotates
//   the previous one by one position's angle, in registers. Staging: two buffers where they fit at
//   two CTAs per SM (a deeper ring was measured slower, bench/RESULTS.md). The wgmma instances
//   stage a tile by one 2-D tensor copy (TMA) where the layer has tensor maps
//   (LayerView::key_row_maps: fp16 keys, pages of whole tiles), instead of 256 threads' 16-byte
//   cp.async copies and their address arithmetic (a fifth of the MHA fold's instructions; the fold
//   now executes 16% fewer, bench/RESULTS.md, ninth session). Those with a single buffer and
//   registers to spare (one CTA per SM) refill it as soon as the tile's latents are in registers
//   (kEarlyRefill). Folding fp16 layers at padded key rank 16 or 32, whose second buffer does not
//   fit beside AB at two CTAs per SM, run the paired instance where the batch allows (kPaired, see
//   fold_paired_layout): one CTA per SM, two work items of a query sharing AB, two buffers each.

#include <cstdint>
#include <type_traits>

#include "kernels/attention_tiles.cuh"
#include "kernels/dtype_io.cuh"
#include "kernels/group_decode.cuh"
#include "kernels/kernel_api.h"
#include "kernels/mma.cuh"
#include "kernels/rope_angle.cuh"
#include "kernels/split_attention.h"
#include "kernels/split_softmax.cuh"
#include "kernels/tensor_copy.cuh"
#include "kernels/tile_staging.cuh"
#include "kernels/wgmma.cuh"

namespace starkv {
namespace kernels {
namespace {

constexpr int kFoldTokens = kFoldTensorTileTokens;  // the usual tile (the tensor maps' box)
constexpr int kFoldTokensSmall = 32;  // the tile of layers whose 64-token layout allows 1 CTA/SM

struct FoldSmem {
  size_t ab, cs, sc, raw, lk, plans, units, heads, bars, total;
  int tokens;   // tokens per tile: kFoldTokens or kFoldTokensSmall
  int buffers;  // staged key-row buffers: 2 (the next tile loads during this one) or 1
};

// The sm_90 opt-in shared memory per block, and the most a block may use for two to fit on one SM.
constexpr size_t kFoldSmemLimit = 232448;
constexpr size_t kFoldSmemTwoPerSm = kSmemTwoCtasPerSm;

// Reconstructing keys (recon): the up-projections of up to kReconKvHeads KV heads per chunk (a
// model chunk holds 8 / q_per_kv of them, q_per_kv >= 2; a wide chunk, DeviceLayer::
// wide_fold_view, 4) and the chunk's queries (up to kFoldMaxHeads), in place of AB.
constexpr int kReconKvHeads = kReconKvHeadsPerCta;
static_assert(kFoldMaxHeads % kWarps == 0, "the softmax gives each warp the same head count");

// Query heads a CTA may score: recon, up to a wide chunk's; else one chunk's (kHeads).
__host__ __device__ constexpr int fold_max_heads(bool recon) { return recon ? kFoldMaxHeads : kHeads; }

// Compact rows: the reconstructing wgmma instance with quantized keys at padded rank 48 sizes its
// query and score rows by its chunk's query heads (fold_row_heads) instead of kFoldMaxHeads, takes
// one score buffer (fold_defers_softmax) and, where that is what fits two CTAs per SM, a single
// staging buffer refilled right after each tile's decode (see the kernel). A wide chunk of the
// Llama-3-like layer holds 16 query heads; sized for 32, with two score buffers, its 60% 3/4- and
// 4/4-bit layouts took 139.5 KB and one CTA per SM, now 114.6 KB and two: b16 x 32K 695 -> 562 us
// (-19%), b64 -18%, b1 -14% (bench/RESULTS.md, twenty-eighth session). The other instances keep
// rows for kFoldMaxHeads, a constant: with a row count known only at run time, the 75% 3/4-bit
// layer (already two CTAs per SM) ran 1.3-1.8% slower.
__host__ __device__ constexpr bool fold_compact_rows(bool wgmma, bool recon, int rank_pad,
                                                     bool decode) {
  return wgmma && recon && decode && rank_pad == 48;
}

// The query heads that a layout's score rows (and, reconstructing keys, query rows) are sized for.
__host__ __device__ constexpr int fold_row_heads(bool compact, bool recon, int kv_heads_per_chunk,
                                                 int q_per_kv) {
  return compact ? kv_heads_per_chunk * q_per_kv : fold_max_heads(recon);
}

// Query rows (reconstructing keys): a group's score MMA reads 8 consecutive rows from its first
// head's (see the recon wgmma block), so compact rows take 8 zero rows past the chunk's heads;
// with kFoldMaxHeads rows, heads past them read the one zero row after them.
__host__ __device__ constexpr int recon_query_rows(int row_heads) {
  return row_heads < kFoldMaxHeads ? row_heads + 8 : kFoldMaxHeads + 1;
}

// Whether the kernel defers each tile's softmax into the next tile (see kDeferSoftmax): the wgmma
// instances that fold the query at padded key rank 48 or 64, and those that reconstruct keys
// either from quantized latents (the decode lengthens each tile) or at padded rank 64 (one CTA per
// SM). Their scores then take two buffers. The reconstructing fold with fp16 keys at padded rank
// 32 or 48, two CTAs per SM, lost with it (Llama-3-like b16 x 32K: 75% +0.4%, 60% +4.3%, b64
// +0.8%, measured on a first version that did the same work but read the wrong score buffer on
// odd tiles), so those instances compile as before (bench/RESULTS.md, twenty-sixth session).
// Nor does the reconstructing fold with quantized keys at padded rank 48 (fold_compact_rows): its
// second score buffer kept that layout from two CTAs per SM.
__host__ __device__ constexpr bool fold_defers_softmax(bool wgmma, bool recon, int rank_pad,
                                                       bool decode) {
  return wgmma &&
         (recon ? (decode || rank_pad > 48) && !fold_compact_rows(wgmma, recon, rank_pad, decode)
                : rank_pad > 32);
}

// Floats per head row of the tile's scores: the recon wgmma block's stores (lanes tq = 0..3 write
// heads 2tq + e of one token) would hit one bank four times at a stride of the tile (64 floats);
// 4 floats more put them in distinct banks.
__host__ __device__ constexpr int score_row_floats(int tokens, bool wgmma, bool recon) {
  return tokens + (wgmma && recon ? 4 : 0);
}

// (wgmma: Ut in core matrices, unpadded; mma.sync: rows padded by 8 halves for ldmatrix.)
__host__ __device__ inline size_t recon_ut_halves(int head_dim, int max_rkp, bool wgmma) {
  return static_cast<size_t>(kReconKvHeads) * head_dim * (max_rkp + (wgmma ? 0 : 8));
}

// The slot of rotary pair p in a CS row: p, or in the recon wgmma's order (cs_order) the slot
// where lane tq's pairs 32 dh + 4n + tq (n = 0..7, see the recon wgmma block) lie at
// 32 dh + 8 tq + n, contiguous: two 16-byte loads per half of the dims and token instead of eight
// 4-byte ones. (With rows of head_dim + 8 halves, 272 bytes, a quarter-warp's 16-byte loads, 2
// tokens x 4 lanes, hit distinct banks.)
__host__ __device__ constexpr int cs_slot(int p, bool cs_order) {
  return cs_order ? 32 * (p >> 5) + 8 * (p & 3) + ((p >> 2) & 7) : p;
}

__host__ __device__ inline FoldSmem fold_layout_with(int head_dim, int max_rkp, int rstride, int ks,
                                                     bool decode, bool recon, bool wgmma,
                                                     int tokens, int buffers, int cta_heads,
                                                     int row_heads) {
  FoldSmem f{};
  f.tokens = tokens;
  f.buffers = buffers;
  size_t o = 0;
  // AB[head][rank][D + 8]; wgmma: AB[head] in core-matrix tiles (see the kernel), unpadded;
  // recon: UT[KV head][D][max_rkp + 8] (wgmma: core matrices, unpadded), then
  // Q[recon_query_rows(row_heads)][D + 8] (the rows past the chunk's heads zero)
  f.ab = o;
  o = align16(
      o + sizeof(__half) *
              (recon ? recon_ut_halves(head_dim, max_rkp, wgmma) +
                           recon_query_rows(row_heads) * static_cast<size_t>(head_dim + 8)
                     : cta_heads * static_cast<size_t>(max_rkp) * (head_dim + (wgmma ? 0 : 8))));
  // The CS table; the wgmma instances with quantized keys put the decoded tile (lk) in the same
  // space (the table's fragments are in registers by the time the tile is decoded): 17 KB less
  // shared memory, which rank-64 layers of 8 heads need (AB 128 KB and a 65 KB decoded tile).
  // (Not when reconstructing keys: their RoPE reads the table after the decode.)
  const bool overlay = wgmma && decode && !recon;
  const size_t cs_bytes = sizeof(__half) * tokens * (head_dim + 8);
  const size_t lk_bytes = decode ? sizeof(__half) * tokens * static_cast<size_t>(ks) : 0;
  f.cs = o;
  o = align16(o + (overlay && lk_bytes > cs_bytes ? lk_bytes : cs_bytes));
  f.sc = o;
  o = align16(o + sizeof(float) * row_heads * score_row_floats(tokens, wgmma, recon) *
                      (fold_defers_softmax(wgmma, recon, max_rkp, decode) ? 2 : 1));
  if (wgmma) o = (o + 127) / 128 * 128;  // (tensor staging: its copies write 128-byte aligned)
  f.raw = o;
  o = align16(o + static_cast<size_t>(buffers) * tokens * static_cast<size_t>(rstride) +
              64);  // + read slack
  f.lk = overlay ? f.cs : o;
  o = align16(o + (overlay ? 0 : lk_bytes));
  f.plans = o;  // quantized keys: GroupPlan per (KV head of the chunk, 8-channel group)
  o = align16(o + (decode ? sizeof(GroupPlan) * kHeads * static_cast<size_t>(max_rkp / 8) : 0));
  f.units = o;  // quantized keys: the decode units (see the kernel), one per KV head and half
  o = align16(o + (decode ? sizeof(int4) * kHeads * static_cast<size_t>(tokens / 32) : 0));
  f.heads = o;  // per query head of the chunk: latent offset, padded rank, alignment
  o = align16(o + sizeof(int4) * fold_max_heads(recon));
  f.bars = o;  // tensor staging (wgmma): one mbarrier per key-row buffer
  o = align16(o + (wgmma ? sizeof(uint64_t) * 2 : 0));
  f.total = o;
  return f;
}

// The layout a layer runs with (host and device agree on it). Latency hiding needs two CTAs per
// SM more than it needs the 64-token tile's fragment reuse (Llama-2-7B-like at 75%: 144 KB at 64
// tokens -> one CTA per SM, 106 KB at 32): the first of these that fits two CTAs per SM, else the
// first that fits at all: 64 tokens double-buffered, 32 double-buffered, 64 single, 32 single.
// The wgmma kernel's tile is always 64 tokens (the instruction's M): double-buffered, else single.
// cta_heads: the query heads a (folding) CTA holds AB for: kHeads, or kHeads / 2 in the wgmma
// instances for narrow chunks (kNarrow); row_heads: fold_row_heads.
__host__ __device__ inline FoldSmem fold_layout(int head_dim, int max_rkp, int rstride, int ks,
                                                bool decode, bool recon, bool wgmma = false,
                                                int cta_heads = kHeads, int row_heads = kHeads) {
  const int tokens[4] = {kFoldTokens, wgmma ? kFoldTokens : kFoldTokensSmall, kFoldTokens,
                         wgmma ? kFoldTokens : kFoldTokensSmall};
  const int buffers[4] = {2, wgmma ? 1 : 2, wgmma ? 2 : 1, 1};
  for (int i = 0; i < 4; ++i) {
    const FoldSmem f = fold_layout_with(head_dim, max_rkp, rstride, ks, decode, recon, wgmma,
                                        tokens[i], buffers[i], cta_heads, row_heads);
    if (f.total <= kFoldSmemTwoPerSm) return f;
  }
  for (int i = 0; i < 4; ++i) {
    const FoldSmem f = fold_layout_with(head_dim, max_rkp, rstride, ks, decode, recon, wgmma,
                                        tokens[i], buffers[i], cta_heads, row_heads);
    if (f.total <= kFoldSmemLimit || i == 3) return f;
  }
  return FoldSmem{};  // not reached
}

// The paired fold (kPaired; wgmma, fp16 keys folded, padded key rank <= 32, tensor staging): one
// CTA of 2 x kThreads per SM whose halves score two work items of the same query and chunk,
// sharing one AB. Two CTAs per SM with one staging buffer each (AB 64 KB apiece) become one CTA
// with one AB and two buffers per half: each half's next tile loads during its whole current tile
// instead of only its softmax. Llama-2-like 75% fp16, b16 x 32K: the fold 426 -> 403 us, the step
// 821 -> 793 us (bench/RESULTS.md, fifteenth session). The layout is one half's (64-token tiles,
// two buffers); the second half's copy of everything after AB follows at fold_paired_half_stride.
__host__ __device__ inline FoldSmem fold_paired_layout(int head_dim, int max_rkp, int rstride) {
  return fold_layout_with(head_dim, max_rkp, rstride, 0, false, false, true, kFoldTokens, 2, kHeads,
                          kHeads);
}
__host__ __device__ inline size_t fold_paired_half_stride(const FoldSmem& f) {
  return (f.total - f.cs + 127) / 128 * 128;  // (keeps the staging buffers 128-byte aligned)
}
__host__ __device__ inline size_t fold_paired_bytes(const FoldSmem& f) {
  return f.total + fold_paired_half_stride(f);
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

// The same with one 2-D tensor copy per tile (LayerView::key_row_maps: the chunk's map, whose
// box is TT rows x the staged row's bytes, the bytes past the chunk's keys arriving as zeros),
// issued by thread 0 and completing on `bar`; the tile lies inside one page (the backend sets the
// maps only when page_tokens is a multiple of the tile). Every thread must have run
// fence_async_shared() after its last read of `raw`'s previous contents and before a barrier that
// precedes this call.
template <int TT>
__device__ __forceinline__ void stage_fold_tensor(const LayerView& layer, const void* map,
                                                  const int32_t* __restrict__ pages, int pt,
                                                  PageCursor& cur, uint8_t* raw, uint64_t* bar) {
  if ((threadIdx.x & (kThreads - 1)) == 0) {  // (thread 0 of the CTA, or of its half: kPaired)
    mbarrier_arrive_expect_tx(bar, static_cast<uint32_t>(TT * raw_stride(layer)));
    tensor_copy_2d_to_shared(raw, map, 0, pages[cur.page] * pt + cur.in_page, bar);
  }
  cur.advance(TT, pt);
}

// Thread 0 asks for the rows of the cursor's tile (the next one the staging copies) to be brought
// into L2, so that its tensor copy, issued later, does not wait for HBM. The caller checks that
// the tile starts inside the item (the page list ends with it).
__device__ __forceinline__ void prefetch_fold_tensor(const void* map,
                                                     const int32_t* __restrict__ pages, int pt,
                                                     const PageCursor& cur) {
  if ((threadIdx.x & (kThreads - 1)) == 0)
    tensor_prefetch_2d_to_l2(map, 0, pages[cur.page] * pt + cur.in_page);
}

// Two consecutive fp16 latents at p as one word: one 32-bit load when p is 4-byte aligned (every
// head's latents start at an even rank offset), else two 16-bit loads.
template <bool kAligned>
__device__ __forceinline__ uint32_t latent_pair(const uint8_t* p) {
  if (kAligned) return *reinterpret_cast<const uint32_t*>(p);
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(p)) |
         static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(p + 2)) << 16;
}

// One rotary pair k = (k0, k1) of a reconstructed key, packed in fp16 as the key's wgmmas
// accumulate it, rotated by (c, s) = cs into the packed pair the score MMA takes:
// (k0 c - k1 s, k0 s + k1 c) = (k0, k1) (c, c) + (-k1, k0) (s, s), two half2 products, with
// (-k1, k0) from one byte permute and one sign flip. (With fp32 accumulators the same rotation
// took two conversions and a negation more per pair: RoPE was 45% of the recon wgmma fold's
// instructions.)
__device__ __forceinline__ uint32_t rope_packed(uint32_t k, __half2 cs) {
  const uint32_t sw = __byte_perm(k, 0u, 0x1032u) ^ 0x00008000u;  // (-k1, k0)
  const __half2 r = __hfma2(*reinterpret_cast<const __half2*>(&sw), __high2half2(cs),
                            __hmul2(*reinterpret_cast<const __half2*>(&k), __low2half2(cs)));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// kWgmma (sm_90a, fold only): Z on warpgroup MMAs, N = NR = the layer's padded key rank (see the
// wgmma block in the tile loop).
// kQuantWgmma (wgmma instances only): the layer's keys are quantized (decoded to a tile first);
// the wgmma instances know it at compile time, so that the fp16 ones carry none of the decode.
// kNarrow (wgmma instances, MHA, quantized keys, NR <= 48; see fold_narrow): the layer's chunks
// hold 4 heads instead of kHeads (DeviceLayer::wide_fold_view), so that AB and the decoded tile
// take half the space and the tile's rows get two staging buffers at two CTAs per SM.
// kPaired (wgmma instances, fp16 keys folded, NR <= 32): 2 x kThreads threads scoring two work
// items that share AB (see fold_paired_layout); blockIdx.x = item pair x chunk.
//
// The wgmma instances that fold the query at padded rank 48 or 64 in chunks of kHeads run one CTA
// per SM (AB alone takes 96-128 KB) and spend the registers that leaves: every head's latents held
// at once (kEarlyRefill) and two heads' wgmmas issued ahead of the scores (kAhead).
__host__ __device__ constexpr bool fold_one_cta_per_sm(bool wgmma, bool recon, int nr,
                                                       bool narrow) {
  return wgmma && !recon && nr > 32 && !narrow;
}
template <int NT, int TT, bool kRecon, bool kWgmma = false, int NR = 16, bool kQuantWgmma = false,
          bool kNarrow = false, bool kPaired = false>
__global__ void __launch_bounds__(kPaired ? 2 * kThreads : kThreads,
                                  kPaired || fold_one_cta_per_sm(kWgmma, kRecon, NR, kNarrow) ? 1
                                                                                              : 2)
    fold_scores_kernel(LayerView layer, ModelView model, AttendBatch batch,
                       const void* __restrict__ q, int q_dtype) {
  constexpr int D = NT * 8;
  constexpr int DS = D + 8;  // halves per AB / CS row (16-byte pad: conflict-free ldmatrix)
  constexpr int MPW = TT / 32;  // m-tiles (16 tokens) per warp: the 8 warps are 2 x 4 head groups
  constexpr int KSTEPS = D / 16;
  constexpr int P = D / 2;             // rotary pair slots
  constexpr int SEGS = kThreads / P;   // CS table: thread = (pair, segment of tokens)
  constexpr int TPS = TT / SEGS;
  // The wgmma instances with registers for all their latents (fold_one_cta_per_sm) refill a
  // single staging buffer before the tile's MMAs (see the wgmma block).
  constexpr bool kEarlyRefill = fold_one_cta_per_sm(kWgmma, kRecon, NR, kNarrow);
  static_assert(TPS <= 16, "the CS table rotates by one position up to 16 times in a row");
  // The recon wgmma's CS table in its readers' order (cs_slot) at padded key ranks up to 32.
  // Llama-3-like 75%, b16 x 32K: fp16 345.1 -> 343.6 us, 4/3 bits 474.1 -> 469.9; at ranks 48
  // and 64 it spilled registers and gained nothing (bench/RESULTS.md, twenty-third session).
  constexpr bool kCsOrder = kRecon && kWgmma && NR <= 32;
  // kRelRope (the recon wgmma instances at padded rank <= 32, and 48 with fp16 keys): RoPE by
  // position relative to the tile. The CS table holds the rotations of the tile's offsets 0 .. TT -
  // 1, built once, and each tile rotates the queries by -t0 instead: q . R(t0 + tau) k = (R(t0)^T
  // q) . (R(tau) k). Per tile, a thread rotates its pair of at most kFoldMaxHeads / SEGS query
  // heads in place of writing TPS tokens' (cos, sin) of its pair (about 7% of the fold's
  // instructions). Llama-3-like 75%, b16 x 32K: fp16 339.7 -> 332.9 us, 4/3 456.3 -> 450.0, b64
  // 1189.9 -> 1162.5 (bench/RESULTS.md, twenty-sixth session); at fp16 padded rank 48 (60%), b16
  // x 32K 404.6 -> 402.2 us, b64 1487.4 -> 1478.1 (twenty-seventh). With quantized keys at padded
  // rank 48, and at 64, the queries' registers spilled, so those instances keep the absolute table.
  constexpr bool kRelRope = kRecon && kWgmma && (NR <= 32 || (NR == 48 && !kQuantWgmma));
  extern __shared__ __align__(16) uint8_t smem[];
  // kPaired: two halves of kThreads, each scoring its own work item (the pair's, see below).
  const int half = kPaired ? static_cast<int>(threadIdx.x) / kThreads : 0;
  const int tid = static_cast<int>(threadIdx.x) - half * kThreads, lane = tid & 31, warp = tid >> 5;
  const int grp = lane >> 2, tq = lane & 3;

  // blockIdx.x = work item x chunk, the chunk fastest: an item's chunks run together and read
  // adjacent bytes of the same rows.
  // kPaired: blockIdx.x = item pair x chunk; the pair's items (2p, 2p + 1) belong to one query
  // (AttendBatch::items_paired), so they share AB. A missing second item (odd count) scores
  // nothing.
  const int slot = static_cast<int>(blockIdx.x) / layer.n_chunks;
  const int item_index = kPaired ? 2 * slot + half : slot;
  const bool has_item = item_index < batch.n_items;
  const WorkItem item =
      has_item ? batch.items[item_index] : WorkItem{batch.items[item_index - 1].query, 0, 0, 0};
  const int chunk = static_cast<int>(blockIdx.x) - slot * layer.n_chunks;
  const int qpk = model.q_per_kv;
  const int gc = layer.kv_heads_per_chunk;
  const int g0 = chunk * gc;
  const int ngc = model.n_kv_heads - g0 < gc ? model.n_kv_heads - g0 : gc;
  const int nh = ngc * qpk;
  const int rp = model.rope_pairs;
  const int ks = layer.key_tile_stride;
  // (The wgmma instances are launched for a layer whose padded rank is NR, launch_fold_wgmma: as
  // a constant, the prologue's index arithmetic by 8-rank groups has no divisions left.)
  const int rkp_max = kWgmma ? NR : layer.max_key_rank_pad;
  const int rstride = raw_stride(layer);
  const bool decode = kWgmma ? kQuantWgmma : layer.keys_fp16 == 0;
  constexpr int kCtaHeads = kNarrow ? kHeads / 2 : kHeads;
  // The heads that the score rows (and recon's query rows) are sized for: a constant except with
  // compact rows (fold_compact_rows).
  constexpr bool kCompactRows = fold_compact_rows(kWgmma, kRecon, NR, kQuantWgmma);
  const int row_heads = fold_row_heads(kCompactRows, kRecon, gc, qpk);
  const FoldSmem L =
      kPaired ? fold_paired_layout(D, rkp_max, rstride)
              : fold_layout(D, rkp_max, rstride, ks, decode, kRecon, kWgmma, kCtaHeads, row_heads);
  // kPaired: AB once, then each half's copy of everything after it (fold_paired_layout).
  uint8_t* const hsm =
      smem + (kPaired ? static_cast<size_t>(half) * fold_paired_half_stride(L) : 0);
  const bool builds_ab = !kPaired || half == 0;
  __half* ab = reinterpret_cast<__half*>(smem + L.ab);
  __half* cs = reinterpret_cast<__half*>(hsm + L.cs);
  float* sc = reinterpret_cast<float*>(hsm + L.sc);
  uint8_t* raw = hsm + L.raw;
  __half* lk = reinterpret_cast<__half*>(hsm + L.lk);

  // Prologue loads. The chunk's KV heads' key info (and, folding, its scaled queries in the
  // permuted dims, fp32) are staged first, in the CS table's space (nothing else writes it before
  // the second barrier below; TT (D + 8) halves hold kHeads D floats and kHeads int4s), so that the
  // up-projection loads after the barrier are issued several at a time, 16 bytes each, instead of
  // one 2-byte load at a time behind a dependent info or query load (a tenth of the fold's warp
  // time went there: bench/RESULTS.md, fifth session). Ut rows are 16-byte aligned and zero past
  // the head's rank up to hk.z (its 16-padded rank), see device_layer.cpp.
  float* qf = reinterpret_cast<float*>(cs);                // [nh][D]
  int4* hks = reinterpret_cast<int4*>(qf + kHeads * D);   // [ngc]: HeadKeyInfo x, y, z, w
  KeyColumns* kcols = reinterpret_cast<KeyColumns*>(hks + kHeads);  // [ngc] (quantized keys)
  static_assert(kHeads * D * 4 + kHeads * (sizeof(int4) + sizeof(KeyColumns)) <= 32 * (D + 8) * 2,
                "qf, hks, kcols fit the CS table");
  if (builds_ab && tid < ngc) {
    const HeadKeyInfo hk = layer.head_keys[g0 + tid];
    hks[tid] = make_int4(hk.x, hk.y, hk.z, hk.w);
    if (decode) {
      kcols[tid] = KeyColumns::unpack(layer.key_group_columns[g0 + tid]);
    }
  }
  for (int idx = tid; builds_ab && !kRecon && idx < nh * D; idx += kThreads) {
    const int h = idx / D, d = idx - h * D;
    const int64_t qe = (static_cast<int64_t>(item.query) * model.n_heads + g0 * qpk + h) * D;
    qf[idx] = load_elem(q, q_dtype, qe + model.perm[d]) * model.scale;
  }
  __syncthreads();
  constexpr int kBatch = 4;  // 16-byte loads in flight per thread before their results are used
  const int g8 = rkp_max / 8;  // 8-rank groups per (padded) rank row
  if (!builds_ab) {
    // (kPaired: the first half builds AB for both)
  } else if (kRecon) {
    // UT[gl][d][r] = the KV head's up-projection (row d: permuted key dim, ranks contiguous: B
    // fragments of K = L Ut by ldmatrix), zero past its rank; Q[h][d] = the scaled query in the
    // permuted dims (B fragments of the score MMA), the rows past the chunk's heads zero (padding
    // heads of a group, see recon_query_rows).
    const int UTS = rkp_max + 8;
    __half* ut = ab;
    __half* qs = ab + recon_ut_halves(D, rkp_max, kWgmma);
    // kWgmma: UT[gl] in no-swizzle core matrices instead (8 dims x 8 ranks, 128 contiguous bytes;
    // NR / 8 of them along the ranks per group of 8 dims): the B operand of K = L Ut's wgmmas.
    // Quantized keys: rank r in column KeyColumns::column(r), as the decoded tile holds it (16-byte
    // stores where the map is the identity, else half by half; its gap columns zero).
    // Every KV-head slot of the CTA is written (zeros past the chunk's heads): a warpgroup runs its
    // first head even past the chunk, on zeros (see the recon wgmma block).
    const int n_heads_ut = kWgmma ? kReconKvHeads : ngc;
    const int n_items = n_heads_ut * D * g8;  // (KV head, dim, 8-rank group)
    for (int i0 = tid; i0 < n_items; i0 += kBatch * kThreads) {
      uint4 v[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = i0 + b * kThreads;
        v[b] = make_uint4(0u, 0u, 0u, 0u);
        if (idx < n_items) {
          const int gl = idx / (D * g8), rem = idx - gl * D * g8, d = rem / g8, u = rem - d * g8;
          const int4 hk = gl < ngc ? hks[gl] : make_int4(0, 0, 0, 0);
          if (8 * u < hk.z) v[b] = __ldg(reinterpret_cast<const uint4*>(layer.key_ut + hk.w + d * hk.z + 8 * u));
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = i0 + b * kThreads;
        if (idx < n_items) {
          const int gl = idx / (D * g8), rem = idx - gl * D * g8, d = rem / g8, u = rem - d * g8;
          const KeyColumns cols = decode && gl < ngc ? kcols[gl] : KeyColumns{0, 0};
          if (cols.gap == 0) {
            __half* dst = kWgmma ? ut + gl * D * rkp_max + ((d >> 3) * g8 + u) * 64 + (d & 7) * 8
                                 : ut + (gl * D + d) * UTS + 8 * u;
            *reinterpret_cast<uint4*>(dst) = v[b];
          } else {
            auto at = [&](int c) {  // column c of dim d
              return kWgmma ? ut + gl * D * rkp_max + ((d >> 3) * g8 + (c >> 3)) * 64 +
                                  (d & 7) * 8 + (c & 7)
                            : ut + (gl * D + d) * UTS + c;
            };
            const __half* e = reinterpret_cast<const __half*>(&v[b]);
#pragma unroll
            for (int k = 0; k < 8; ++k) {
              const int c = cols.column(8 * u + k);
              if (c < rkp_max) *at(c) = e[k];
              if (cols.is_gap(8 * u + k)) *at(8 * u + k) = __float2half(0.0f);
            }
          }
        }
      }
    }
    // The queries: 2 kBatch loads in flight per thread before their stores. (One at a time, each
    // behind its dim's permutation, they stalled the fold's prologue, which is most of the fold
    // when an item is a tile or two: bench/RESULTS.md, twenty-fifth session.)
    constexpr int kQBatch = 2 * kBatch;
    const int q_elems = recon_query_rows(row_heads) * D;
    const int64_t q0 = (static_cast<int64_t>(item.query) * model.n_heads + g0 * qpk) * D;
    for (int i0 = tid; i0 < q_elems; i0 += kQBatch * kThreads) {
      float v[kQBatch];
#pragma unroll
      for (int b = 0; b < kQBatch; ++b) {
        const int idx = i0 + b * kThreads, h = idx / D, d = idx - h * D;
        v[b] = idx < q_elems && h < nh
                   ? load_elem(q, q_dtype, q0 + h * D + model.perm[d]) * model.scale
                   : 0.0f;
      }
#pragma unroll
      for (int b = 0; b < kQBatch; ++b) {
        const int idx = i0 + b * kThreads, h = idx / D, d = idx - h * D;
        if (idx < q_elems) qs[h * DS + d] = __float2half_rn(v[b]);
      }
    }
  } else {
    // AB[h][r][j] (rank-major rows): the query folded into the head's up-projection, zero past the
    // head's rank (so Z is exactly zero there and the finite latents read past a head's rank
    // contribute nothing). Thread = rotary pair slot i = tid % P (kThreads is a multiple of P, so
    // the same i for all of a thread's items) x items (query head, 8-rank group).
    const int i = tid % P;
    const int n_items = nh * g8;
    for (int j0 = tid / P; j0 < n_items; j0 += kBatch * SEGS) {
      uint4 u0[kBatch], u1[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int j = j0 + b * SEGS;
        u0[b] = u1[b] = make_uint4(0u, 0u, 0u, 0u);
        if (j < n_items) {
          const int h = j / g8, u = j - h * g8;
          const int4 hk = hks[h / qpk];
          if (8 * u < hk.z) {
            const uint4* p = reinterpret_cast<const uint4*>(layer.key_ut + hk.w + 2 * i * hk.z + 8 * u);
            u0[b] = __ldg(p);
            u1[b] = __ldg(p + hk.z / 8);
          }
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int j = j0 + b * SEGS;
        if (j < n_items) {
          const int h = j / g8, u = j - h * g8;
          const int rank = hks[h / qpk].y;
          const KeyColumns cols = decode ? kcols[h / qpk] : KeyColumns{0, 0};
          const float q0 = qf[h * D + 2 * i], q1 = qf[h * D + 2 * i + 1];
          const __half* a0 = reinterpret_cast<const __half*>(&u0[b]);
          const __half* a1 = reinterpret_cast<const __half*>(&u1[b]);
          // Column c = rank r = 8u + k (quantized keys: cols.column(r), the decoded tile's order,
          // see KeyColumns; its gap columns zero) and dims 2i, 2i + 1; wgmma: in core matrices of
          // 8 columns x 8 dims (128 contiguous bytes), D / 8 of them along the dims per group of 8
          // columns.
          auto at = [&](int c) {
            return kWgmma ? ab + (h * rkp_max + (c & ~7)) * D + (i >> 2) * 64 + 2 * (i & 3) +
                                (c & 7) * 8
                          : ab + (h * rkp_max + c) * DS + 2 * i;
          };
          constexpr int kRankStep = kWgmma ? 8 : DS;
          __half* dst = kWgmma ? ab + (h * rkp_max + 8 * u) * D + (i >> 2) * 64 + 2 * (i & 3)
                               : ab + (h * rkp_max + 8 * u) * DS + 2 * i;
#pragma unroll
          for (int k = 0; k < 8; ++k) {
            const int r = 8 * u + k;
            float a = 0.0f, c = 0.0f;
            if (r < rank) {
              const float x0 = __half2float(a0[k]), x1 = __half2float(a1[k]);
              a = q0 * x0 + q1 * x1;
              c = q1 * x0 - q0 * x1;
            }
            if (cols.gap == 0) {
              *reinterpret_cast<__half2*>(dst + k * kRankStep) = __floats2half2_rn(a, c);
            } else {
              const int col = cols.column(r);
              if (col < rkp_max) *reinterpret_cast<__half2*>(at(col)) = __floats2half2_rn(a, c);
              if (cols.is_gap(r))  // (r as a column)
                *reinterpret_cast<__half2*>(at(r)) = __floats2half2_rn(0.0f, 0.0f);
            }
          }
        }
      }
    }
  }
  if constexpr (kWgmma) fence_proxy_async_shared();  // AB is read by wgmma (the async proxy)
  __syncthreads();  // qf and hks are read; the CS table may be written
  // Zero the staging buffers and the decoded tile (padding columns must stay finite zeros; where
  // the decoded tile shares the CS table's space, the CS table, its scores and buffers too: only
  // finite values are written there afterwards).
  const bool overlay = kWgmma && decode && !kRecon;
  {
    const size_t from = overlay ? L.cs : L.raw;  // (both offsets are 16-byte aligned)
    uint4* z = reinterpret_cast<uint4*>(hsm + from);
    const int units = static_cast<int>((L.plans - from) / 16);
    for (int i = tid; i < units; i += kThreads) z[i] = make_uint4(0u, 0u, 0u, 0u);
  }
  // CS table: pairs past the rotary ones are (1, 0) once for all; a rotary pair's segment base
  // angle is exact at the item's start and advances by a TT-token rotation per tile; within a
  // segment each token rotates the previous one by one position's angle, in registers (TPS <= 16
  // steps: a few fp32 ulps, far below the table's fp16 rounding).
  const int pi = tid % P, seg = tid / P;
  float bc = 1.0f, bs = 0.0f, rc = 1.0f, rs = 0.0f, ec = 1.0f, es = 0.0f;
  // The segment of pair pi's column from base rotation (c, sn) on, one position per row.
  auto write_cs_segment = [&](__half* dst, float c, float sn) {
#pragma unroll
    for (int k = 0; k < TPS; ++k) {
      *reinterpret_cast<__half2*>(dst + k * DS) = __floats2half2_rn(c, sn);
      const float nc = c * ec - sn * es;
      sn = sn * ec + c * es;
      c = nc;
    }
  };
  {
    __half* dst = cs + seg * TPS * DS + 2 * cs_slot(pi, kCsOrder);
    if (pi < rp) {
      // (kRelRope: the table's segment from offset seg TPS, written once; bc, bs then track the
      // queries' rotation, from the item's start.)
      const float2 b = exact_rotation(item.start + (kRelRope ? 0 : seg * TPS), model.inv_freq[pi]);
      const float2 r = exact_rotation(TT, model.inv_freq[pi]);
      const float2 e = exact_rotation(1, model.inv_freq[pi]);
      bc = b.x;
      bs = b.y;
      rc = r.x;
      rs = r.y;
      ec = e.x;
      es = e.y;
      if constexpr (kRelRope) {
        const float2 o = exact_rotation(seg * TPS, model.inv_freq[pi]);
        write_cs_segment(dst, o.x, o.y);
      }
    } else if (!overlay) {  // (overlay: rewritten with every tile's table, see the tile loop)
      for (int k = 0; k < TPS; ++k)
        *reinterpret_cast<__half2*>(dst + k * DS) = __floats2half2_rn(1.0f, 0.0f);
    }
  }
  // kRelRope: this thread's pair pi of query heads seg + SEGS m, unrotated (the prologue stored
  // the queries before the barrier above; heads past the chunk's are not rotated).
  constexpr int kRelHeads = kRelRope ? kFoldMaxHeads / SEGS : 1;
  __half2 q_pair[kRelHeads];
  __half* const q_rows = ab + recon_ut_halves(D, rkp_max, kWgmma);
  if constexpr (kRelRope) {
#pragma unroll
    for (int m = 0; m < kRelHeads; ++m) {
      const int h = seg + SEGS * m;
      q_pair[m] = pi < rp && h < nh ? *reinterpret_cast<const __half2*>(q_rows + h * DS + 2 * pi)
                                    : __floats2half2_rn(0.0f, 0.0f);
    }
  }
  const int32_t* pages = batch.pages + batch.page_offsets[item.query];
  const int pt = model.page_tokens;
  const int4 pb = layer.part_bytes[chunk * layer.max_value_parts];
  auto key_columns_of = [&](int gl) {  // (KV head gl of the chunk; quantized keys)
    return KeyColumns::unpack(layer.key_group_columns[g0 + gl]);
  };
  // Quantized keys: each (KV head, decode group: 8 channels, see KeyColumns) resolved to its blocks
  // once (GroupPlan).
  const int scale_shift = layer.raw_key_bytes + layer.raw_value_bytes - layer.scale_base;
  const int gpr = rkp_max / 8;  // plan slots per KV head
  GroupPlan* plans = reinterpret_cast<GroupPlan*>(hsm + L.plans);
  if (decode) {
    for (int idx = tid; idx < ngc * gpr; idx += kThreads) {
      const int gl = idx / gpr, u = idx - gl * gpr;
      const HeadKeyInfo hk = layer.head_keys[g0 + gl];
      const int kch = layer.key_channel[g0 + gl];
      const KeyColumns kc = key_columns_of(gl);
      if (u < kc.n_groups(hk.y))
        plans[idx] =
            plan_group(layer, -pb.x, scale_shift, kch + kc.first(u), kch + kc.end(u, hk.y));
    }
    // The pairs a lane decodes together (see the decode loop), chosen once per CTA: from each KV
    // head's first group on, a group that pairs with the next is marked and the next skipped.
    __syncthreads();
    for (int gl = tid; gl < ngc; gl += kThreads) {
      const int n_groups = key_columns_of(gl).n_groups(layer.head_keys[g0 + gl].y);
      GroupPlan* gp = plans + gl * gpr;
      for (int u = 0; u + 1 < n_groups; ++u) {
        if (decode_pair_is_fast(gp[u], gp[u + 1])) {
          gp[u].b.w = kPlanPairsWithNext;
          ++u;  // (group u + 1 is decoded with u)
        }
      }
    }
  }
  // Quantized keys: the decode units of a tile, listed once (each warp then takes units warp,
  // warp + 8, ... straight from the list instead of walking every KV head's key info through
  // global loads). Unit = (KV head with its own key group, 32-token half): x = its first plan
  // slot | token half << 16 | its decode groups << 24, y = its first lk column, z = its first
  // channel, w = its end channel.
  // A lane decodes all of its token's groups of the head, adjacent whole 3- or 4-bit groups in
  // pairs (decode_fast_pair_of). A joint key group shared by several KV heads is decoded once.
  // (Units of one 8-channel group each fetched a unit and a plan and dispatched per group; per
  // head row, with the pairs and the boundary merge, the Llama-2-like 4/3-bit fold executed 490 M
  // instead of 507 M warp instructions and the step took 1604 instead of 1637 us:
  // bench/RESULTS.md, twelfth session.)
  int4* units = reinterpret_cast<int4*>(hsm + L.units);
  int n_units = 0;
  if (decode) {
    for (int th = 0; th < TT / 32; ++th) {
      int prev_col = -1;
      for (int gl = 0; gl < ngc; ++gl) {
        const HeadKeyInfo hk = layer.head_keys[g0 + gl];
        if (hk.x == prev_col) continue;
        prev_col = hk.x;
        if (hk.y <= 0) continue;
        const int kch = layer.key_channel[g0 + gl];
        if (tid == 0) {
          const int n_groups = key_columns_of(gl).n_groups(hk.y);
          units[n_units] = make_int4(gl * gpr | th << 16 | n_groups << 24, hk.x, kch, kch + hk.y);
        }
        ++n_units;
      }
    }
  }
  // Per query head of the chunk, resolved once: x = the latents' byte offset in a staged row
  // (fp16 keys) or in the decoded tile, y = the head's padded rank, z = 1 when x is 4-byte aligned.
  int4* heads = reinterpret_cast<int4*>(hsm + L.heads);
  for (int h = tid; h < nh; h += kThreads) {
    const int g = g0 + h / qpk;
    const HeadKeyInfo hk = layer.head_keys[g];
    const int off = decode ? 2 * hk.x : layer.key_row_offset[g] - pb.x;
    heads[h] = make_int4(off, hk.z, (off & 3) == 0 ? 1 : 0, 0);
  }
  // The softmax's heads: warp w takes heads w, w + 8, ... (one, unless a wide recon chunk has more
  // than 8); per head the running max and this lane's share of the running sum.
  constexpr int kHeadsPerWarp = fold_max_heads(kRecon) / kWarps;
  float run_max[kHeadsPerWarp], run_sum[kHeadsPerWarp];
#pragma unroll
  for (int j = 0; j < kHeadsPerWarp; ++j) {
    run_max[j] = -INFINITY;
    run_sum[j] = 0.0f;
  }
  PageCursor cursor{item.start / pt, item.start % pt};  // tiles are staged in order
  const RowCopier copier(layer, make_int4(pb.x, pb.y, 0, 0));
  // Tensor staging (LayerView::key_row_maps; the backend sets them for wgmma layers only): one
  // tensor copy per tile, buffer b's rows arriving on bars[b]; bit b of bar_phase is the parity of
  // its next fill. The buffers were zeroed by ordinary stores above.
  static_assert(!kWgmma || TT == kFoldTokens, "a map's box holds one tile's rows");
  const bool tensor_staging = kWgmma && layer.key_row_maps != nullptr;
  const void* row_map =
      tensor_staging ? static_cast<const uint8_t*>(layer.key_row_maps) + 128 * chunk : nullptr;
  uint64_t* bars = reinterpret_cast<uint64_t*>(hsm + L.bars);
  uint32_t bar_phase = 0;
  if (tensor_staging) {
    if (tid == 0) {
      mbarrier_init(&bars[0], 1);
      mbarrier_init(&bars[1], 1);
      fence_mbarrier_init();
    }
    fence_async_shared();
  }
  __syncthreads();
  if (!has_item) {
    // (kPaired: nothing to stage for a missing second item)
  } else if (tensor_staging) {
    stage_fold_tensor<TT>(layer, row_map, pages, pt, cursor, raw, &bars[0]);
  } else {
    stage_fold<TT>(layer, copier, pages, pt, cursor, item.start, item.end, pb, raw);
  }

  const int mp = warp & 1, hq = warp >> 1;  // warp: m-tiles MPW*mp + m; heads hq, hq + 4
  // Two buffers: tile k+1 loads while tile k is scored. One buffer: it loads once tile k's rows
  // have been read: after the scores, overlapping only the softmax, or (kEarlyRefill) as soon as
  // the tile's latents are in registers, overlapping its MMAs too.
  const bool two_buffers = L.buffers == 2;
  // Compact rows from a single buffer: refilled right after the decode, the rows' only reader (see
  // the decode loop).
  const bool refill_after_decode = kCompactRows && !two_buffers && !tensor_staging;
  int buf = 0;
  // The tile loop's barriers: the whole CTA, or (kPaired) the half's kThreads threads alone, so
  // that the halves run their tiles independently (named barriers 1 and 2).
  auto sync_tile = [&]() {
    if constexpr (kPaired) {
      asm volatile("bar.sync %0, %1;\n" ::"r"(1 + half), "r"(kThreads) : "memory");
    } else {
      __syncthreads();
    }
  };
  // Online softmax of the tile starting at tile_t0 from its scores scb: warp = head, lane = tokens
  // lane and lane + 32.
  constexpr int SCR = score_row_floats(TT, kWgmma, kRecon);  // floats per head row of sc
  auto softmax_tile = [&](int tile_t0, const float* scb) {
    const int nv = item.end - tile_t0 < TT ? item.end - tile_t0 : TT;
    // Head h's scores of the tile's tokens lane and lane + 32.
    auto scores = [&](int h, float& s0, float& s1) {
      s0 = lane < nv ? scb[h * SCR + lane] : -INFINITY;
      s1 = TT > 32 && lane + 32 < nv ? scb[h * SCR + 32 + lane] : -INFINITY;
    };
    // The rest for head h (the warp's j-th) once its tile max is known.
    auto finish = [&](int j, int h, float s0, float s1, float tmax) {
      const float new_max = fmaxf(run_max[j], tmax);
      const float alpha = exp_ftz(run_max[j] - new_max);
      const float p0 = lane < nv ? exp_ftz(s0 - new_max) : 0.0f;
      const float p1 = TT > 32 && lane + 32 < nv ? exp_ftz(s1 - new_max) : 0.0f;
      // The max is the same in every lane, so each lane keeps its own partial sum (reduced once,
      // after the last tile).
      run_sum[j] = run_sum[j] * alpha + (p0 + p1);
      run_max[j] = new_max;
      const int64_t row0 = (static_cast<int64_t>(item_index) * batch.tiles_per_item +
                            ((tile_t0 - item.start) >> 5)) *
                               model.n_heads +
                           g0 * qpk + h;
      batch.probs[row0 * T + lane] = __float2half_rn(p0);
      if (lane == 0) batch.tile_max[row0] = new_max;
      if (TT > 32 && nv > T) {
        const int64_t row1 = row0 + model.n_heads;
        batch.probs[row1 * T + lane] = __float2half_rn(p1);
        if (lane == 0) batch.tile_max[row1] = new_max;
      }
    };
    // A warp's heads two at a time (where it has several: the wide recon chunks' 16 heads over 8
    // warps), so that their max reductions' dependent shuffles overlap instead of running one
    // chain after the other.
    constexpr int kStep = kHeadsPerWarp > 1 ? 2 : 1;
    static_assert(kHeadsPerWarp % kStep == 0, "heads per warp in pairs");
#pragma unroll
    for (int j = 0; j < kHeadsPerWarp; j += kStep) {
      const int h = warp + j * kWarps;
      if (h >= nh) break;
      const bool second = kStep == 2 && h + kWarps < nh;  // (warp-uniform)
      float s0, s1, u0 = -INFINITY, u1 = -INFINITY;
      scores(h, s0, s1);
      if (second) scores(h + kWarps, u0, u1);
      float tmax = fmaxf(s0, s1), umax = fmaxf(u0, u1);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
        if (kStep == 2) umax = fmaxf(umax, __shfl_xor_sync(0xffffffffu, umax, o));
      }
      finish(j, h, s0, s1, tmax);
      if (second) finish(j + 1, h + kWarps, u0, u1, umax);
    }
  };
  // kDeferSoftmax (the wgmma instances that fold the query at padded key rank 48 or 64, one CTA
  // per SM; see fold_defers_softmax): a tile's softmax runs during the next tile, right after its
  // first head's wgmmas are issued (see score_heads), so that its shuffles and exponentials overlap
  // the tensor cores instead of standing between two tiles' MMAs (FlashAttention-3 overlaps softmax
  // and MMAs within a warpgroup likewise); the scores alternate between two buffers. Llama-2-like
  // fp16, b16 x 32K: 60% 1223 -> 1197 us, 50% 1645 -> 1600. At rank 32, with two CTAs (or the
  // paired fold's two halves) per SM to hide the softmax already, it gained nothing (75%: 795 ->
  // 791 us) or lost (batch 64: 3181 -> 3224; 4/3 bits: 1439 -> 1458). bench/RESULTS.md, eighteenth
  // session. The reconstructing instances defer it likewise where fold_defers_softmax says (after
  // the first KV head's wgmmas): Llama-3-like b16 x 32K, 75% 4/3 464 -> 458 us, 4/4 466 -> 458, 50%
  // fp16 567 -> 553, 50% 4/3 825 -> 804 (twenty-sixth session).
  constexpr bool kDeferSoftmax = fold_defers_softmax(kWgmma, kRecon, NR, kQuantWgmma);
  int pending_t0 = -1;  // the tile whose softmax is still to run (kDeferSoftmax)
  const float* pending_sc = sc;
  for (int t0 = item.start; t0 < item.end; t0 += TT, buf = two_buffers ? buf ^ 1 : 0) {
    const int n_valid = item.end - t0 < TT ? item.end - t0 : TT;
    // This tile's scores (kDeferSoftmax: buffer 0 or 1 by tile parity).
    float* sct = sc + (kDeferSoftmax ? ((t0 - item.start) / TT & 1) * row_heads * SCR : 0);
    const bool more = t0 + TT < item.end;
    if (more && two_buffers) {
      if (tensor_staging) {
        stage_fold_tensor<TT>(layer, row_map, pages, pt, cursor, raw + (buf ^ 1) * TT * rstride,
                              &bars[buf ^ 1]);
      } else {
        stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb,
                       raw + (buf ^ 1) * TT * rstride);
      }
    }
    // One buffer refilled after the scores (tensor staging, !kEarlyRefill): tile k + 1 is
    // prefetched into L2 now, so that its copy, issued once tile k's rows are read, finds it there
    // instead of waiting for HBM (Llama-2-like 75%: the fold 440 -> 434 us). Prefetching the tile
    // after next where the copy is issued earlier (two buffers, kEarlyRefill) made those layers
    // 2-5% slower (bench/RESULTS.md, tenth session).
    if (tensor_staging && !two_buffers && !kEarlyRefill && more)
      prefetch_fold_tensor(row_map, pages, pt, cursor);
    if (pi < rp) {
      if constexpr (kRelRope) {
        // The tile's queries: pair (q0, q1) rotated by -t0, (c q0 + s q1, c q1 - s q0).
#pragma unroll
        for (int m = 0; m < kRelHeads; ++m) {
          const int h = seg + SEGS * m;
          if (h < nh) {
            const float2 f = __half22float2(q_pair[m]);
            *reinterpret_cast<__half2*>(q_rows + h * DS + 2 * pi) =
                __floats2half2_rn(bc * f.x + bs * f.y, bc * f.y - bs * f.x);
          }
        }
      } else {
        write_cs_segment(cs + seg * TPS * DS + 2 * cs_slot(pi, kCsOrder), bc, bs);
      }
      const float nc = bc * rc - bs * rs, ns = bs * rc + bc * rs;
      bc = nc;
      bs = ns;
    } else if (overlay) {  // the decoded tile overwrote the previous tile's (1, 0) pairs
      __half* dst = cs + seg * TPS * DS + 2 * cs_slot(pi, kCsOrder);
      for (int k = 0; k < TPS; ++k)
        *reinterpret_cast<__half2*>(dst + k * DS) = __floats2half2_rn(1.0f, 0.0f);
    }
    if (tensor_staging) {
      mbarrier_wait_parity(&bars[buf], (bar_phase >> buf) & 1u);
      bar_phase ^= 1u << buf;
    } else if (more && two_buffers) {
      cp_async_wait_group<1>();
    } else {
      cp_async_wait_all();
    }
    sync_tile();
    const uint8_t* rbuf = raw + buf * TT * rstride;
    // wgmma: warp w4 of each warpgroup holds the CS fragments of tokens 16 w4 .. + 15 (A of the
    // Z wgmmas, see the wgmma block); with quantized keys they are loaded before the decoded tile
    // overwrites the table (overlay).
    const int w4 = warp & 3;
    uint32_t af[kWgmma ? KSTEPS : 1][4];
    auto load_cs_fragments = [&]() {
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk)
        ldmatrix_x4(af[kk], cs + (w4 * 16 + (lane & 15)) * DS + kk * 16 + (lane >> 4) * 8);
    };
    if (decode) {
      if constexpr (kWgmma && !kRecon) {
        load_cs_fragments();
        sync_tile();  // every warp's fragments are loaded: the decoded tile may overwrite them
      }
      // Units round-robin over the warps (see the list above); lane = token. 16-byte stores of 8
      // decoded halves into the head's columns.
      for (int i = warp; i < n_units; i += kWarps) {
        const int4 un = units[i];
        const int t = 32 * ((un.x >> 16) & 0xff) + lane;
        const uint8_t* r = rbuf + t * rstride;
        const bool valid = t < n_valid;
        const GroupPlan* gp = plans + (un.x & 0xffff);
        __half* dst = lk + t * ks + un.y;
        const int n_groups = un.x >> 24;
        for (int u = 0; u < n_groups;) {
          if (gp[u].b.w == kPlanPairsWithNext) {
            uint4 z0, z1;
            decode_fast_pair_of(gp[u], gp[u + 1], r, valid, z0, z1);
            *reinterpret_cast<uint4*>(dst + 8 * u) = z0;
            *reinterpret_cast<uint4*>(dst + 8 * u + 8) = z1;
            u += 2;
          } else {
            // (The channels passed on are those of group u where KeyColumns is the identity; only
            // a group that touches a 16-bit block reads them, and then it is.)
            *reinterpret_cast<uint4*>(dst + 8 * u) = decode_planned_group(
                layer, gp[u], r, -pb.x, scale_shift, un.z + 8 * u, un.w, valid);
            u += 1;
          }
        }
      }
      sync_tile();
      // Compact rows from a single buffer: the tile's codes are all decoded (the barrier above),
      // so the next tile's copy is issued now and lands during this tile's MMAs, RoPE and
      // softmax. (Quantized keys have no tensor maps: cp.async.)
      if (refill_after_decode && more) {
        stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb, raw);
      }
    }

    if constexpr (kRecon && kWgmma) {
      // Keys reconstructed on warpgroup MMAs (head_dim 128): warpgroup wg takes KV heads wg,
      // wg + 2 of the chunk over the whole 64-token tile (the second only where the chunk has it,
      // e.g. the model's chunks of 2 KV heads under STARKV_NO_WIDE_RECON=1; the condition is
      // warpgroup-uniform and encloses each wgmma with its wait); warp w4 of it
      // holds tokens 16 w4 .. + 15. Per head and half of the dims: K (64 tokens x 64 dims) = L Ut
      // as NR / 16 wgmma.m64n64k16 steps, A = the latents from registers (fp16 keys: the staged
      // row; quantized: the decoded tile; loaded once per head, zero past its padded rank), B =
      // Ut's core matrices, accumulated in fp16 (each register one rotary pair of one token:
      // dims 8j + 2tq, + 1 of tokens grp, grp + 8, as the mma.sync path's n-tiles); RoPE on those
      // packed pairs, then S += K Q^T on mma.sync with the rotated pairs as A fragments, B = the
      // group's queries. fp16 rather than fp32 accumulators: the key is rounded to fp16 after each
      // of the NR / 16 k-steps instead of once (the scores MMA takes fp16 either way), and RoPE
      // takes no conversions: Llama-3-like 75% fp16, b16 x 32K, 363 -> 352 us; 4/3 bits 500 -> 484
      // (bench/RESULTS.md, twentieth session).
      constexpr int KS = NR / 16;
      constexpr int kWgKv = kReconKvHeads / 2;
      const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0), w4 = warp & 3;
      const __half* qs = ab + recon_ut_halves(D, rkp_max, kWgmma);
      const uint64_t ut_desc = wgmma_desc(shared_address(ab), 128, (NR / 8) * 128);
      const __half* cs_lo = cs + (w4 * 16 + grp) * DS + 2 * cs_slot(tq, kCsOrder);
      const __half* cs_hi = cs_lo + 8 * DS;
      const int sstride = decode ? 2 * ks : rstride;  // bytes per token of the latents' rows
      const uint8_t* lat = decode ? reinterpret_cast<const uint8_t*>(lk) : rbuf;
      const int wg_heads = __shfl_sync(0xffffffffu, (ngc - wg + 1) / 2, 0);
      float sacc[kWgKv][4];
#pragma unroll
      for (int j = 0; j < kWgKv; ++j) {
        const int gl = wg + 2 * j;
        sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.0f;
        if (j > 0 && j >= wg_heads) continue;
        const int4 hl = gl < ngc ? heads[gl * qpk] : make_int4(0, 0, 1, 0);
        const int rank = __shfl_sync(0xffffffffu, hl.y, 0);
        const bool aligned = __shfl_sync(0xffffffffu, hl.z, 0) != 0;
        const uint8_t* lo = lat + hl.x + (w4 * 16 + grp) * sstride + 4 * tq;
        const uint8_t* hi = lo + 8 * sstride;
        uint32_t a[KS][4];  // L: tokens grp, grp + 8 x ranks 16 kk + 2tq (+1), + 8
        auto load = [&](auto aligned_tag) {
          constexpr bool kAligned = decltype(aligned_tag)::value;
#pragma unroll
          for (int kk = 0; kk < KS; ++kk) {
            const bool in = 16 * kk < rank;
            a[kk][0] = in ? latent_pair<kAligned>(lo + 32 * kk) : 0u;
            a[kk][1] = in ? latent_pair<kAligned>(hi + 32 * kk) : 0u;
            a[kk][2] = in ? latent_pair<kAligned>(lo + 32 * kk + 16) : 0u;
            a[kk][3] = in ? latent_pair<kAligned>(hi + 32 * kk + 16) : 0u;
          }
        };
        if (aligned) {
          load(std::true_type{});
        } else {
          load(std::false_type{});
        }
        // Query rows of the B fragments: head lane & 7 of the group, where the group has it. The
        // other columns of S are never stored, so their lanes read the next rows (any finite
        // values: the chunk's other queries, or zero rows past them) instead of one zero row:
        // 8 consecutive rows hit distinct banks, where the zero row shared its bank with row 0 of
        // the group (Llama-3-like: a third of the ldmatrix wavefronts were conflicts). Compact
        // rows (recon_query_rows) have 8 zero rows past the chunk's heads, which those reads never
        // pass: gl * qpk <= row_heads (gl is one of the chunk's KV heads, or 1 in a chunk of one).
        const int qh = kCompactRows || gl * qpk + (lane & 7) < kFoldMaxHeads ? gl * qpk + (lane & 7)
                                                                             : kFoldMaxHeads;
        const __half* qrow = qs + qh * DS + (lane >> 3) * 8;
        // Both halves' wgmmas are issued before the first half's RoPE, so that the second half's
        // run during it (two accumulator sets: fp16 makes room for them). Llama-3-like fp16,
        // b16 x 32K: 353 -> 348 us, 50% 600 -> 583 (bench/RESULTS.md, twentieth session).
        uint32_t acc[2][16];  // K of one head, dims half dh: fp16 pairs (see rope_packed); each
                              // half's first wgmma overwrites its set (no initial values)
        wgmma_pin(acc[0]);
        wgmma_pin(acc[1]);
        wgmma_fence();
#pragma unroll
        for (int dh = 0; dh < 2; ++dh) {
          // (16-byte units: head gl's Ut at gl D NR halves, dims half dh at 8 dim groups of NR / 8
          // core matrices, k-step kk at two core matrices.)
          const uint64_t desc = ut_desc + static_cast<uint64_t>(gl * (D * NR / 8) + dh * NR * 8);
#pragma unroll
          for (int kk = 0; kk < KS; ++kk)
            wgmma_m64k16_f16<64>(acc[dh], a[kk], desc + static_cast<uint64_t>(kk * 16),
                                 kk > 0 ? 1 : 0);
          wgmma_commit();
        }
        // kDeferSoftmax: the previous tile's softmax runs while the first head's wgmmas do.
        if (j == 0 && kDeferSoftmax && pending_t0 >= 0) softmax_tile(pending_t0, pending_sc);
#pragma unroll
        for (int dh = 0; dh < 2; ++dh) {
          wgmma_wait_pending(1 - dh);  // (the second half's group may still run)
          wgmma_pin(acc[dh]);
          // RoPE: n-tile n (dims 64 dh + 8n ..) holds pair 32 dh + 4n + tq of tokens grp
          // (acc[dh][2n]) and grp + 8 (acc[dh][2n + 1]), fp16 pairs; rotated in half2
          // (rope_packed) into kr[2n] and kr[2n + 1].
          uint32_t cl[8], ch[8];  // kCsOrder: this lane's (cos, sin) of the half (see cs_slot)
          if constexpr (kCsOrder) {
            *reinterpret_cast<uint4*>(cl) = *reinterpret_cast<const uint4*>(cs_lo + 64 * dh);
            *reinterpret_cast<uint4*>(cl + 4) =
                *reinterpret_cast<const uint4*>(cs_lo + 64 * dh + 8);
            *reinterpret_cast<uint4*>(ch) = *reinterpret_cast<const uint4*>(cs_hi + 64 * dh);
            *reinterpret_cast<uint4*>(ch + 4) =
                *reinterpret_cast<const uint4*>(cs_hi + 64 * dh + 8);
          }
          // Pair n's (cos, sin) at row cs_lo or cs_hi: loaded above, or here in the natural order.
          auto pair_cs = [&](const __half* row, const uint32_t(&loaded)[8], int n) {
            if constexpr (kCsOrder) {
              return *reinterpret_cast<const __half2*>(&loaded[n]);
            } else {
              return *reinterpret_cast<const __half2*>(row + 2 * (32 * dh + 4 * n));
            }
          };
          uint32_t kr[16];
#pragma unroll
          for (int n = 0; n < 8; ++n) {
            kr[2 * n] = rope_packed(acc[dh][2 * n], pair_cs(cs_lo, cl, n));
            kr[2 * n + 1] = rope_packed(acc[dh][2 * n + 1], pair_cs(cs_hi, ch, n));
          }
          // S += K Q^T over the half's 4 k-steps of 16 dims (n-tiles 2k, 2k + 1 = one A fragment).
#pragma unroll
          for (int k2 = 0; k2 < 2; ++k2) {
            uint32_t bq[4];  // Q fragments of dims 64 dh + 32 k2 .. + 31 (two k-steps)
            ldmatrix_x4(bq, qrow + 64 * dh + 32 * k2);
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
              const int n0 = 4 * k2 + 2 * h2;
              const uint32_t ka[4] = {kr[2 * n0], kr[2 * n0 + 1], kr[2 * n0 + 2], kr[2 * n0 + 3]};
              mma_16816(sacc[j], ka, bq[2 * h2], bq[2 * h2 + 1]);
            }
          }
        }
      }
      // sacc[j]: tokens grp (0, 1) and grp + 8 (2, 3) x the group's heads 2tq, 2tq + 1.
#pragma unroll
      for (int j = 0; j < kWgKv; ++j) {
        const int gl = wg + 2 * j;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int hl = 2 * tq + e;
          if (gl < ngc && hl < qpk) {
            float* dst = sct + (gl * qpk + hl) * SCR + w4 * 16 + grp;
            dst[0] = sacc[j][e];
            dst[8] = sacc[j][2 + e];
          }
        }
      }
    } else if (kRecon) {
      // Warp w takes m-tile mt = w % (TT / 16) (16 tokens) of KV heads hs, hs + kHeadSets, ...
      // (hs = w / (TT / 16)). Per group of 32 key dims and head: K = L Ut on tensor cores (4
      // n-tiles of 8 dims, rkp / 16 k-steps), RoPE on the accumulators (thread: dims 2tq, 2tq + 1
      // of each n-tile = one rotary pair, tokens grp and grp + 8), the rotated keys packed to fp16
      // A fragments (two n-tiles = one k-step), then S += K Q^T with B = the group's queries (8
      // columns: q_per_kv heads, the rest a zero row). Tensor work per token and KV head:
      // 2 rkp D + 2 D 8 flops, against 2 rkp D per query head for the fold. The warp's heads share
      // its tokens, so each group's cos and sin are read from the CS table and converted to fp32
      // once for all of them (with one head per job they were a fifth of the kernel's
      // instructions, bench/RESULTS.md); the k-steps are unrolled up to the head dim, so the
      // first MMA of a group starts from zero instead of zeroed registers.
      constexpr int kMTiles = TT / 16;
      constexpr int kHeadSets = kWarps / kMTiles;
      constexpr int kWarpHeads = (kReconKvHeads + kHeadSets - 1) / kHeadSets;
      static_assert(kWarps % kMTiles == 0, "whole m-tiles per warp");
      const int UTS = rkp_max + 8;
      const __half* ut = ab;
      const __half* qs = ab + recon_ut_halves(D, rkp_max, kWgmma);
      const int mt = warp % kMTiles, hs = warp / kMTiles;
      const int sstride = decode ? 2 * ks : rstride;
      const __half* cs_lo = cs + (mt * 16 + grp) * DS + 2 * tq;
      const __half* cs_hi = cs_lo + 8 * DS;
      // Per head of the warp: its latents' rows (tokens grp and grp + 8 of the m-tile, ranks 2tq,
      // 2tq + 1), its Ut (this lane's ldmatrix row), its query rows (head lane & 7 of the group,
      // else the zero row), padded rank and alignment.
      const uint8_t* row_lo[kWarpHeads];
      const __half* utl[kWarpHeads];
      const __half* qrow[kWarpHeads];
      int rkp[kWarpHeads];
      bool aligned[kWarpHeads];
#pragma unroll
      for (int j = 0; j < kWarpHeads; ++j) {
        const int gl = hs + j * kHeadSets;
        const int4 hd = gl < ngc ? heads[gl * qpk] : make_int4(0, 0, 1, 0);
        const uint8_t* src = (decode ? reinterpret_cast<const uint8_t*>(lk) : rbuf) + hd.x;
        row_lo[j] = src + (mt * 16 + grp) * sstride + 4 * tq;
        utl[j] = ut + (gl * D + (lane >> 4) * 8 + (lane & 7)) * UTS + ((lane >> 3) & 1) * 8;
        const int qh = (lane & 7) < qpk ? gl * qpk + (lane & 7) : kFoldMaxHeads;
        qrow[j] = qs + qh * DS + (lane >> 3) * 8;
        rkp[j] = __shfl_sync(0xffffffffu, hd.y, 0);
        aligned[j] = __shfl_sync(0xffffffffu, hd.z, 0) != 0;
      }
      float sacc[kWarpHeads][4];
#pragma unroll
      for (int j = 0; j < kWarpHeads; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.0f;
      // kacc (+)= L Ut over the head's k-steps for dims dg*32 .. + 31.
      auto reconstruct = [&](auto aligned_tag, float(&kacc)[4][4], int j, int dg) {
        constexpr bool kAligned = decltype(aligned_tag)::value;
        const uint8_t* lo = row_lo[j];
        const uint8_t* hi = lo + 8 * sstride;
        const __half* b0 = utl[j] + dg * 32 * UTS;
#pragma unroll
        for (int kstep = 0; kstep < D / 16; ++kstep) {
          if (16 * kstep >= rkp[j]) break;
          const int kk = 16 * kstep;
          uint32_t a[4];  // L: tokens grp, grp + 8 x ranks kk + 2tq (+1), + 8
          a[0] = latent_pair<kAligned>(lo + 2 * kk);
          a[1] = latent_pair<kAligned>(hi + 2 * kk);
          a[2] = latent_pair<kAligned>(lo + 2 * kk + 16);
          a[3] = latent_pair<kAligned>(hi + 2 * kk + 16);
#pragma unroll
          for (int np = 0; np < 2; ++np) {
            // B: Ut rows = dims dg*32 + np*16 + (0..15), ranks kk + (0..15): matrices (n-tile
            // 2np, ranks lo), (2np, hi), (2np + 1, lo), (2np + 1, hi).
            uint32_t b[4];
            ldmatrix_x4(b, b0 + np * 16 * UTS + kk);
            mma_16816(kacc[2 * np], a, b[0], b[1]);
            mma_16816(kacc[2 * np + 1], a, b[2], b[3]);
          }
        }
      };
#pragma unroll
      for (int dg = 0; dg < D / 32; ++dg) {
        // cos, sin of pairs dg*16 + nt*4 + tq for tokens grp (x, y) and grp + 8 (z, w).
        float4 rot[4];
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          const int p2 = 2 * (dg * 16 + nt * 4);
          const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(cs_lo + p2));
          const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(cs_hi + p2));
          rot[nt] = make_float4(lo.x, lo.y, hi.x, hi.y);
        }
#pragma unroll
        for (int j = 0; j < kWarpHeads; ++j) {
          if (hs + j * kHeadSets >= ngc) break;  // (warp-uniform)
          float kacc[4][4];
#pragma unroll
          for (int nt = 0; nt < 4; ++nt)
            kacc[nt][0] = kacc[nt][1] = kacc[nt][2] = kacc[nt][3] = 0.0f;
          if (aligned[j]) {
            reconstruct(std::true_type{}, kacc, j, dg);
          } else {
            reconstruct(std::false_type{}, kacc, j, dg);
          }
          // RoPE: pair p = dg*16 + nt*4 + tq of tokens grp (c0, c1) and grp + 8 (c2, c3).
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const float4 r = rot[nt];
            const float k0 = kacc[nt][0], k1 = kacc[nt][1], k2 = kacc[nt][2], k3 = kacc[nt][3];
            kacc[nt][0] = k0 * r.x - k1 * r.y;
            kacc[nt][1] = k0 * r.y + k1 * r.x;
            kacc[nt][2] = k2 * r.z - k3 * r.w;
            kacc[nt][3] = k2 * r.w + k3 * r.z;
          }
          // Q fragments of dims dg*32 .. +31: matrices (k-step 0 lo, hi, k-step 1 lo, hi).
          uint32_t bq[4];
          ldmatrix_x4(bq, qrow[j] + dg * 32);
#pragma unroll
          for (int h2 = 0; h2 < 2; ++h2) {
            uint32_t ka[4];  // rotated keys, n-tiles 2 h2 and 2 h2 + 1, as an A fragment
            ka[0] = pack_half2(kacc[2 * h2][0], kacc[2 * h2][1]);
            ka[1] = pack_half2(kacc[2 * h2][2], kacc[2 * h2][3]);
            ka[2] = pack_half2(kacc[2 * h2 + 1][0], kacc[2 * h2 + 1][1]);
            ka[3] = pack_half2(kacc[2 * h2 + 1][2], kacc[2 * h2 + 1][3]);
            mma_16816(sacc[j], ka, bq[2 * h2], bq[2 * h2 + 1]);
          }
        }
      }
      // sacc[j]: tokens grp (0, 1) and grp + 8 (2, 3) x the group's heads 2tq, 2tq + 1.
#pragma unroll
      for (int j = 0; j < kWarpHeads; ++j) {
        const int gl = hs + j * kHeadSets;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int hl = 2 * tq + e;
          if (gl < ngc && hl < qpk) {
            float* dst = sct + (gl * qpk + hl) * TT + mt * 16 + grp;
            dst[0] = sacc[j][e];
            dst[8] = sacc[j][2 + e];
          }
        }
      }
    } else if constexpr (kWgmma) {
      // Warpgroup wg (warps 4wg .. 4wg + 3) scores heads wg, wg + 2, ... over the whole 64-token
      // tile; warp w4 of it holds tokens 16 w4 .. + 15 (its rows of A and of the accumulators).
      // Per head: Z (64 tokens x NR ranks) = CS . AB_h as D / 16 wgmma steps, A = the CS
      // fragments in registers (loaded once per tile), B = AB_h from shared memory (core-matrix
      // tiles: 128 bytes between the two k halves of a step, D / 8 * 128 between rank groups);
      // the next head's wgmmas run while this head's scores, score[t] = sum_r Z[t][r] l_t[r], are
      // taken from the accumulators in registers on tensor cores (see score: Z in fp16 as the
      // mma.sync path rounds it, 4% faster than fp32 FMAs, the fold 537 -> 517 us, sixth session).
      // The wgmmas accumulate Z in fp16 pairs, which are the score MMA's A fragments as they are:
      // no conversions, half the accumulator registers (Z is rounded after each of the D / 16
      // k-steps instead of once). Llama-2-like fp16, b16 x 32K: 60% 1187 -> 1171 us, 50% 1588 ->
      // 1567, 75% even (bench/RESULTS.md, twentieth session). Ranks past the head's padded rank
      // are not read; AB is zero past its rank.
      // (Values the branches below depend on are broadcast from lane 0, so that the compiler
      // sees them warp-uniform and keeps the wgmmas asynchronous instead of serializing them.)
      const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0);
      if (!decode) load_cs_fragments();  // (quantized keys: loaded before the decode)
      // B descriptors: head h's k-step kk starts (h NR D + 128 kk) halves into AB; the start
      // address is the low field (in 16-byte units, no carry out: shared addresses < 256 KB), so
      // each is the base descriptor plus a constant.
      const uint64_t ab_desc = wgmma_desc(static_cast<uint32_t>(__cvta_generic_to_shared(ab)), 128,
                                          (D / 8) * 128);
      constexpr int kZRegs = NR / 4;  // Z in fp16 pairs (wgmma_m64k16_f16)
      // Heads whose wgmmas are issued ahead of the scores: two where the CTA's 8 warps have the
      // SM to themselves (fold_one_cta_per_sm), else one (16 warps per SM: two CTAs or the paired
      // halves).
      // Llama-2-like fp16, b16 x 32K: 50% 1566 -> 1538 us, 60% even; two ahead at 75% (the paired
      // fold) and batch 64 was 0.5-1.5% slower (bench/RESULTS.md, twentieth session).
      constexpr int kAhead = fold_one_cta_per_sm(kWgmma, kRecon, NR, kNarrow) ? 2 : 1;
      uint32_t acc[kAhead + 1][kZRegs];
#pragma unroll
      for (int b = 0; b < kAhead + 1; ++b)
#pragma unroll
        for (int e = 0; e < kZRegs; ++e) acc[b][e] = 0u;
      auto issue = [&](int h, uint32_t(&d)[kZRegs]) {
        const uint64_t head_desc = ab_desc + static_cast<uint64_t>(h * (NR * D / 8));
        wgmma_pin(d);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk)
          wgmma_m64k16_f16<NR>(d, af[kk], head_desc + static_cast<uint64_t>(kk * 16),
                               kk > 0 ? 1 : 0);
        wgmma_commit();
      };
      // The latents of head h's scores: tokens grp and grp + 8 of the warp's rows, ranks 2tq,
      // 2tq + 1 of each 8 (zero past the head's padded rank, where Z is zero too). (A head past
      // the chunk's, h >= nh: its wgmmas ran on whatever AB holds there; nothing is read for it
      // (rank 0) and nothing written.)
      auto load_latents = [&](int h, uint32_t(&w0)[NR / 8], uint32_t(&w1)[NR / 8]) {
        const int4 hl = h < nh ? heads[h] : make_int4(0, 0, 1, 0);
        const int4 hd = make_int4(hl.x, __shfl_sync(0xffffffffu, hl.y, 0),
                                  __shfl_sync(0xffffffffu, hl.z, 0), 0);
        const uint8_t* src = (decode ? reinterpret_cast<const uint8_t*>(lk) : rbuf) + hd.x;
        const int sstride = decode ? 2 * ks : rstride;
        const uint8_t* p0 = src + (w4 * 16 + grp) * sstride + 4 * tq;  // ranks 2tq, 2tq + 1
        const uint8_t* p1 = p0 + 8 * sstride;                          // token grp + 8
        auto load = [&](auto aligned_tag) {
          constexpr bool kAligned = decltype(aligned_tag)::value;
#pragma unroll
          for (int j = 0; j < NR / 8; ++j) {
            const bool in = 8 * j < hd.y;
            w0[j] = in ? latent_pair<kAligned>(p0 + 16 * j) : 0u;
            w1[j] = in ? latent_pair<kAligned>(p1 + 16 * j) : 0u;
          }
        };
        if (hd.z != 0) {
          load(std::true_type{});
        } else {
          load(std::false_type{});
        }
      };
      // Scores on tensor cores, as the mma.sync path does: per 16 ranks, the two n8 tiles of the
      // fp16 accumulators are an A fragment (tokens x ranks), and Z L^T with B = the
      // tokens' latents has the scores on its diagonal: token grp's in lane (grp, grp / 2) of the
      // first product, token grp + 8's in that lane of the second.
      auto score = [&](int h, uint32_t(&d)[kZRegs], const uint32_t(&w0)[NR / 8],
                       const uint32_t(&w1)[NR / 8]) {
        float t0 = 0.0f, t1 = 0.0f;
#pragma unroll
        for (int b = 0; b < NR / 16; ++b) {
          const uint32_t za[4] = {d[4 * b], d[4 * b + 1], d[4 * b + 2], d[4 * b + 3]};
          float e0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, e1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          mma_16816(e0, za, w0[2 * b], w0[2 * b + 1]);
          mma_16816(e1, za, w1[2 * b], w1[2 * b + 1]);
          t0 += (grp & 1) ? e0[1] : e0[0];
          t1 += (grp & 1) ? e1[3] : e1[2];
        }
        if (tq == (grp >> 1) && h < nh) {
          sct[h * TT + w4 * 16 + grp] = t0;
          sct[h * TT + w4 * 16 + grp + 8] = t1;
        }
      };
      // Always kWgHeads heads per warpgroup, so that no branch separates a wgmma from its wait
      // (the compiler serializes wgmmas across data-dependent branches).
      constexpr int kWgHeads = kCtaHeads / 2;
      // Head i's wgmmas are issued before head i - 1's scores are taken; load_head(i) runs before
      // the wait for head i's wgmmas, so that what does not depend on them (its latents' loads
      // behind a shared-memory head record and a shuffle, a fifth of the Llama-2-like fp16 fold's
      // stall samples when they followed the wait) overlaps them. It bought little: the fold 403 ->
      // 401 us, the step 0.5% (bench/RESULTS.md, sixteenth session). score_head(i, d) takes head
      // i's scores from its accumulators d.
      auto score_heads = [&](auto&& load_head, auto&& score_head) {
#pragma unroll
        for (int i = 0; i < kAhead && i < kWgHeads; ++i) issue(wg + 2 * i, acc[i]);
        if (kDeferSoftmax && pending_t0 >= 0) softmax_tile(pending_t0, pending_sc);
#pragma unroll
        for (int i = 0; i < kWgHeads; ++i) {
          if (i + kAhead < kWgHeads) issue(wg + 2 * (i + kAhead), acc[(i + kAhead) % (kAhead + 1)]);
          load_head(i);
          // Head i's group done; the later heads' (at most kAhead) may still run.
          wgmma_wait_pending(kWgHeads - 1 - i < kAhead ? kWgHeads - 1 - i : kAhead);
          wgmma_pin(acc[i % (kAhead + 1)]);
          score_head(i, acc[i % (kAhead + 1)]);
        }
      };
      if (kEarlyRefill && more && !two_buffers) {
        // A single staging buffer (at rank 64 AB leaves room for one): every thread loads its
        // latents of all its heads first, so that the buffer is refilled with the next tile now,
        // while this tile's MMAs, scores and softmax run, instead of after the scores (waiting for
        // the rows was a fifth of the fold's stall samples). Llama-2-like layer at 50%: the fold
        // 1.05 ms -> 903 us. Only where registers allow (one CTA per SM, NR > 32): at two CTAs per
        // SM (NR <= 32) the latents met the 128-register cap, ptxas recomputed addresses (22% more
        // instructions) and the step got 2-3% slower. bench/RESULTS.md, tenth session.
        uint32_t w0[kWgHeads][NR / 8], w1[kWgHeads][NR / 8];
#pragma unroll
        for (int i = 0; i < kWgHeads; ++i) load_latents(wg + 2 * i, w0[i], w1[i]);
        if (tensor_staging) {
          fence_async_shared();
          sync_tile();
          stage_fold_tensor<TT>(layer, row_map, pages, pt, cursor, raw, &bars[0]);
        } else {
          sync_tile();
          stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb, raw);
        }
        score_heads([](int) {},
                    [&](int i, uint32_t(&d)[kZRegs]) { score(wg + 2 * i, d, w0[i], w1[i]); });
      } else {
        uint32_t l0[NR / 8], l1[NR / 8];  // head i's latents, loaded while its wgmmas run
        score_heads([&](int i) { load_latents(wg + 2 * i, l0, l1); },
                    [&](int i, uint32_t(&d)[kZRegs]) { score(wg + 2 * i, d, l0, l1); });
      }
    } else {
      // Z = CS . AB on tensor cores (two m-tiles per warp share each AB fragment), scores.
      // 32-token tiles: the first head's info is read before the CS fragments, and each next head's
      // during the current one (the alignment branch below waited on this load: 5% of the fold's
      // warp time). 64-token tiles hold twice the CS fragments and have no registers to spare.
      constexpr bool kPrefetchHead = MPW == 1;
      int4 hd_next = kPrefetchHead && hq < nh ? heads[hq] : make_int4(0, 0, 0, 0);
      uint32_t af[MPW][KSTEPS][4];
#pragma unroll
    for (int m = 0; m < MPW; ++m)
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk)
        ldmatrix_x4(af[m][kk],
                    cs + ((MPW * mp + m) * 16 + (lane & 15)) * DS + kk * 16 + (lane >> 4) * 8);
    for (int h = hq; h < nh; h += 4) {
      const int4 hd = kPrefetchHead ? hd_next : heads[h];
      if (kPrefetchHead && h + 4 < nh) hd_next = heads[h + 4];
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
        // With one m-tile per warp, even and odd k-steps accumulate apart (summed below): four
        // independent MMA chains instead of two, each half as long.
        constexpr int KS = MPW == 1 ? 2 : 1;
        float acc[MPW][2][4], acc_odd[KS == 2 ? MPW : 1][2][4];
#pragma unroll
        for (int m = 0; m < MPW; ++m)
#pragma unroll
          for (int n = 0; n < 2; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
#pragma unroll
        for (int m = 0; m < (KS == 2 ? MPW : 1); ++m)
#pragma unroll
          for (int n = 0; n < 2; ++n)
            acc_odd[m][n][0] = acc_odd[m][n][1] = acc_odd[m][n][2] = acc_odd[m][n][3] = 0.0f;
        const __half* bbase =
            abh + (rb0 + (lane >> 4) * 8 + (lane & 7)) * DS + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk) {
          uint32_t b[4];
          ldmatrix_x4(b, bbase + kk * 16);
#pragma unroll
          for (int m = 0; m < MPW; ++m) {
            float(&c)[2][4] = KS == 2 && (kk & 1) ? acc_odd[KS == 2 ? m : 0] : acc[m];
            mma_16816(c[0], af[m][kk], b[0], b[1]);
            mma_16816(c[1], af[m][kk], b[2], b[3]);
          }
        }
        if (KS == 2) {
#pragma unroll
          for (int m = 0; m < MPW; ++m)
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
              for (int e = 0; e < 4; ++e) acc[m][n][e] += acc_odd[KS == 2 ? m : 0][n][e];
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
          sct[h * TT + (MPW * mp + m) * 16 + grp] = s[m][0];
          sct[h * TT + (MPW * mp + m) * 16 + grp + 8] = s[m][1];
        }
      }
    }
    }  // fold (not kRecon)
    if (tensor_staging)
      fence_async_shared();  // this tile's rows are read: the copy unit may refill them
    sync_tile();
    // Single buffer: every read of this tile's rows is behind the barrier above.
    if (more && !two_buffers && !kEarlyRefill && !refill_after_decode) {
      // (else refilled after the latent loads or the decode)
      if (tensor_staging) {
        stage_fold_tensor<TT>(layer, row_map, pages, pt, cursor, raw, &bars[0]);
      } else {
        stage_fold<TT>(layer, copier, pages, pt, cursor, t0 + TT, item.end, pb, raw);
      }
    }

    // The softmax of this tile now, or (kDeferSoftmax) once the next tile's first wgmmas are
    // issued; the last tile's after the loop.
    if constexpr (kDeferSoftmax) {
      pending_t0 = t0;
      pending_sc = sct;
    } else {
      softmax_tile(t0, sct);
    }
    // (Without kDeferSoftmax, the next tile's first barrier orders these reads of sc before it is
    // written again; with it, the scores alternate between two buffers, and the barrier after a
    // tile's scores orders the softmax of the tile before it, which ran during those scores.)
  }
  if (kDeferSoftmax && pending_t0 >= 0) softmax_tile(pending_t0, pending_sc);
#pragma unroll
  for (int j = 0; j < kHeadsPerWarp; ++j) {
    const int h = warp + j * kWarps;
    if (h >= nh) break;
    float sum = run_sum[j];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0 && has_item) {
      float* st =
          batch.stats + (static_cast<int64_t>(item_index) * model.n_heads + g0 * qpk + h) * 2;
      st[0] = run_max[j];
      st[1] = sum;
    }
  }
}

// Whether a layer's fold view takes the narrow wgmma instances (kNarrow): quantized keys in MHA
// chunks of at most 4 heads (the backend swaps in DeviceLayer::wide_fold_view for them) at padded
// key ranks 16, 32. In chunks of 8 heads those ranks need one CTA per SM (AB 64 KB and a 33 KB
// decoded tile: 134 KB), and the mma.sync instances ran faster (Llama-2-like 75%, 4/3 bits, b16 x
// 32K: 1917 against 2062 us); in chunks of 4, two CTAs per SM with two staging buffers fit (81 KB):
// 1918 -> 1805 us. fp16 keys lost there (814 -> 946 us: twice the CTAs build the CS table and
// run the per-tile steps), so they keep the chunks of 8. bench/RESULTS.md, eleventh session.
// At padded rank 48 the chunks of 8 run one CTA per SM (AB 96 KB, 189 KB in all; 180 registers:
// every head's latents in registers, kEarlyRefill): the Llama-2-like 60% 3/4-bit fold took 1150 us
// against the fp16 fold's 579. In chunks of 4 (107 KB, 128 registers, no spills, one head's wgmmas
// ahead) two CTAs fit: the fold 971 us, b16 x 32K 2113 -> 1932 us (-8.6%), 4/4 bits -8.4%, b64
// -8.7%, b1 -8.3% (bench/RESULTS.md, twenty-eighth session).
__host__ __device__ inline bool fold_narrow(const LayerView& l, const ModelView& model) {
  return l.recon_keys == 0 && l.keys_fp16 == 0 &&
         l.kv_heads_per_chunk * model.q_per_kv <= kHeads / 2 && l.max_key_rank_pad <= 48;
}

FoldSmem fold_layer_layout(const LayerView& l, const ModelView& model, bool wgmma) {
  return fold_layout(
      model.head_dim, l.max_key_rank_pad, raw_stride(l), l.key_tile_stride, l.keys_fp16 == 0,
      l.recon_keys != 0, wgmma, wgmma && fold_narrow(l, model) ? kHeads / 2 : kHeads,
      fold_row_heads(
          fold_compact_rows(wgmma, l.recon_keys != 0, l.max_key_rank_pad, l.keys_fp16 == 0),
          l.recon_keys != 0, l.kv_heads_per_chunk, model.q_per_kv));
}

}  // namespace
}  // namespace kernels
}  // namespace starkv
