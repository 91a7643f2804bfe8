// Block Walsh-Hadamard rotation of a latent block (DESIGN §2.3): the largest power-of-two leading
// part p of a block of m channels is rotated by H_p * diag(signs) / sqrt(p) with random signs,
// the remaining m - p channels pass through. The rotation is orthonormal, so it folds into a
// group's factors offline (down' = down · R, up' = R^T · up) and costs nothing at run time.
#pragma once

#include <cstdint>
#include <vector>

namespace starkv {

// The m x m rotation matrix R (row-major) for a block, with signs drawn from `seed`.
std::vector<float> block_hadamard_matrix(int32_t m, uint64_t seed);

// The rotation fold_block_rotations applies to a group's outlier block (outlier = true) or inlier
// block, for the group's seed: each block's signs come from its own seed derived from it.
std::vector<float> block_hadamard_matrix_for_group(int32_t m, uint64_t group_seed, bool outlier);

// Largest power of two <= m (0 for m = 0).
int32_t largest_power_of_two_at_most(int32_t m);

// Folds the rotations of a group's outlier block [0, n_outlier) and inlier block
// [n_outlier, rank) into down ([in_dim x rank]) and up ([rank x in_dim]) in place.
void fold_block_rotations(std::vector<float>& down, std::vector<float>& up, int32_t in_dim,
                          int32_t rank, int32_t n_outlier, uint64_t seed);

}  // namespace starkv
