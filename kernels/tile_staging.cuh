// Staging: how an attention CTA copies the bytes of its tile's rows (key codes, value codes,
// scales) from the paged layer rows into shared memory with cp.async.
#pragma once

#include <cstdint>

#include "kernels/attention_tiles.cuh"
#include "kernels/cp_async.cuh"

namespace starkv {
namespace kernels {

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

// Stages tokens [t0, min(t0 + T, end)) (see stage_rows), then commits the group.
__device__ __forceinline__ void stage_tile(const LayerView& layer,
                                           const int32_t* __restrict__ pages, int pt, int t0,
                                           int end, int4 pb, uint8_t* raw) {
  stage_rows(layer, pages, pt, t0, end - t0 < T ? end - t0 : T, pb, raw);
  cp_async_commit();
}

}  // namespace kernels
}  // namespace starkv
