// A fixed-order reduction of one value per thread over a CTA, and the operators it is used with.
#pragma once

namespace starkv {
namespace kernels {

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

// Reduces one value per thread over the block (blockDim a multiple of 32, at most 1024) in a fixed
// order; every thread gets the result. Safe to call several times in a row. Every thread of the
// block must call it (it holds two barriers).
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
  __shared__ T partial[32];
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // the previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T total = partial[0];
  for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) total = op(total, partial[w]);
  return total;
}

}  // namespace kernels
}  // namespace starkv
