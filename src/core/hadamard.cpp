// Block Walsh-Hadamard rotations (hadamard.h). The explicit matrix exists for tests and for
// anyone who wants to look at it; folding into factors uses the fast transform, O(p log p) per
// vector, because a joint value group can have a rank of G*D (a thousand channels or more).
#include "core/hadamard.h"

#include <cmath>
#include <cstddef>

#include "core/error.h"

namespace starkv {
namespace {

// splitmix64: a tiny, well-mixed generator; the sign flips only need to be reproducible.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The p random signs of the rotation for `seed`: sign j multiplies column j of H_p.
std::vector<double> random_signs(int32_t p, uint64_t seed) {
  uint64_t state = seed;
  std::vector<double> signs(static_cast<size_t>(p));
  for (double& s : signs) s = (splitmix64(state) & 1u) ? -1.0 : 1.0;
  return signs;
}

// Sylvester's H_p (entries +-1, symmetric) applied in place to a vector of p = 2^k entries.
void fast_walsh_hadamard(double* v, int32_t p) {
  for (int32_t len = 1; len < p; len *= 2) {
    for (int32_t i = 0; i < p; i += 2 * len) {
      for (int32_t j = i; j < i + len; ++j) {
        const double a = v[j], b = v[j + len];
        v[j] = a + b;
        v[j + len] = a - b;
      }
    }
  }
}

// Seeds of a group's two blocks. Distinct constants keep the outlier and inlier sign patterns
// independent; splitmix64 spreads them so nearby group seeds do not give related patterns.
uint64_t block_seed(uint64_t group_seed, uint64_t which) {
  uint64_t state = group_seed ^ which;
  return splitmix64(state);
}
constexpr uint64_t kOutlierBlock = 0x6f75746c69657273ULL;  // "outliers"
constexpr uint64_t kInlierBlock = 0x696e6c6965727321ULL;   // "inliers!"

// Rotates channels [first, first + m) of a group's factors by the block's R = H_p·diag(s)/sqrt(p)
// (identity past p): every row x of down becomes x·R, every column u of up becomes R^T·u.
// Accumulates in double and rounds once, so folding adds at most one float rounding per entry.
void fold_one_block(std::vector<float>& down, std::vector<float>& up, int32_t in_dim,
                    int32_t rank, int32_t first, int32_t m, uint64_t seed) {
  const int32_t p = largest_power_of_two_at_most(m);
  if (p == 0) return;
  const std::vector<double> signs = random_signs(p, seed);
  const double norm = 1.0 / std::sqrt(static_cast<double>(p));
  std::vector<double> v(static_cast<size_t>(p));
  for (int32_t i = 0; i < in_dim; ++i) {
    // x·H·D: H is symmetric, so the row transforms like a column; then column j gets sign j.
    float* row = down.data() + static_cast<size_t>(i) * rank + first;
    for (int32_t j = 0; j < p; ++j) v[j] = row[j];
    fast_walsh_hadamard(v.data(), p);
    for (int32_t j = 0; j < p; ++j) row[j] = static_cast<float>(v[j] * signs[j] * norm);
  }
  for (int32_t c = 0; c < in_dim; ++c) {
    // R^T·u = D·H·u: transform the column, then row j gets sign j.
    float* column = up.data() + static_cast<size_t>(first) * in_dim + c;
    for (int32_t j = 0; j < p; ++j) v[j] = column[static_cast<size_t>(j) * in_dim];
    fast_walsh_hadamard(v.data(), p);
    for (int32_t j = 0; j < p; ++j) {
      column[static_cast<size_t>(j) * in_dim] = static_cast<float>(signs[j] * v[j] * norm);
    }
  }
}

}  // namespace

int32_t largest_power_of_two_at_most(int32_t m) {
  if (m <= 0) return 0;
  int32_t p = 1;
  while (p <= m / 2) p *= 2;
  return p;
}

std::vector<float> block_hadamard_matrix(int32_t m, uint64_t seed) {
  require(m >= 0, STARKV_ERR_INVALID_ARGUMENT, "a Hadamard block cannot have a negative size");
  std::vector<float> r(static_cast<size_t>(m) * static_cast<size_t>(m), 0.0f);
  const int32_t p = largest_power_of_two_at_most(m);
  const std::vector<double> signs = random_signs(p, seed);
  const double norm = p > 0 ? 1.0 / std::sqrt(static_cast<double>(p)) : 0.0;
  // R[i][j] = H_p[i][j] * s[j] / sqrt(p), with Sylvester's H_p[i][j] = (-1)^popcount(i & j).
  for (int32_t i = 0; i < p; ++i) {
    for (int32_t j = 0; j < p; ++j) {
      const bool negative = __builtin_popcount(static_cast<uint32_t>(i & j)) & 1;
      r[static_cast<size_t>(i) * m + j] = static_cast<float>((negative ? -norm : norm) * signs[j]);
    }
  }
  for (int32_t i = p; i < m; ++i) r[static_cast<size_t>(i) * m + i] = 1.0f;
  return r;
}

std::vector<float> block_hadamard_matrix_for_group(int32_t m, uint64_t group_seed, bool outlier) {
  return block_hadamard_matrix(m, block_seed(group_seed, outlier ? kOutlierBlock : kInlierBlock));
}

void fold_block_rotations(std::vector<float>& down, std::vector<float>& up, int32_t in_dim,
                          int32_t rank, int32_t n_outlier, uint64_t seed) {
  const size_t n = static_cast<size_t>(in_dim) * static_cast<size_t>(rank);
  require(in_dim >= 0 && rank >= 0 && n_outlier >= 0 && n_outlier <= rank && down.size() == n &&
              up.size() == n,
          STARKV_ERR_INVALID_ARGUMENT, "fold_block_rotations: factor sizes do not match the rank");
  fold_one_block(down, up, in_dim, rank, 0, n_outlier, block_seed(seed, kOutlierBlock));
  fold_one_block(down, up, in_dim, rank, n_outlier, rank - n_outlier, block_seed(seed, kInlierBlock));
}

}  // namespace starkv
