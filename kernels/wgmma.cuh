// Warpgroup-level tensor-core helpers (sm_90a only): wgmma.mma_async m64nNk16 with fp16 operands,
// fp16 accumulators, A from registers and B from shared memory through a matrix descriptor.
// Layouts (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), for warp w of the
// warpgroup (w = warp index % 4), grp = lane / 4, tq = lane % 4:
//   A (64 x 16, registers): rows 16w .. 16w + 15 in this warp, in mma.sync m16n8k16's A fragment
//     layout (mma.cuh): a0 = A[16w + grp][2tq..], a1 = A[16w + grp + 8][2tq..], a2, a3 = k + 8.
//   B (16 x N, shared memory, "K-major": each of the N columns stored with its 16 k values
//     contiguous), in no-swizzle core matrices of 8 columns x 8 k (8 rows of 16 bytes, 128 bytes
//     contiguous): the descriptor's leading byte offset is the distance between the two core
//     matrices of a column group along k, its stride byte offset the distance between column
//     groups (kernels/wgmma_probe in .device checked this convention on the H200).
//   D (64 x N, fp16 pairs in N / 4 registers): h[2j] = D[16w + grp][8j + 2tq, + 1], h[2j + 1] =
//     the same columns of row + 8, i.e. n-tile j's rows grp and grp + 8 packed as mma.sync's fp16
//     A fragments take them (the fp32 layout's d[4j], d[4j + 1] and d[4j + 2], d[4j + 3]).
//     The fold needs its products in fp16 anyway; fp16 accumulators spare the conversions and
//     half the registers (bench/RESULTS.md, twentieth session).
// The instructions assemble only for sm_90a: the bodies are compiled only where the target has
// them (__CUDA_ARCH_FEAT_SM90_ALL) and trap anywhere else, where no kernel calls them.
#pragma once

#include <cstdint>

namespace starkv {
namespace kernels {

// A shared-memory matrix descriptor, no swizzle: start address, leading and stride byte offsets.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_addr, uint32_t lead_bytes,
                                               uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3ffffu) >> 4) |
         static_cast<uint64_t>((lead_bytes & 0x3ffffu) >> 4) << 16 |
         static_cast<uint64_t>((stride_bytes & 0x3ffffu) >> 4) << 32;
}

// Orders this thread's earlier register and shared-memory accesses before the warpgroup's next
// wgmma (wgmma.fence), groups the wgmmas issued so far (commit), and waits until at most N groups
// are pending (wait).
__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}

// wgmma_wait<n> for an n known only after unrolling (0, 1, or 2 and more meaning 2): callers in
// unrolled pipelines name how many of their later groups may stay in flight.
__device__ __forceinline__ void wgmma_wait_pending(int n) {
  if (n >= 2) {
    wgmma_wait<2>();
  } else if (n == 1) {
    wgmma_wait<1>();
  } else {
    wgmma_wait<0>();
  }
}

// Shared memory written by ordinary stores, read next by wgmma (the async proxy): each writing
// thread runs this before the barrier that publishes the data.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Keeps the compiler from moving accesses of an accumulator register across a wgmma issue or wait
// (the hardware writes it asynchronously, which the compiler cannot see).
template <int R>
__device__ __forceinline__ void wgmma_pin(uint32_t (&h)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(h[i])::"memory");
}

// h (+)= A B for a 64 x N x 16 step, fp16 accumulators: accumulate = 0 overwrites h.
template <int N>
__device__ __forceinline__ void wgmma_m64k16_f16(uint32_t (&h)[N / 4], const uint32_t (&a)[4],
                                                 uint64_t b, int accumulate);

template <>
__device__ __forceinline__ void wgmma_m64k16_f16<16>(uint32_t (&h)[4], const uint32_t (&a)[4],
                                                     uint64_t b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k16.f16.f16.f16 "
      "{%0,%1,%2,%3}, {%4, %5, %6, %7}, %8, p, 1, 1, 0;\n}\n"
      : "+r"(h[0]), "+r"(h[1]), "+r"(h[2]), "+r"(h[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
#else
  __trap();
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64k16_f16<32>(uint32_t (&h)[8], const uint32_t (&a)[4],
                                                     uint64_t b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f16.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"
      : "+r"(h[0]), "+r"(h[1]), "+r"(h[2]), "+r"(h[3]), "+r"(h[4]), "+r"(h[5]), "+r"(h[6]),
        "+r"(h[7])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
#else
  __trap();
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64k16_f16<48>(uint32_t (&h)[12], const uint32_t (&a)[4],
                                                     uint64_t b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %17, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n48k16.f16.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11}, {%12, %13, %14, %15}, %16, p, 1, 1, 0;\n}\n"
      : "+r"(h[0]), "+r"(h[1]), "+r"(h[2]), "+r"(h[3]), "+r"(h[4]), "+r"(h[5]), "+r"(h[6]),
        "+r"(h[7]), "+r"(h[8]), "+r"(h[9]), "+r"(h[10]), "+r"(h[11])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
#else
  __trap();
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64k16_f16<64>(uint32_t (&h)[16], const uint32_t (&a)[4],
                                                     uint64_t b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f16.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
      "{%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
      : "+r"(h[0]), "+r"(h[1]), "+r"(h[2]), "+r"(h[3]), "+r"(h[4]), "+r"(h[5]), "+r"(h[6]),
        "+r"(h[7]), "+r"(h[8]), "+r"(h[9]), "+r"(h[10]), "+r"(h[11]), "+r"(h[12]), "+r"(h[13]),
        "+r"(h[14]), "+r"(h[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
#else
  __trap();
#endif
}

}  // namespace kernels
}  // namespace starkv
