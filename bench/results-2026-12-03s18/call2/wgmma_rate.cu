// Probe (not part of the library): how fast an H100/H200 SM runs chains of wgmma.mma_async
// m64nNk16 (fp16 in, fp32 accumulate, A from registers, B from shared memory), as the fold issues
// them: 4 warpgroups per SM (one 512-thread CTA per SM), each running chains of 8 k-steps
// (K = 128: one head's Z = CS . AB) on one accumulator set, either waiting for each chain before
// the next (serial) or keeping two chains in flight on two accumulator sets (pipelined, as the
// fold's score_heads; every wgmma accumulates, so that no chain is dead code). Prints FMA per SM-cycle against the dense fp16 peak (2048 / cycle / SM: 989 TFLOPS at 1.83 GHz, 132 SMs).
// Build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -std=c++17 -I. wgmma_rate.cu
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdint>
#include <vector>

#include "kernels/wgmma.cuh"

using namespace starkv::kernels;

constexpr int kChains = 4096;
constexpr int kSteps = 8;

template <int N, bool kPipelined>
__global__ void __launch_bounds__(512, 1) rate_kernel(long long* cycles, float* sink) {
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x;
  // B: kSteps x (16 x N) fp16, any values (zeros are fine for timing; use small numbers).
  for (int i = tid; i < kSteps * 16 * N / 2; i += blockDim.x) reinterpret_cast<uint32_t*>(smem)[i] = 0x3c003c00u;
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  const uint64_t desc = wgmma_desc(static_cast<uint32_t>(__cvta_generic_to_shared(smem)), 128, 256);
  uint32_t a[kSteps][4];
  for (int k = 0; k < kSteps; ++k) for (int j = 0; j < 4; ++j) a[k][j] = 0x3c003c00u + tid;
  float acc[2][N / 2];
  for (int s = 0; s < 2; ++s) for (int e = 0; e < N / 2; ++e) acc[s][e] = 0.0f;
  __syncthreads();
  const long long t0 = clock64();
  if constexpr (kPipelined) {
    for (int c = 0; c < kChains; c += 2) {
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        wgmma_pin(acc[s]);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < kSteps; ++k) wgmma_m64k16<N>(acc[s], a[k], desc + 16 * k, 1);
        wgmma_commit();
        wgmma_wait<1>();
        wgmma_pin(acc[s ^ 1]);
      }
    }
    wgmma_wait<0>();
  } else {
    for (int c = 0; c < kChains; ++c) {
      wgmma_pin(acc[0]);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kSteps; ++k) wgmma_m64k16<N>(acc[0], a[k], desc + 16 * k, 1);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_pin(acc[0]);
    }
  }
  const long long t1 = clock64();
  float s = 0.0f;
  for (int e = 0; e < N / 2; ++e) s += acc[0][e] + acc[1][e];
  sink[blockIdx.x * blockDim.x + tid] = s;
  if (tid == 0) cycles[blockIdx.x] = t1 - t0;
}

template <int N, bool kPipelined>
void run(int sms, int warpgroups) {
  long long* cycles;
  float* sink;
  cudaMalloc(&cycles, sms * sizeof(long long));
  cudaMalloc(&sink, sms * 512 * sizeof(float));
  const int smem = kSteps * 16 * N * 2;
  cudaFuncSetAttribute(rate_kernel<N, kPipelined>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  const int threads = 128 * warpgroups;
  rate_kernel<N, kPipelined><<<sms, threads, smem>>>(cycles, sink);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaEventRecord(e0);
  rate_kernel<N, kPipelined><<<sms, threads, smem>>>(cycles, sink);
  cudaEventRecord(e1);
  cudaError_t err = cudaDeviceSynchronize();
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  std::vector<long long> c(sms);
  cudaMemcpy(c.data(), cycles, sms * sizeof(long long), cudaMemcpyDeviceToHost);
  long long mx = 0;
  for (long long v : c) mx = v > mx ? v : mx;
  const double fma = double(warpgroups) * kChains * kSteps * 64.0 * N * 16.0;  // per SM
  std::printf("N=%3d %-9s wgs/SM=%d: %8lld cycles, %6.1f cycles/wgmma/SM, %6.0f FMA/cycle/SM = %5.1f%% of 2048, %.3f ms %s\n",
              N, kPipelined ? "pipelined" : "serial", warpgroups, mx,
              double(mx) / (double(warpgroups) * kChains * kSteps), fma / mx, 100.0 * fma / mx / 2048.0, ms,
              err == cudaSuccess ? "" : cudaGetErrorString(err));
  cudaFree(cycles);
  cudaFree(sink);
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  for (int wgs : {1, 2, 4}) {
    run<32, false>(sms, wgs);
    run<32, true>(sms, wgs);
    run<64, false>(sms, wgs);
    run<64, true>(sms, wgs);
  }
  return 0;
}
