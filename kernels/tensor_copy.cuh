// Tensor copies (sm_90's TMA): a 2-D box of a tensor map copied from global to shared memory by
// one instruction of one thread, completing on a shared-memory mbarrier that counts the bytes
// (PTX ISA: "cp.async.bulk.tensor", "mbarrier"). The one place the kernels spell these
// instructions.
//
// Use: one thread initializes the barrier (count 1) once; per fill, one thread announces the
// fill's total bytes (arrive_expect_tx) and issues the copy, and every reader waits for the
// barrier's current phase (wait_parity, the phase bit flipping per fill).
#pragma once

#include <cstdint>

namespace starkv {
namespace kernels {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count)
               : "memory");
}

// Makes barrier initializations visible to the copy unit (the async proxy); the caller then
// synchronizes the block before any thread uses the barriers.
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// Orders this thread's earlier ordinary shared-memory accesses before later tensor copies into the
// same memory (a buffer read by ordinary loads, then refilled by the copy unit).
__device__ __forceinline__ void fence_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// This thread's arrival on the barrier, announcing `bytes` more to come from tensor copies.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)),
      "r"(bytes)
      : "memory");
}

// Copies the box at coordinates (x, y) of the 2-D tensor map `map` (in global memory, written
// before the launch) to shared dst (128-byte aligned); its bytes complete on bar. Box elements past
// the map's extent arrive as zeros.
__device__ __forceinline__ void tensor_copy_2d_to_shared(void* dst, const void* map, int x, int y,
                                                         uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3}], [%4];\n" ::"r"(shared_address(dst)),
      "l"(map), "r"(x), "r"(y), "r"(shared_address(bar))
      : "memory");
}

// Asks for the box at (x, y) of `map` to be brought into L2 (no shared memory, no completion to
// wait for): a later tensor copy of the same box then reads L2 instead of HBM.
__device__ __forceinline__ void tensor_prefetch_2d_to_l2(const void* map, int x, int y) {
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];\n" ::"l"(map),
               "r"(x), "r"(y)
               : "memory");
}

// Waits until the barrier's phase with this parity has completed.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
}

}  // namespace kernels
}  // namespace starkv
