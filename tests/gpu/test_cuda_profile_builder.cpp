// Profile building on the GPU (cuBLAS + cuSOLVER, src/cuda/cuda_spectrum_solver.cpp) against the
// CPU's LAPACK path.
//
// Tolerances: the GPU takes singular values as square roots of the Gram matrix's eigenvalues, in
// double. An eigenvalue is exact to ~n·eps·σ_max², so σ_i is exact to ~n·eps·σ_max²/σ_i; over the
// top of a spectrum (σ_i ≥ 1e-3 σ_max) that is far below 1e-8 σ_max; below it, down to zero
// values past the rank, the error grows to ~sqrt(n·eps)·σ_max < 1e-6 σ_max. Bases are stored in fp32
// (relative 2^-24 per entry), so a basis vector satisfies ‖A v‖ = σ within ~1e-6 σ_max and the
// basis is orthonormal to ~1e-6. Ranks come from the same spectra and the same optimizer, so they
// match exactly unless two candidates tie (the synthetic model's heads are far from ties).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/spectrum_solver.h"
#include "support/api_fixtures.h"
#include "support/skip_without_gpu.h"
#include "support/synthetic_model.h"

using namespace starkv_test;

namespace {

std::vector<double> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d;
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

// Checks one GPU spectrum against the CPU's and against the matrix itself.
void expect_same_spectrum(const double* a, int64_t rows, int32_t n,
                          const starkv::RightSingularVectors& cpu,
                          const starkv::RightSingularVectors& gpu) {
  ASSERT_EQ(gpu.sigma.size(), static_cast<size_t>(n));
  ASSERT_EQ(gpu.basis.size(), static_cast<size_t>(n) * n);
  const double top = cpu.sigma[0];
  for (int32_t k = 0; k < n; ++k) {
    // Past the top of the spectrum (and for zero values past the rank) the Gram route's error
    // is ~sqrt(n·eps)·σ_max instead.
    const double tolerance = cpu.sigma[k] > 1e-3 * top ? 1e-8 * top : 1e-6 * top;
    EXPECT_NEAR(gpu.sigma[k], cpu.sigma[k], tolerance) << "sigma " << k;
    // ‖A v_k‖ = σ_k: v_k is a right singular vector for that value.
    double norm2 = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0.0;
      for (int32_t i = 0; i < n; ++i) dot += a[r * n + i] * gpu.basis[static_cast<size_t>(i) * n + k];
      norm2 += dot * dot;
    }
    EXPECT_NEAR(std::sqrt(norm2), gpu.sigma[k], 2e-6 * top) << "vector " << k;
  }
  for (int32_t j = 0; j < n; j += 7) {
    for (int32_t k = 0; k < n; k += 5) {
      double dot = 0.0;
      for (int32_t i = 0; i < n; ++i) {
        dot += double(gpu.basis[static_cast<size_t>(i) * n + j]) *
               gpu.basis[static_cast<size_t>(i) * n + k];
      }
      EXPECT_NEAR(dot, j == k ? 1.0 : 0.0, 2e-6) << "columns " << j << ", " << k;
    }
  }
}

TEST(CudaProfileBuilding, BatchedAndSingleSpectraMatchLapack) {
  SKIP_WITHOUT_GPU();
  auto gpu = starkv::make_cuda_spectrum_solver(0);
  starkv::SpectrumSolver& cpu = starkv::cpu_spectrum_solver();
  // Per-head key groups (a batch of 4, 300 x 64), a joint value group (1 of 300 x 256), and a
  // short-and-wide matrix (fewer rows than columns: zero singular values past the rank).
  struct Case {
    int64_t batch, rows;
    int32_t n;
  };
  for (const Case c : {Case{4, 300, 64}, Case{1, 300, 256}, Case{3, 40, 128}}) {
    SCOPED_TRACE("batch " + std::to_string(c.batch) + ", " + std::to_string(c.rows) + " x " +
                 std::to_string(c.n));
    const std::vector<double> a =
        gaussian(static_cast<size_t>(c.batch * c.rows * c.n), static_cast<uint32_t>(c.n));
    const auto want = cpu.right_singular_vectors(a, c.batch, c.rows, c.n);
    const auto got = gpu->right_singular_vectors(a, c.batch, c.rows, c.n);
    ASSERT_EQ(got.size(), static_cast<size_t>(c.batch));
    for (int64_t b = 0; b < c.batch; ++b) {
      expect_same_spectrum(a.data() + b * c.rows * c.n, c.rows, c.n, want[b], got[b]);
    }
  }
}

TEST(CudaProfileBuilding, CalibrationProductMatchesBlas) {
  SKIP_WITHOUT_GPU();
  auto gpu = starkv::make_cuda_spectrum_solver(0);
  const int64_t m = 257, k = 96, n = 130;
  const std::vector<double> a = gaussian(m * k, 1), b = gaussian(k * n, 2);
  std::vector<double> want(m * n), got(m * n, -1.0);
  starkv::cpu_spectrum_solver().multiply(m, n, k, a.data(), b.data(), want.data());
  gpu->multiply(m, n, k, a.data(), b.data(), got.data());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-11) << i;
}

TEST(CudaProfileBuilding, NonFiniteInputIsRefused) {
  SKIP_WITHOUT_GPU();
  auto gpu = starkv::make_cuda_spectrum_solver(0);
  std::vector<double> a = gaussian(64 * 16, 3);
  a[5] = std::nan("");
  try {
    gpu->right_singular_vectors(a, 1, 64, 16);
    FAIL() << "NaN accepted";
  } catch (const starkv::Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_NUMERICAL);
  }
}

// The whole build through the public API on a CPU context and on a CUDA context: same ranks, same
// sizes, same key factors.
TEST(CudaProfileBuilding, ProfilesBuiltOnTheGpuMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  // The contrast model's shape and key heads, with value heads of distinct spectra and the
  // default seed (the configuration run on the H200).
  SyntheticModelSpec spec = contrast_model_spec();
  spec.value_decay = {{8, 4, 2, 1}, {6, 3, 2, 1}};
  spec.seed = SyntheticModelSpec{}.seed;
  const SyntheticModel model(spec);
  const std::vector<float> calibration = model.hidden_states(256, 7);

  starkv_context_params cpu_params = starkv_context_params_default();
  starkv_context_params cuda_params = starkv_context_params_default();
  cuda_params.backend = STARKV_BACKEND_CUDA;
  starkv_context *cpu_ctx = nullptr, *cuda_ctx = nullptr;
  ASSERT_EQ(starkv_context_create(&cpu_params, &cpu_ctx), STARKV_OK);
  ASSERT_EQ(starkv_context_create(&cuda_params, &cuda_ctx), STARKV_OK) << starkv_last_error();

  for (starkv_rank_allocator allocator : {STARKV_ALLOC_SOFT_THRESHOLD, STARKV_ALLOC_STATIC}) {
    for (bool calibrated : {false, true}) {
      SCOPED_TRACE(std::string(allocator == STARKV_ALLOC_STATIC ? "static" : "soft-threshold") +
                   (calibrated ? ", calibrated" : ", weights only"));
      starkv_profile_params p = model.profile_params();
      p.allocator = allocator;
      p.target_compression = 0.75f;
      starkv_profile* built[2] = {nullptr, nullptr};
      starkv_context* contexts[2] = {cpu_ctx, cuda_ctx};
      for (int i = 0; i < 2; ++i) {
        starkv_profile_builder* b = nullptr;
        ASSERT_EQ(starkv_profile_builder_create(contexts[i], &p, &b), STARKV_OK)
            << starkv_last_error();
        for (int32_t l = 0; l < spec.n_layers; ++l) {
          const starkv_layer_data d = model.layer_data(l, calibrated ? &calibration : nullptr);
          ASSERT_EQ(starkv_profile_builder_add_layer(b, l, &d), STARKV_OK) << starkv_last_error();
        }
        ASSERT_EQ(starkv_profile_builder_finish(b, &built[i]), STARKV_OK) << starkv_last_error();
        starkv_profile_builder_destroy(b);
      }
      starkv_profile_info cpu_info = starkv_profile_info_default(),
                          gpu_info = starkv_profile_info_default();
      ASSERT_EQ(starkv_profile_get_info(built[0], &cpu_info), STARKV_OK);
      ASSERT_EQ(starkv_profile_get_info(built[1], &gpu_info), STARKV_OK);
      EXPECT_EQ(gpu_info.bytes_per_token, cpu_info.bytes_per_token);
      for (int32_t l = 0; l < spec.n_layers; ++l) {
        for (starkv_tensor_kind kind : {STARKV_KEYS, STARKV_VALUES}) {
          int32_t want[8], got[8], n_want = 0, n_got = 0;
          ASSERT_EQ(starkv_profile_get_ranks(built[0], l, kind, want, 8, &n_want), STARKV_OK);
          ASSERT_EQ(starkv_profile_get_ranks(built[1], l, kind, got, 8, &n_got), STARKV_OK);
          ASSERT_EQ(n_got, n_want);
          for (int32_t g = 0; g < n_want; ++g) {
            EXPECT_EQ(got[g], want[g]) << "layer " << l << (kind == STARKV_KEYS ? " key" : " value")
                                       << " group " << g;
          }
        }
        // Key heads have well-separated spectra, so their bases agree entry by entry.
        for (int32_t g = 0; g < spec.attention.n_kv_heads; ++g) {
          size_t n = 0;
          ASSERT_EQ(starkv_profile_get_projection(built[0], l, STARKV_KEYS, g, STARKV_DOWN,
                                                  nullptr, 0, &n),
                    STARKV_OK);
          std::vector<float> want(n), got(n);
          ASSERT_EQ(starkv_profile_get_projection(built[0], l, STARKV_KEYS, g, STARKV_DOWN,
                                                  want.data(), n, &n),
                    STARKV_OK);
          ASSERT_EQ(starkv_profile_get_projection(built[1], l, STARKV_KEYS, g, STARKV_DOWN,
                                                  got.data(), n, &n),
                    STARKV_OK);
          double worst = 0.0;
          for (size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
          EXPECT_LT(worst, 1e-4) << "layer " << l << " key head " << g;
        }
      }
      starkv_profile_destroy(built[0]);
      starkv_profile_destroy(built[1]);
    }
  }
  starkv_context_destroy(cpu_ctx);
  starkv_context_destroy(cuda_ctx);
}

}  // namespace
