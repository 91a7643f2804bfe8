// Why did the value kernel's tensor copies (sixteenth session) read 10% more DRAM bytes than its
// cp.async staging? A probe, not part of the library. It stages slices of token rows the way the
// value kernel does (CTA = (work item, value block), block fastest; a 4-stage ring of 32-row
// tiles, rows staged an odd number of 16-byte units apart) by each of these methods, and ncu
// counts each launch's DRAM bytes:
//   cpasync  256 threads' 16-byte cp.async.cg copies (the kernel's staging)
//   tma_pad  one 2-D tensor copy per tile, box = 32 rows x the staged stride, the bytes past the
//            slice arriving as zeros (the sixteenth session's experiment)
//   tma_fit  one 2-D tensor copy per tile, box = 32 rows x exactly the slice (staged unpadded)
//   bulk     one 1-D bulk copy per row (cp.async.bulk, 32 lanes of warp 0), padded stride
// Layouts: the Llama-2-like 75% fp16 row (4128 B: keys [0, 1664), values [1664, 4128) in 4 blocks
// of 640 B and one of 544) and the Llama-3-like one (1040 B: values [416, 1040), one block).
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                \
  do {                                                                       \
    cudaError_t e_ = (x);                                                    \
    if (e_ != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

struct Slice {
  int off, len;  // bytes, multiples of 16
};
struct Job {
  const uint8_t* base;
  long long row_stride;
  int item_rows, n_blocks;
  int method;
  const CUtensorMap* maps;  // [n_blocks], in global memory
  Slice s[8];
};

__device__ unsigned sink;
constexpr int kTile = 32, kStages = 4;
enum { kCpAsync = 0, kTmaPad = 1, kTmaFit = 2, kBulk = 3, kMethods = 4 };
const char* kMethodName[kMethods] = {"cp.async", "tma_pad", "tma_fit", "bulk_per_row"};

__device__ __forceinline__ uint32_t sa(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__global__ void __launch_bounds__(256, 2) stage_kernel(Job j) {
  extern __shared__ __align__(128) uint8_t sm[];
  const int item = blockIdx.x / j.n_blocks, b = blockIdx.x % j.n_blocks;
  const Slice sl = j.s[b];
  const int cpr = sl.len / 16;
  const int sstride = j.method == kTmaFit ? sl.len : sl.len + 16;
  const int stage_bytes = (kTile * sstride + 127) / 128 * 128;
  uint64_t* bars = reinterpret_cast<uint64_t*>(sm + kStages * stage_bytes);
  const long long row0 = static_cast<long long>(item) * j.item_rows;
  const uint8_t* p0 = j.base + row0 * j.row_stride + sl.off;
  const int tiles = j.item_rows / kTile;
  const bool async_unit = j.method != kCpAsync;
  if (async_unit && threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(sa(&bars[s])) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int k) {
    if (k < tiles) {
      uint8_t* dst = sm + (k % kStages) * stage_bytes;
      uint64_t* bar = &bars[k % kStages];
      if (j.method == kCpAsync) {
        for (int i = threadIdx.x; i < kTile * cpr; i += 256) {
          const int r = i / cpr, c = i - r * cpr;
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa(dst + r * sstride + c * 16)),
                       "l"(p0 + (long long)(k * kTile + r) * j.row_stride + c * 16));
        }
      } else if (j.method == kTmaPad || j.method == kTmaFit) {
        if (threadIdx.x == 0) {
          const uint32_t bytes = kTile * sstride;
          asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sa(bar)), "r"(bytes)
                       : "memory");
          const int y = static_cast<int>(row0 + k * kTile);
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
              "%3}], [%4];" ::"r"(sa(dst)),
              "l"(j.maps + b), "r"(0), "r"(y), "r"(sa(bar))
              : "memory");
        }
      } else {
        if (threadIdx.x < 32) {
          if (threadIdx.x == 0)
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sa(bar)),
                         "r"(static_cast<uint32_t>(kTile * sl.len))
                         : "memory");
          __syncwarp();
          const int r = threadIdx.x;
          asm volatile(
              "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                  sa(dst + r * sstride)),
              "l"(p0 + (long long)(k * kTile + r) * j.row_stride), "r"(sl.len), "r"(sa(bar))
              : "memory");
        }
      }
    }
    if (j.method == kCpAsync) asm volatile("cp.async.commit_group;");
  };
  for (int k = 0; k < kStages - 1; ++k) issue(k);
  unsigned acc = 0;
  for (int k = 0; k < tiles; ++k) {
    if (j.method == kCpAsync) {
      asm volatile("cp.async.wait_group %0;" ::"n"(kStages - 2));
    } else {
      const uint32_t parity = static_cast<uint32_t>(k / kStages) & 1u;
      asm volatile(
          "{\n.reg .pred done;\nwait_%=:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n@!done bra "
          "wait_%=;\n}\n" ::"r"(sa(&bars[k % kStages])),
          "r"(parity)
          : "memory");
    }
    const uint8_t* src = sm + (k % kStages) * stage_bytes;
    acc ^= reinterpret_cast<const unsigned*>(src + (threadIdx.x % kTile) * sstride)[threadIdx.x / kTile];
    if (async_unit) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    issue(k + kStages - 1);
  }
  if (acc == 0x12345678u) sink = acc;
}

using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                            const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                            CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

int main() {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
  const Encode encode = reinterpret_cast<Encode>(fn);
  const long long rows = 16LL * 32768;
  const long long max_row = 4128;
  uint8_t* buf;
  CK(cudaMalloc(&buf, rows * max_row));
  CK(cudaMemset(buf, 1, rows * max_row));
  CUtensorMap* dmaps;
  CK(cudaMalloc(&dmaps, 8 * sizeof(CUtensorMap)));
  CK(cudaFuncSetAttribute(stage_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 110 * 1024));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  struct Layout {
    const char* name;
    long long row_bytes;
    std::vector<Slice> slices;
  };
  std::vector<Slice> l2;
  for (int b = 0; b < 4; ++b) l2.push_back({1664 + 640 * b, std::min(640, 4128 - (1664 + 640 * b))});
  const std::vector<Layout> layouts = {{"llama2 values, 4 blocks", 4128, l2},
                                       {"llama3 values, 1 block", 1040, {{416, 624}}}};
  const bool once = std::getenv("TSBW_ONCE") != nullptr;
  std::printf("| layout | method | item rows | MB | us | GB/s | %% of 4.8 TB/s |\n|---|---|---|---|---|---|---|\n");
  for (const Layout& lay : layouts) {
    for (int method = 0; method < kMethods; ++method) {
      for (int item_rows : {2048, 8192}) {
        Job j{};
        j.base = buf;
        j.row_stride = lay.row_bytes;
        j.item_rows = item_rows;
        j.n_blocks = static_cast<int>(lay.slices.size());
        j.method = method;
        j.maps = dmaps;
        long long bytes = 0;
        int max_stage = 0;
        std::vector<CUtensorMap> maps(j.n_blocks);
        for (int b = 0; b < j.n_blocks; ++b) {
          const Slice s = lay.slices[b];
          j.s[b] = s;
          bytes += static_cast<long long>(s.len) * rows;
          const int sstride = method == kTmaFit ? s.len : s.len + 16;
          max_stage = std::max(max_stage, (kTile * sstride + 127) / 128 * 128);
          if (method == kTmaPad || method == kTmaFit) {
            const cuuint64_t dims[2] = {static_cast<cuuint64_t>(s.len / 4), static_cast<cuuint64_t>(rows)};
            const cuuint64_t strides[1] = {static_cast<cuuint64_t>(lay.row_bytes)};
            const cuuint32_t box[2] = {static_cast<cuuint32_t>(sstride / 4), kTile};
            const cuuint32_t es[2] = {1, 1};
            const CUresult r = encode(&maps[b], CU_TENSOR_MAP_DATA_TYPE_UINT32, 2, buf + s.off, dims, strides, box,
                                      es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                      CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
            if (r != CUDA_SUCCESS) {
              std::printf("encode failed %d (%s %s)\n", static_cast<int>(r), lay.name, kMethodName[method]);
              std::exit(1);
            }
          }
        }
        if (method == kTmaPad || method == kTmaFit)
          CK(cudaMemcpy(dmaps, maps.data(), maps.size() * sizeof(CUtensorMap), cudaMemcpyHostToDevice));
        const int smem = kStages * max_stage + 64;
        const int grid = static_cast<int>(rows / item_rows) * j.n_blocks;
        auto launch = [&] { stage_kernel<<<grid, 256, smem>>>(j); };
        if (once) {
          launch();
          CK(cudaDeviceSynchronize());
          std::printf("%s | %s | %d\n", lay.name, kMethodName[method], item_rows);
          continue;
        }
        for (int w = 0; w < 3; ++w) launch();
        CK(cudaDeviceSynchronize());
        std::vector<float> t;
        for (int r = 0; r < 15; ++r) {
          CK(cudaEventRecord(e0));
          launch();
          CK(cudaEventRecord(e1));
          CK(cudaEventSynchronize(e1));
          float ms;
          CK(cudaEventElapsedTime(&ms, e0, e1));
          t.push_back(ms);
        }
        std::sort(t.begin(), t.end());
        const double us = t[t.size() / 2] * 1e3, gbs = bytes / us * 1e-3;
        std::printf("| %s | %s | %d | %.1f | %.1f | %.0f | %.1f%% |\n", lay.name, kMethodName[method], item_rows,
                    bytes / 1e6, us, gbs, gbs / 4800 * 100);
      }
    }
  }
  return 0;
}
