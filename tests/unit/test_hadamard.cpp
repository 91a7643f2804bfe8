// The block Walsh-Hadamard rotation (core/hadamard.h): its structure, orthonormality for every
// block size (powers of two and not), determinism in the seed, and folding into a group's factors
// without changing the product down·up.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/hadamard.h"

namespace starkv {
namespace {

std::vector<int32_t> block_sizes() {
  std::vector<int32_t> sizes;
  for (int32_t m = 0; m <= 40; ++m) sizes.push_back(m);
  for (int32_t m : {63, 64, 65, 96, 100, 127, 128, 129, 200, 255, 256, 257}) sizes.push_back(m);
  return sizes;
}

TEST(BlockHadamard, LargestPowerOfTwo) {
  EXPECT_EQ(largest_power_of_two_at_most(0), 0);
  EXPECT_EQ(largest_power_of_two_at_most(-5), 0);
  for (int32_t m = 1; m <= 5000; ++m) {
    const int32_t p = largest_power_of_two_at_most(m);
    ASSERT_GT(p, 0);
    EXPECT_EQ(p & (p - 1), 0) << m;                       // a power of two
    EXPECT_TRUE(p <= m && static_cast<int64_t>(p) * 2 > m) << m;  // the largest one
  }
  EXPECT_EQ(largest_power_of_two_at_most(1 << 30), 1 << 30);
  EXPECT_EQ(largest_power_of_two_at_most(2147483647), 1 << 30);
}

// R·R^T = I and R^T·R = I. Tolerance 1e-6: every entry is +-1/sqrt(p) rounded to float (relative
// error <= 2^-24), so an entry of R·R^T, a sum of p products accumulated in double, is off by at
// most p · (1/p) · 2·2^-24 = 2^-23 ≈ 1.2e-7.
TEST(BlockHadamard, IsOrthonormalForEveryBlockSize) {
  for (uint64_t seed : {0ULL, 1ULL, 0xdeadbeefULL}) {
    for (int32_t m : block_sizes()) {
      const std::vector<float> r = block_hadamard_matrix(m, seed);
      ASSERT_EQ(r.size(), static_cast<size_t>(m) * m);
      double worst = 0.0;
      for (int32_t i = 0; i < m; ++i) {
        for (int32_t j = 0; j < m; ++j) {
          double rrt = 0.0, rtr = 0.0;
          for (int32_t k = 0; k < m; ++k) {
            rrt += static_cast<double>(r[i * m + k]) * r[j * m + k];
            rtr += static_cast<double>(r[k * m + i]) * r[k * m + j];
          }
          const double identity = i == j ? 1.0 : 0.0;
          worst = std::max({worst, std::fabs(rrt - identity), std::fabs(rtr - identity)});
        }
      }
      EXPECT_LE(worst, 1e-6) << "m = " << m << ", seed = " << seed;
    }
  }
}

// The structure the header promises: H_p·diag(s)/sqrt(p) on the leading p channels, identity on
// the rest, nothing in between.
TEST(BlockHadamard, IsSylvesterTimesSignsOnThePowerOfTwoPart) {
  for (int32_t m : block_sizes()) {
    const int32_t p = largest_power_of_two_at_most(m);
    const std::vector<float> r = block_hadamard_matrix(m, 42);
    const float entry = p > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(p))) : 0.0f;
    for (int32_t i = 0; i < m; ++i) {
      for (int32_t j = 0; j < m; ++j) {
        const float v = r[i * m + j];
        if (i < p && j < p) {
          ASSERT_EQ(std::fabs(v), entry) << m << " " << i << " " << j;
          // Row 0 of H_p is all +1, so R[0][j] = s_j / sqrt(p), and R[i][j] / R[0][j] recovers
          // Sylvester's H_p[i][j] = (-1)^popcount(i & j).
          const int h = (v > 0) == (r[j] > 0) ? 1 : -1;
          ASSERT_EQ(h, (__builtin_popcount(static_cast<uint32_t>(i & j)) & 1) ? -1 : 1);
        } else {
          ASSERT_EQ(v, i == j ? 1.0f : 0.0f) << m << " " << i << " " << j;
        }
      }
    }
  }
}

TEST(BlockHadamard, SignsAreDeterministicInTheSeed) {
  EXPECT_EQ(block_hadamard_matrix(64, 7), block_hadamard_matrix(64, 7));
  EXPECT_NE(block_hadamard_matrix(64, 7), block_hadamard_matrix(64, 8));
  // The signs are not all the same (a generator stuck at one bit would give that).
  const std::vector<float> r = block_hadamard_matrix(64, 7);
  int negative = 0;
  for (int32_t j = 0; j < 64; ++j) negative += r[j] < 0;
  EXPECT_GT(negative, 8);
  EXPECT_LT(negative, 56);
  // A group's two blocks get different sign patterns from one group seed.
  EXPECT_NE(block_hadamard_matrix_for_group(64, 3, true), block_hadamard_matrix_for_group(64, 3, false));
}

struct Factors {
  std::vector<float> down, up;
};

Factors random_factors(int32_t in_dim, int32_t rank, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Factors f;
  f.down.resize(static_cast<size_t>(in_dim) * rank);
  f.up.resize(static_cast<size_t>(rank) * in_dim);
  for (float& x : f.down) x = normal(rng);
  for (float& x : f.up) x = normal(rng);
  return f;
}

// down·up in double: [in_dim x in_dim].
std::vector<double> product(const Factors& f, int32_t in_dim, int32_t rank) {
  std::vector<double> out(static_cast<size_t>(in_dim) * in_dim, 0.0);
  for (int32_t i = 0; i < in_dim; ++i) {
    for (int32_t k = 0; k < rank; ++k) {
      const double d = f.down[static_cast<size_t>(i) * rank + k];
      for (int32_t j = 0; j < in_dim; ++j) out[static_cast<size_t>(i) * in_dim + j] += d * f.up[static_cast<size_t>(k) * in_dim + j];
    }
  }
  return out;
}

struct FoldCase {
  int32_t in_dim, rank, n_outlier;
};

const FoldCase kFoldCases[] = {{16, 16, 3}, {16, 10, 2}, {12, 7, 0}, {12, 7, 7}, {32, 25, 5},
                               {64, 64, 12}, {64, 1, 0}, {64, 1, 1}, {40, 33, 6}, {8, 0, 0}};

// Folding keeps down·up. Tolerance: entries are N(0,1); folding rounds every entry once to float
// (relative 2^-24), so a product entry, a sum of `rank` terms of size ~1, moves by about
// sqrt(rank)·2^-23 typically and rank·2^-22 at worst; 1e-6·rank + 1e-6 covers the worst case.
TEST(BlockHadamard, FoldingKeepsTheProductOfTheFactors) {
  for (const FoldCase& c : kFoldCases) {
    Factors f = random_factors(c.in_dim, c.rank, static_cast<uint32_t>(c.rank * 31 + c.n_outlier));
    const std::vector<double> before = product(f, c.in_dim, c.rank);
    fold_block_rotations(f.down, f.up, c.in_dim, c.rank, c.n_outlier, 1234);
    const std::vector<double> after = product(f, c.in_dim, c.rank);
    double worst = 0.0;
    for (size_t i = 0; i < before.size(); ++i) worst = std::max(worst, std::fabs(after[i] - before[i]));
    EXPECT_LE(worst, 1e-6 * c.rank + 1e-6)
        << "in_dim " << c.in_dim << " rank " << c.rank << " n_outlier " << c.n_outlier;
  }
}

// Folding is exactly down·blockdiag(R_outlier, R_inlier) and blockdiag(...)^T·up, with the
// matrices block_hadamard_matrix_for_group documents: the outlier channels never mix with the
// inliers. Tolerance: the reference product runs in double over float entries, the fold rounds
// once to float: |diff| <= 2^-24·|value| + tiny; 1e-6·(1 + |value|) is comfortably above that for
// N(0,1) entries mixed by an orthonormal matrix.
TEST(BlockHadamard, FoldingAppliesEachBlocksOwnRotation) {
  const uint64_t seed = 99;
  for (const FoldCase& c : kFoldCases) {
    const Factors original = random_factors(c.in_dim, c.rank, 7);
    Factors folded = original;
    fold_block_rotations(folded.down, folded.up, c.in_dim, c.rank, c.n_outlier, seed);
    // The rotation of the whole latent row: block diagonal.
    std::vector<double> r(static_cast<size_t>(c.rank) * c.rank, 0.0);
    const int32_t n_in = c.rank - c.n_outlier;
    const std::vector<float> ro = block_hadamard_matrix_for_group(c.n_outlier, seed, true);
    const std::vector<float> ri = block_hadamard_matrix_for_group(n_in, seed, false);
    for (int32_t i = 0; i < c.n_outlier; ++i)
      for (int32_t j = 0; j < c.n_outlier; ++j) r[i * c.rank + j] = ro[i * c.n_outlier + j];
    for (int32_t i = 0; i < n_in; ++i)
      for (int32_t j = 0; j < n_in; ++j)
        r[(c.n_outlier + i) * c.rank + c.n_outlier + j] = ri[i * n_in + j];
    for (int32_t i = 0; i < c.in_dim; ++i) {
      for (int32_t j = 0; j < c.rank; ++j) {
        double down_r = 0.0, rt_up = 0.0;  // (down·R)[i][j] and (R^T·up)[j][i]
        for (int32_t k = 0; k < c.rank; ++k) {
          down_r += original.down[i * c.rank + k] * r[k * c.rank + j];
          rt_up += r[k * c.rank + j] * original.up[k * c.in_dim + i];
        }
        ASSERT_NEAR(folded.down[i * c.rank + j], down_r, 1e-6 * (1 + std::fabs(down_r)))
            << "rank " << c.rank << " down[" << i << "][" << j << "]";
        ASSERT_NEAR(folded.up[j * c.in_dim + i], rt_up, 1e-6 * (1 + std::fabs(rt_up)))
            << "rank " << c.rank << " up[" << j << "][" << i << "]";
      }
    }
  }
}

TEST(BlockHadamard, FoldingRejectsFactorsOfTheWrongSize) {
  Factors f = random_factors(8, 4, 1);
  f.up.pop_back();
  try {
    fold_block_rotations(f.down, f.up, 8, 4, 1, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_INVALID_ARGUMENT);
  }
  Factors g = random_factors(8, 4, 1);
  EXPECT_THROW(fold_block_rotations(g.down, g.up, 8, 4, 5, 0), Error);  // more outliers than rank
}

}  // namespace
}  // namespace starkv
