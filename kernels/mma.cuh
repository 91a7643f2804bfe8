// Warp-level tensor-core helpers: mma.sync m16n8k16 with fp16 operands and fp32 accumulators.
// Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with grp = lane / 4 and
// tq = lane % 4:
//   A (16x16, row-major): a0 = A[grp][2tq..2tq+1], a1 = A[grp+8][2tq..], a2 = A[grp][2tq+8..],
//                         a3 = A[grp+8][2tq+8..]       (each register: two halves, low = first)
//   B (16x8, "col"):      b0 = B[2tq..2tq+1][grp],     b1 = B[2tq+8..2tq+9][grp]
//   C/D (16x8, fp32):     c0,c1 = C[grp][2tq..2tq+1],  c2,c3 = C[grp+8][2tq..2tq+1]
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace starkv {
namespace kernels {

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ldmatrix.x4: lanes 8m..8m+7 give the row addresses (16 bytes each, 16-byte aligned, shared
// memory) of 8x8 matrix m; r[m] receives this lane's fragment of matrix m (row lane/4, halves
// 2*(lane%4) and 2*(lane%4)+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}

// ldmatrix.x4.trans: as ldmatrix_x4, but r[m] receives this lane's fragment of matrix m transposed
// (column lane/4, rows 2*(lane%4) and 2*(lane%4)+1 of the stored matrix): an A or B operand whose
// k dimension runs along the stored rows.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}

// Transposes an 8x8 matrix of halves held one row per 4 lanes (lane l: row l/4, columns
// 2*(l%4), 2*(l%4)+1), in registers: an accumulator tile turned into the next MMA's operand.
__device__ __forceinline__ uint32_t movmatrix_trans(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// Two floats as one fp16x2 word (low half = a), for a fragment built from accumulators.
__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// A 32-bit word of two consecutive halves at p (4-byte aligned).
__device__ __forceinline__ uint32_t ld_h2(const __half* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

}  // namespace kernels
}  // namespace starkv
