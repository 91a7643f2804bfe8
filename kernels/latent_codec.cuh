// The quantizer of core/quantizer.h and the row layout of core/row_layout.h, on the device.
// Every formula here is the CPU's, operation for operation, so that both backends write the same
// bytes for the same latents and decode the same values:
//   scale = fp16_round_up(absmax / (2^(b-1) - 0.5))      (division correctly rounded: __fdiv_rn)
//   code  = clamp(floor(x / scale + 2^(b-1)), 0, 2^b - 1)
//   x^    = (code - 2^(b-1) + 0.5) * scale
// Codes of a block form a little-endian bit stream of storage_bits per code.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/kernel_api.h"

namespace starkv {
namespace kernels {

// The stored fp16 scale of a block whose largest magnitude is absmax.
// (absmax 0 or NaN: scale 0, which decodes to zeros; a scale past the fp16 range saturates.)
__device__ __forceinline__ uint16_t quant_scale_bits(float absmax, int bits) {
  if (!(absmax > 0.0f)) return 0;
  const float levels = static_cast<float>(1 << (bits - 1)) - 0.5f;
  return __half_as_ushort(__float2half_ru(fminf(__fdiv_rn(absmax, levels), 65504.0f)));
}

// An fp16 latent as stored: saturated to the finite fp16 range, rounded to nearest even.
__device__ __forceinline__ uint16_t fp16_latent_bits(float x) {
  return __half_as_ushort(__float2half_rn(fminf(65504.0f, fmaxf(-65504.0f, x))));
}

__device__ __forceinline__ uint32_t quant_code(float x, float scale, int bits) {
  if (scale == 0.0f) return static_cast<uint32_t>(1 << (bits - 1));  // zero block: mid code
  const float half_levels = static_cast<float>(1 << (bits - 1));
  const float t = __fadd_rn(__fdiv_rn(x, scale), half_levels);
  const uint32_t top = (1u << bits) - 1u;
  if (!(t >= 0.0f)) return 0u;  // also NaN
  if (t >= static_cast<float>(top)) return top;
  return static_cast<uint32_t>(t);
}

__device__ __forceinline__ float quant_value(uint32_t code, float scale, int bits) {
  return (static_cast<float>(code) - (static_cast<float>(1 << (bits - 1)) - 0.5f)) * scale;
}

// Byte k of a block's bit stream, assembled from its codes (one writer per byte: no races).
__device__ __forceinline__ uint8_t pack_byte(const uint8_t* __restrict__ codes, int n_codes, int sb,
                                             int k) {
  const int first_bit = 8 * k;
  int j = first_bit / sb;
  uint32_t byte = 0;
  for (; j < n_codes && j * sb < first_bit + 8; ++j) {
    const int shift = j * sb - first_bit;
    const uint32_t c = codes[j];
    byte |= shift >= 0 ? (c << shift) : (c >> (-shift));
  }
  return static_cast<uint8_t>(byte & 0xffu);
}

// ---- Eight codes to eight fp16 values in half2 arithmetic (the attention kernels' decoders) ----
//
// dequant8(lo, hi, sb, bits, scale) returns in half k of the result (x: halves 0, 1; y: 2, 3; ...)
// the fp16 bits of __float2half_rn(quant_value(c_k, scale, bits)), bit for bit, where c_k is bits
// [k*sb, k*sb + sb) of the window hi:lo (hi is read for sb > 4 only) and scale is the block's
// stored fp16 scale. Two codes per 32-bit word:
//  1. Each code goes into the mantissa of an fp16 "magic" number whose exponent gives the code's
//     lowest bit the weight 1 and whose next lower mantissa bit is set: M = 2^e + c + 0.5, exact
//     (shifts, byte permutes, masks; code field and half bit fit in the 10 mantissa bits).
//  2. M - (2^e + 2^(bits-1)) = c - (2^(bits-1) - 0.5) = c - mid: sub.rn.f16x2 is exact here (both
//     operands lie within a factor 2 of each other, Sterbenz; the result is a multiple of 0.5
//     with |.| <= 127.5, at most 9 significant bits).
//  3. The float path computes (c - mid) * scale in fp32 and rounds it once to fp16. That product
//     is exact in fp32: at most 9 + 11 = 20 significant bits, and 0 or of magnitude within
//     [0.5 * 2^-24, 127.5 * 65504] (scales are finite fp16), inside the fp32 normal range.
//     mul.rn.f16x2 rounds the same exact product once, to nearest even, with the same overflow
//     to inf and the same subnormal results (f16 arithmetic without .ftz keeps subnormals), so
//     the bits are equal, including the sign of a zero: a zero scale gives (c - mid) * +0, +0 or
//     -0 by the sign of c - mid, in both paths (c - mid is never 0).
// The _rn forms keep the compiler from contracting the multiply with anything.
__host__ __device__ __forceinline__ uint32_t prmt_u32(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, sel);
#else
  const uint64_t v = (static_cast<uint64_t>(b) << 32) | a;
  uint32_t r = 0;
  for (int k = 0; k < 4; ++k)
    r |= static_cast<uint32_t>((v >> (8 * ((sel >> (4 * k)) & 7))) & 0xffu) << (8 * k);
  return r;
#endif
}

// (x - sub) * scale2 on two fp16 values packed in 32 bits (see above).
__host__ __device__ __forceinline__ uint32_t dequant_pair(uint32_t x, uint32_t sub,
                                                          uint32_t scale2) {
#ifdef __CUDA_ARCH__
  uint32_t d, o;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(sub));
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(o) : "r"(d), "r"(scale2));
  return o;
#else  // host model of the two IEEE fp16 operations (tests): exact in double, rounded once each
  auto f = [](uint32_t h) {
    return static_cast<double>(__half2float(__ushort_as_half(static_cast<unsigned short>(h))));
  };
  auto lane = [&](int s) {
    const double d = __half2float(__double2half(f(x >> s) - f(sub >> s)));
    return static_cast<uint32_t>(__half_as_ushort(__double2half(d * f(scale2 >> s)))) << s;
  };
  return lane(0) | lane(16);
#endif
}

// (x & mask) | magic in one instruction: with both constants as immediates ptxas emits two LOP3s
// (a LOP3 takes one immediate), so on the device they go in as registers to a single
// lop3.b32 with the truth table of (a & b) | c (0xF0 & 0xCC | 0xAA = 0xEA).
__host__ __device__ __forceinline__ uint32_t field_or_magic(uint32_t x, uint32_t mask,
                                                            uint32_t magic) {
#ifdef __CUDA_ARCH__
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(x), "r"(mask), "r"(magic));
  return d;
#else
  return (x & mask) | magic;
#endif
}

// fp16 bits of 2^e + 2^(bits-1), the constant of step 2 (exact: 2^(bits-1) < 2^e, and its
// mantissa bit bits - 1 + 10 - e lies in [0, 10)), in both halves.
__host__ __device__ constexpr uint32_t dequant_sub(int e, int bits) {
  return ((static_cast<uint32_t>(e + 15) << 10) | (1u << (bits + 9 - e))) * 0x10001u;
}

// Nibbles (sb = 4, bits 3 or 4): word i from byte i of the window; the low half takes code 2i
// from byte i of lo << 1 (field at bit 1: 2^9 magic), the high half code 2i + 1 from byte i of lo
// (field at bit 4: 2^6 magic).
template <int kBits>
__host__ __device__ __forceinline__ uint4 dequant8_sb4(uint32_t lo, uint32_t s2) {
  constexpr uint32_t sub = (dequant_sub(9, kBits) & 0xffffu) | (dequant_sub(6, kBits) << 16);
  const uint32_t l1 = lo << 1;
  uint4 o;
  o.x = dequant_pair(field_or_magic(prmt_u32(l1, lo, 0x4400u), 0x00f0001eu, 0x54086001u), sub, s2);
  o.y = dequant_pair(field_or_magic(prmt_u32(l1, lo, 0x5511u), 0x00f0001eu, 0x54086001u), sub, s2);
  o.z = dequant_pair(field_or_magic(prmt_u32(l1, lo, 0x6622u), 0x00f0001eu, 0x54086001u), sub, s2);
  o.w = dequant_pair(field_or_magic(prmt_u32(l1, lo, 0x7733u), 0x00f0001eu, 0x54086001u), sub, s2);
  return o;
}

// sb = bits = 3 (resp. 2): y0 holds codes 0, 2 in its low half at bits 1, 7 (resp. 1, 5) and codes
// 1, 3 in its high half at the same bits; y1 likewise codes 4..7. Word 2i + (0, 1) takes the
// field at bit 1 (2^9 magic) resp. 7 (2^3 magic; 2 bits: 5, 2^5 magic).
template <int kSb>
__host__ __device__ __forceinline__ uint4 dequant8_sb23(uint32_t lo, uint32_t s2) {
  constexpr int p = 2 * kSb + 1;                               // the second field's bit
  constexpr uint32_t f1 = ((1u << kSb) - 1u) << 1, fp = ((1u << kSb) - 1u) << p;
  constexpr uint32_t m1 = 0x60016001u;                         // 2^9 + 0.5 at bit 0
  constexpr uint32_t mp = (static_cast<uint32_t>(25 - p) << 10 | (1u << (p - 1))) * 0x10001u;
  constexpr uint32_t sub1 = dequant_sub(9, kSb), subp = dequant_sub(10 - p, kSb);
  const uint32_t y0 = prmt_u32(lo << 1, lo << (17 - kSb), 0x7610u);
  const uint32_t y1 = prmt_u32(lo >> (4 * kSb - 1), lo << (17 - 5 * kSb), 0x7610u);
  uint4 o;
  o.x = dequant_pair(field_or_magic(y0, f1 * 0x10001u, m1), sub1, s2);
  o.y = dequant_pair(field_or_magic(y0, fp * 0x10001u, mp), subp, s2);
  o.z = dequant_pair(field_or_magic(y1, f1 * 0x10001u, m1), sub1, s2);
  o.w = dequant_pair(field_or_magic(y1, fp * 0x10001u, mp), subp, s2);
  return o;
}

// sb = bits = 8: bytes zero-extended into both halves (byte permute), then code << 1 under the
// 2^9 magic (no carries: 2 * 255 + 0x6001 < 0x10000).
__host__ __device__ __forceinline__ uint4 dequant8_sb8(uint32_t lo, uint32_t hi, uint32_t s2) {
  constexpr uint32_t sub = dequant_sub(9, 8);
  uint4 o;
  o.x = dequant_pair(prmt_u32(lo, 0u, 0x4140u) * 2u + 0x60016001u, sub, s2);
  o.y = dequant_pair(prmt_u32(lo, 0u, 0x4342u) * 2u + 0x60016001u, sub, s2);
  o.z = dequant_pair(prmt_u32(hi, 0u, 0x4140u) * 2u + 0x60016001u, sub, s2);
  o.w = dequant_pair(prmt_u32(hi, 0u, 0x4342u) * 2u + 0x60016001u, sub, s2);
  return o;
}

__host__ __device__ __forceinline__ uint4 dequant8(uint32_t lo, uint32_t hi, int sb, int bits,
                                                  uint16_t scale_bits) {
  const uint32_t s2 = static_cast<uint32_t>(scale_bits) * 0x10001u;  // the scale in both halves
  if (sb == 4 && bits == 4) return dequant8_sb4<4>(lo, s2);
  if (sb == 3 && bits == 3) return dequant8_sb23<3>(lo, s2);
  if (sb == 4 && bits == 3) return dequant8_sb4<3>(lo, s2);
  if (sb == 2 && bits == 2) return dequant8_sb23<2>(lo, s2);
  if (sb == 8 && bits == 8) return dequant8_sb8(lo, hi, s2);
  // (no other layout exists today) the float path, code by code
  const uint64_t w = (static_cast<uint64_t>(hi) << 32) | lo;
  const uint32_t mask = (1u << sb) - 1u;
  const float mid = static_cast<float>(1 << (bits - 1)) - 0.5f;
  const float scale = __half2float(__ushort_as_half(scale_bits));
  uint32_t h[8];
  for (int k = 0; k < 8; ++k) {
    const uint32_t code = static_cast<uint32_t>(w >> (k * sb)) & mask;
    h[k] = __half_as_ushort(__float2half_rn((static_cast<float>(code) - mid) * scale));
  }
  uint4 o;
  o.x = h[0] | (h[1] << 16);
  o.y = h[2] | (h[3] << 16);
  o.z = h[4] | (h[5] << 16);
  o.w = h[6] | (h[7] << 16);
  return o;
}

}  // namespace kernels
}  // namespace starkv
