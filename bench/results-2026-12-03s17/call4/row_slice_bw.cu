// What DRAM bandwidth can a kernel reach when it reads slices of token rows, as the value kernel
// and the fold do, against the same bytes read contiguously? A probe, not part of the library.
// Rows: the Llama-2-like 75% fp16 layer's 4128-byte rows (keys [0, 1664), values [1664, 4128)),
// batch 16 x 32K tokens = 524288 rows (2.16 GB). Work items of `item_rows` rows; CTA = (item,
// block), the block fastest, as in decode_values_kernel. Each CTA reads, for each of its rows, the
// byte range [off(b), off(b) + len(b)) of that row (a "slice"); with `plane`, the same byte count
// from a region that holds those slices back to back (a block-major page layout).
// Methods: ldg (each thread keeps 8 independent 16-byte loads in flight) and cpasync (a 4-stage
// ring of 32-row tiles in shared memory, 16-byte cp.async.cg, as the value kernel stages).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                      \
  do {                                                                             \
    cudaError_t e_ = (x);                                                          \
    if (e_ != cudaSuccess) {                                                       \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));       \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

struct Slice {
  int off, len;  // bytes, multiples of 16
};
struct Job {
  const uint8_t* base;
  long long row_stride;  // bytes between rows (plane: = the slice's len)
  long long block_base_stride;  // plane: bytes between one block's regions
  int item_rows, n_blocks, plane;
  Slice s[8];
};

__device__ unsigned sink;

__global__ void __launch_bounds__(256) ldg_kernel(Job j) {
  const int item = blockIdx.x / j.n_blocks, b = blockIdx.x % j.n_blocks;
  const Slice sl = j.s[b];
  const int cpr = sl.len / 16;  // 16-byte chunks per row
  const int total = cpr * j.item_rows;
  const uint8_t* p0 = j.plane ? j.base + b * j.block_base_stride + (long long)item * j.item_rows * sl.len
                              : j.base + (long long)item * j.item_rows * j.row_stride + sl.off;
  const long long rs = j.plane ? sl.len : j.row_stride;
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (int i0 = threadIdx.x; i0 < total; i0 += 256 * 8) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int i = i0 + u * 256;
      if (i < total) {
        const int r = i / cpr, c = i - r * cpr;
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                     : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                     : "l"(p0 + r * rs + c * 16));
      } else {
        v[u] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < 8; ++u) acc.x ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc.x == 0x12345678u) sink = acc.x;
}

constexpr int kTile = 32, kStages = 4;
__global__ void __launch_bounds__(256, 2) cpasync_kernel(Job j) {
  extern __shared__ __align__(16) uint8_t sm[];
  const int item = blockIdx.x / j.n_blocks, b = blockIdx.x % j.n_blocks;
  const Slice sl = j.s[b];
  const int cpr = sl.len / 16;
  const uint8_t* p0 = j.plane ? j.base + b * j.block_base_stride + (long long)item * j.item_rows * sl.len
                              : j.base + (long long)item * j.item_rows * j.row_stride + sl.off;
  const long long rs = j.plane ? sl.len : j.row_stride;
  const int stage_bytes = kTile * (cpr * 16 + 16);  // rows an odd number of 16-B units apart
  const int sstride = cpr * 16 + 16;
  const int tiles = j.item_rows / kTile;
  auto issue = [&](int k) {
    if (k < tiles) {
      uint8_t* dst = sm + (k % kStages) * stage_bytes;
      for (int i = threadIdx.x; i < kTile * cpr; i += 256) {
        const int r = i / cpr, c = i - r * cpr;
        const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst + r * sstride + c * 16));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d),
                     "l"(p0 + (long long)(k * kTile + r) * rs + c * 16));
      }
    }
    asm volatile("cp.async.commit_group;");
  };
  for (int k = 0; k < kStages - 1; ++k) issue(k);
  unsigned acc = 0;
  for (int k = 0; k < tiles; ++k) {
    asm volatile("cp.async.wait_group %0;" ::"n"(kStages - 2));
    __syncthreads();
    const uint8_t* src = sm + (k % kStages) * stage_bytes;
    acc ^= reinterpret_cast<const unsigned*>(src + (threadIdx.x % kTile) * sstride)[threadIdx.x / kTile];
    issue(k + kStages - 1);
  }
  if (acc == 0x12345678u) sink = acc;
}

int main() {
  const long long rows = 16LL * 32768, row_bytes = 4128;
  const int key_bytes = 1664;
  uint8_t* buf;
  CK(cudaMalloc(&buf, rows * row_bytes));
  CK(cudaMemset(buf, 1, rows * row_bytes));
  CK(cudaFuncSetAttribute(cpasync_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 110 * 1024));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  struct Case {
    const char* name;
    std::vector<Slice> slices;
    int plane;
    int cluster = 0;  // 1: each item's blocks launched as one thread-block cluster
  };
  std::vector<Slice> vals2{{key_bytes, 1232}, {key_bytes + 1232, 1232}}, vals4, keys4, vals1{{key_bytes, int(row_bytes - key_bytes)}}, all1{{0, int(row_bytes)}};
  for (int b = 0; b < 4; ++b) {
    const int o = key_bytes + 640 * b;
    vals4.push_back({o, std::min(640, int(row_bytes) - o)});
    keys4.push_back({416 * b, 416});
  }
  std::vector<Case> cases = {{"whole rows (contiguous)", all1, 0},
                             {"value slices, 4 blocks (value kernel)", vals4, 0},
                             {"value slices, 4 blocks, one cluster per item", vals4, 0, 1},
                             {"value slices, 4 blocks, block-major plane", vals4, 1},
                             {"value slices, 2 blocks of 1232 B", vals2, 0},
                             {"value section, 1 block", vals1, 0},
                             {"key slices, 4 chunks of 416 B (fold)", keys4, 0},
                             {"key slices, 4 chunks, block-major plane", keys4, 1}};
  std::printf("| pattern | method | item rows | MB read | us | GB/s | %% of 4.8 TB/s |\n|---|---|---|---|---|---|---|\n");
  for (const Case& cs : cases) {
    for (int method = 0; method < 2; ++method) {
      for (int item_rows : {1024, 2048, 4096}) {
        Job j{};
        j.base = buf;
        j.row_stride = row_bytes;
        j.item_rows = item_rows;
        j.n_blocks = static_cast<int>(cs.slices.size());
        j.plane = cs.plane;
        long long bytes = 0;
        for (int b = 0; b < j.n_blocks; ++b) {
          j.s[b] = cs.slices[b];
          bytes += static_cast<long long>(cs.slices[b].len) * rows;
        }
        j.block_base_stride = static_cast<long long>(640) * rows;  // (vals2 never uses the plane)  // plane: each block's region
        const int grid = static_cast<int>(rows / item_rows) * j.n_blocks;
        int max_len = 0;
        for (auto& s : cs.slices) max_len = std::max(max_len, s.len);
        const int smem = kStages * kTile * (max_len + 16);
        if (method == 1 && smem > 110 * 1024) continue;
        auto launch = [&] {
          if (cs.cluster) {
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = dim3(grid);
            cfg.blockDim = dim3(256);
            cfg.dynamicSmemBytes = method == 0 ? 0 : smem;
            cudaLaunchAttribute attr[1];
            attr[0].id = cudaLaunchAttributeClusterDimension;
            attr[0].val.clusterDim.x = j.n_blocks;
            attr[0].val.clusterDim.y = 1;
            attr[0].val.clusterDim.z = 1;
            cfg.attrs = attr;
            cfg.numAttrs = 1;
            if (method == 0)
              CK(cudaLaunchKernelEx(&cfg, ldg_kernel, j));
            else
              CK(cudaLaunchKernelEx(&cfg, cpasync_kernel, j));
            return;
          }
          if (method == 0)
            ldg_kernel<<<grid, 256>>>(j);
          else
            cpasync_kernel<<<grid, 256, smem>>>(j);
        };
        if (std::getenv("RSBW_ONCE")) { launch(); CK(cudaDeviceSynchronize()); std::printf("%s | %s | %d\n", cs.name, method ? "cp.async" : "ldg", item_rows); continue; }
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
        std::printf("| %s | %s | %d | %.1f | %.1f | %.0f | %.1f%% |\n", cs.name, method ? "cp.async ring" : "ldg x8",
                    item_rows, bytes / 1e6, us, gbs, gbs / 4800 * 100);
      }
    }
  }
  return 0;
}
