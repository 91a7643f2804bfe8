#include "core/hadamard.h"

#include <cmath>

namespace starkv {
namespace {

// splitmix64: a tiny, well-mixed generator; the sign flips only need to be reproducible.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int parity(uint32_t x) { return __builtin_popcount(x) & 1; }

}  // namespace

int32_t largest_power_of_two_at_most(int32_t m) {
  if (m <= 0) return 0;
  int32_t p = 1;
  while (p * 2 <= m) p *= 2;
  return p;
}

std::vector<float> block_hadamard_matrix(int32_t m, uint64_t seed) {
  std::vector<float> r(static_cast<size_t>(m) * static_cast<size_t>(m), 0.0f);
  const int32_t p = largest_power_of_two_at_most(m);
  uint64_t state = seed;
  std::vector<float> signs(static_cast<size_t>(p));
  for (float& s : signs) s = (splitmix64(state) & 1u) ? -1.0f : 1.0f;
  // R[i][j] = signs[i] * H_p[i][j] / sqrt(p), with Sylvester's H_p[i][j] = (-1)^popcount(i & j):
  // a row vector x maps to x · R, flipping signs before the transform.
  const float norm = p > 0 ? 1.0f / std::sqrt(static_cast<float>(p)) : 0.0f;
  for (int32_t i = 0; i < p; ++i) {
    for (int32_t j = 0; j < p; ++j) {
      const float h = parity(static_cast<uint32_t>(i & j)) ? -norm : norm;
      r[static_cast<size_t>(i) * m + j] = signs[static_cast<size_t>(i)] * h;
    }
  }
  for (int32_t i = p; i < m; ++i) r[static_cast<size_t>(i) * m + i] = 1.0f;
  return r;
}

void fold_block_rotations(std::vector<float>& down, std::vector<float>& up, int32_t in_dim,
                          int32_t rank, int32_t n_outlier, uint64_t seed) {
  struct Block {
    int32_t first, size;
    uint64_t seed;
  };
  const Block blocks[2] = {{0, n_outlier, seed ^ 0x6f75746c69657273ULL},
                           {n_outlier, rank - n_outlier, seed ^ 0x696e6c6965727321ULL}};
  for (const Block& b : blocks) {
    if (b.size <= 1) continue;
    const std::vector<float> r = block_hadamard_matrix(b.size, b.seed);
    std::vector<double> tmp(static_cast<size_t>(b.size));
    // down' = down · R on the block's columns (each row of down is a row vector).
    for (int32_t i = 0; i < in_dim; ++i) {
      float* row = down.data() + static_cast<size_t>(i) * rank + b.first;
      for (int32_t j = 0; j < b.size; ++j) {
        double acc = 0.0;
        for (int32_t k = 0; k < b.size; ++k) acc += static_cast<double>(row[k]) * r[static_cast<size_t>(k) * b.size + j];
        tmp[static_cast<size_t>(j)] = acc;
      }
      for (int32_t j = 0; j < b.size; ++j) row[j] = static_cast<float>(tmp[static_cast<size_t>(j)]);
    }
    // up' = R^T · up on the block's rows: column c of up mixes as R^T.
    for (int32_t c = 0; c < in_dim; ++c) {
      for (int32_t j = 0; j < b.size; ++j) {
        double acc = 0.0;
        for (int32_t k = 0; k < b.size; ++k) {
          acc += static_cast<double>(r[static_cast<size_t>(k) * b.size + j]) *
                 up[static_cast<size_t>(b.first + k) * in_dim + c];
        }
        tmp[static_cast<size_t>(j)] = acc;
      }
      for (int32_t j = 0; j < b.size; ++j) up[static_cast<size_t>(b.first + j) * in_dim + c] = static_cast<float>(tmp[static_cast<size_t>(j)]);
    }
  }
}

}  // namespace starkv
