// Decoding staged codes: a quantized block's codes (any width, 4/3-bit mixes included) turned
// into fp16, 8 channels per step, with the block and scale lookups resolved once per CTA where
// possible (GroupPlan).
#pragma once

#include <cstdint>

#include "kernels/attention_tiles.cuh"
#include "kernels/latent_codec.cuh"

namespace starkv {
namespace kernels {

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

// A block's stored fp16 scale at staged byte p, in both halves of a word, ANDed with keep (all
// ones, or 0 to decode an invalid token's codes to zeros: see decode_planned_group).
__device__ __forceinline__ uint32_t scale_pair(const uint8_t* p, uint32_t keep) {
  return (static_cast<uint32_t>(ld_u16(p)) * 0x10001u) & keep;
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

// A group of 8 latent channels [c_first, c_first + 8), clipped at c_end, resolved once per CTA
// instead of once per tile (decode_value_group finds its blocks through two dependent global loads
// per call, and a group that crosses a block boundary loops): at most two segments, each inside one
// quantized block. seg.x: bit position of the segment's first code in a staged row; seg.y: k0 |
// k1 << 8 | storage_bits << 16 | bits << 24 (the group's halves [k0, k1) come from this block);
// seg.z: staged byte offset of the block's scale; seg.w: 1 when used. a.w == -1: the group touches
// a 16/32-bit block or three blocks, and decode_value_group handles it as before. Otherwise a.w is
// a kind (kPlan* below): a group that is one segment from its first half on (k0 = 0) in a code
// layout the attention kernels use (3-bit, 4-bit, 3-bit in nibbles), or a 4-bit segment followed
// by a 3-bit or 4-bit one (the group at a 4/3- or 4/4-bit outlier/inlier boundary), is decoded by
// a path compiled for its layout (decode_fast_segment), without the generic path's run-time
// layout dispatch; every group of a 4/3- or 4/4-bit layer is of one of these kinds.
struct GroupPlan {
  int4 a, b;
};

constexpr int kPlanGeneric = 1;
constexpr int kPlanSb3 = 2;      // one segment, storage_bits = bits = 3
constexpr int kPlanSb4 = 3;      // one segment, storage_bits = bits = 4
constexpr int kPlanNibble3 = 4;  // one segment, 3-bit codes stored in nibbles (storage_bits 4)
constexpr int kPlanSb4Sb3 = 5;   // a 4-bit segment, then a 3-bit one (an outlier/inlier boundary)
constexpr int kPlanSb4Sb4 = 6;   // two 4-bit segments (the boundary of a 4/4-bit layer)
// b.w of a one-segment (kPlanSb3, kPlanSb4) plan, which has no second segment: the group is
// decoded together with the next one (decode_fast_pair_of; each kernel marks its pairs once).
constexpr int kPlanPairsWithNext = 2;

__device__ __forceinline__ int plan_kind(int sb, int bits) {
  if (sb == 3 && bits == 3) return kPlanSb3;
  if (sb == 4 && bits == 4) return kPlanSb4;
  if (sb == 4 && bits == 3) return kPlanNibble3;
  return kPlanGeneric;
}

// The columns of a quantized key group in the fold's decoded key tile. Each key group is an outlier
// block (its first n_outlier channels, e.g. 4-bit) and an inlier block (the rest, e.g. 3-bit).
// Decoded in 8-channel groups from the key group's first channel, the group holding the outlier
// block's end straddles both blocks and takes the boundary decode (two windows, two scales, a
// merge); at 4/3 bits such groups cost the Llama-2-like fold 4% of its time and 9% of its
// instructions (bench/RESULTS.md, twenty-first session). So where the outlier block does not end on
// a multiple of 8, each block is decoded in whole groups from its own start instead, and the tile
// (and the up-projection's rank order that the kernels pair with it: AB's columns, Ut's rows)
// takes `gap` zero columns between the blocks: rank r is column r below n_outlier, r + gap past
// it. The host chooses it per KV head (pack_key_group_columns, LayerView::key_group_columns): only
// where both blocks are quantized and it takes no more groups than the identity, so that the
// columns fit the group's padded rank (an extra partial group cost what the boundary group saved,
// Llama-2-like 50% 4/3); else the identity (gap 0, n_outlier 0).
struct KeyColumns {
  int n_outlier;  // ranks kept in place (0 for the identity)
  int gap;        // zero columns after them

  __device__ __forceinline__ static KeyColumns unpack(int packed) {
    return KeyColumns{packed & 255, packed >> 8};
  }
  __device__ __forceinline__ int column(int r) const { return r < n_outlier ? r : r + gap; }
  // Whether column c is one of the gap's zero columns.
  __device__ __forceinline__ bool is_gap(int c) const {
    return c >= n_outlier && c < n_outlier + gap;
  }
  __device__ __forceinline__ int n_groups(int rank) const { return (rank + gap + 7) / 8; }
  // Decode group u: ranks [first(u), end(u)) of the key group, at columns 8u ...
  __device__ __forceinline__ int first(int u) const {
    return 8 * u < n_outlier ? 8 * u : 8 * u - gap;
  }
  __device__ __forceinline__ int end(int u, int rank) const {
    return 8 * u < n_outlier ? n_outlier : rank;
  }
};

// Halves [k0, k1) of z, the rest +0.
__device__ __forceinline__ uint4 keep_halves(uint4 z, int k0, int k1) {
  z.x &= halves_below(k1, 0) & ~halves_below(k0, 0);
  z.y &= halves_below(k1, 1) & ~halves_below(k0, 1);
  z.z &= halves_below(k1, 2) & ~halves_below(k0, 2);
  z.w &= halves_below(k1, 3) & ~halves_below(k0, 3);
  return z;
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

__device__ inline GroupPlan plan_group(const LayerView& layer, int shift, int scale_shift, int c_first,
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
    if (k1 >= n) {
      const int kind = plan_kind(b.storage_bits, b.bits);
      if (seg == 0) g.a.w = kind;  // k0 = 0 here
      // (g.a.y >> 16: the first segment's storage_bits | bits << 8; both 4 for a 4-bit block.)
      if (seg == 1 && ((g.a.y >> 16) & 0xffff) == (4 | 4 << 8)) {
        if (kind == kPlanSb3) g.a.w = kPlanSb4Sb3;
        if (kind == kPlanSb4) g.a.w = kPlanSb4Sb4;
      }
      return g;
    }
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
  const uint4 m = keep_halves(z, k0, k1);
  out.x |= m.x;
  out.y |= m.y;
  out.z |= m.z;
  out.w |= m.w;
}

// decode_segment for a one-segment group (k0 = 0: plan_group gives a fast kind only to a group
// that is one segment from its first half on) in layout (kSb <= 4, kBits) known at compile time:
// the same window and dequant8 branch, so the same bits; only the halves [0, k1) are kept. The
// scale is ANDed with keep (see decode_planned_group).
template <int kSb, int kBits>
__device__ __forceinline__ uint4 decode_fast_segment(const int4 v, const uint8_t* r,
                                                     uint32_t keep) {
  static_assert(kSb <= 4, "a window of 8 codes fits one 32-bit word");
  const int k1 = (v.y >> 8) & 255;
  uint32_t lo, hi;
  load_code_window(r, v.x, kSb, lo, hi);
  const uint32_t s2 = scale_pair(r + v.z, keep);
  uint4 z;
  if constexpr (kSb == 4) {
    z = dequant8_sb4<kBits>(lo, s2);
  } else {
    z = dequant8_sb23<kSb>(lo, s2);
  }
  if (k1 == 8) return z;
  return make_uint4(z.x & halves_below(k1, 0), z.y & halves_below(k1, 1), z.z & halves_below(k1, 2),
                    z.w & halves_below(k1, 3));
}

// A planned group at an outlier/inlier boundary: halves [0, ka) from its 4-bit segment g.a,
// [ka, n) from its kSb-bit segment g.b, the rest +0 -- as decode_fast_segment for both segments
// ORed, with the segments' windows and dequant8 unclipped and merged under one mask per word.
template <int kSbB>
__device__ __forceinline__ uint4 decode_boundary(const GroupPlan& g, const uint8_t* r,
                                                 uint32_t keep) {
  const int ka = (g.a.y >> 8) & 255, n = (g.b.y >> 8) & 255;  // g.b's halves: [ka, n)
  uint32_t lo, hi;
  load_code_window(r, g.a.x, 4, lo, hi);
  const uint4 z0 = dequant8_sb4<4>(lo, scale_pair(r + g.a.z, keep));
  load_code_window(r, g.b.x, kSbB, lo, hi);
  lo <<= ka * kSbB;  // code 0 of g.b's window belongs in half ka
  const uint32_t s1 = scale_pair(r + g.b.z, keep);
  uint4 z1;
  if constexpr (kSbB == 4) {
    z1 = dequant8_sb4<4>(lo, s1);
  } else {
    z1 = dequant8_sb23<kSbB>(lo, s1);
  }
  auto merge = [&](uint32_t a, uint32_t b, int i) {
    const uint32_t m = halves_below(ka, i);
    return (a & m) | (b & ~m & halves_below(n, i));
  };
  return make_uint4(merge(z0.x, z1.x, 0), merge(z0.y, z1.y, 1), merge(z0.z, z1.z, 2),
                    merge(z0.w, z1.w, 3));
}

// decode_value_group's result for a planned group (same bits for a valid token: the same windows
// and dequant8). The fast kinds decode whatever row r holds (r is always inside the staged tile),
// so that the warp does not diverge on `valid`, with the scale zeroed for an invalid token: its
// codes give (c - mid) * +0, +0 or -0 whatever bytes its row holds (c - mid is finite), one AND
// instead of one per output word. (The kernels give an invalid token -inf scores and zero
// probabilities, so the sign of its zeros never reaches a result.)
__device__ __forceinline__ uint4 decode_planned_group(const LayerView& layer, const GroupPlan& g,
                                                      const uint8_t* r, int shift, int scale_shift,
                                                      int c_first, int c_end, bool valid) {
  // An if chain, most frequent kind first (a switch compiled to an indirect jump through a table
  // in constant memory); g.a.w is the same in every lane.
  const int kind = g.a.w;
  const uint32_t keep = valid ? 0xffffffffu : 0u;
  if (kind == kPlanSb3) {
    return decode_fast_segment<3, 3>(g.a, r, keep);
  } else if (kind == kPlanSb4) {
    return decode_fast_segment<4, 4>(g.a, r, keep);
  } else if (kind == kPlanSb4Sb3 || kind == kPlanSb4Sb4) {
    return kind == kPlanSb4Sb3 ? decode_boundary<3>(g, r, keep) : decode_boundary<4>(g, r, keep);
  } else if (kind == kPlanNibble3) {
    return decode_fast_segment<4, 3>(g.a, r, keep);
  } else {
    if (kind < 0) return decode_value_group(layer, r, shift, scale_shift, c_first, c_end, valid);
    uint4 out = make_uint4(0u, 0u, 0u, 0u);
    if (!valid) return out;
    decode_segment(g.a, r, out);
    if (g.b.w) decode_segment(g.b, r, out);
    return out;
  }
}

// Two adjacent planned groups of one token, g0 and g1 (channels [c, c + 8) and [c + 8, c + 16)),
// as decode_planned_group decodes them, same bits, for a pair that decode_pair_is_fast accepts
// (the bulk of a 4/3- or 4/4-bit layer): their codes come from one window of at most three words,
// and the two decodes are independent instructions the scheduler can interleave.
template <int kSb, int kBits>
__device__ __forceinline__ void decode_fast_pair(const GroupPlan& g0, const GroupPlan& g1,
                                                 const uint8_t* r, bool valid, uint4& z0,
                                                 uint4& z1) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(r) + (g0.a.x >> 5);
  const int sh = g0.a.x & 31;
  const uint32_t w0 = w[0], w1 = w[1];
  const uint32_t w2 = sh + 16 * kSb > 64 ? w[2] : 0u;
  const uint32_t lo = __funnelshift_r(w0, w1, sh), hi = __funnelshift_r(w1, w2, sh);
  // (The two groups' scale is usually one block's: loaded once then. Zeroed for an invalid token,
  // as decode_planned_group does.)
  const uint32_t keep = valid ? 0xffffffffu : 0u;
  const uint32_t s0 = scale_pair(r + g0.a.z, keep);
  const uint32_t s1 = g1.a.z == g0.a.z ? s0 : scale_pair(r + g1.a.z, keep);
  if constexpr (kSb == 4) {
    z0 = dequant8_sb4<kBits>(lo, s0);
    z1 = dequant8_sb4<kBits>(hi, s1);
  } else {
    z0 = dequant8_sb23<kSb>(lo, s0);
    z1 = dequant8_sb23<kSb>(__funnelshift_r(lo, hi, 8 * kSb), s1);
  }
}

// Whether two adjacent planned groups decode through decode_fast_pair: both whole (k0 = 0,
// k1 = 8: the OR of their k fields is 8 << 8 only then) 3-bit or 4-bit one-segment groups whose
// codes are contiguous (g1's window starts 8 sb bits after g0's; their scales may differ).
__device__ __forceinline__ bool decode_pair_is_fast(const GroupPlan& g0, const GroupPlan& g1) {
  const int kind = g0.a.w;
  if (((g0.a.y | g1.a.y) & 0xffff) != (8 << 8) || g1.a.w != kind) return false;
  return (kind == kPlanSb3 && g1.a.x == g0.a.x + 24) || (kind == kPlanSb4 && g1.a.x == g0.a.x + 32);
}

// decode_fast_pair for a pair that decode_pair_is_fast accepts.
__device__ __forceinline__ void decode_fast_pair_of(const GroupPlan& g0, const GroupPlan& g1,
                                                    const uint8_t* r, bool valid, uint4& z0,
                                                    uint4& z1) {
  if (g0.a.w == kPlanSb3) {
    decode_fast_pair<3, 3>(g0, g1, r, valid, z0, z1);
  } else {
    decode_fast_pair<4, 4>(g0, g1, r, valid, z0, z1);
  }
}

}  // namespace kernels
}  // namespace starkv
