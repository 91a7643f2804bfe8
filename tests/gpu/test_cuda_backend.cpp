// The CUDA backend against the CPU backend (the oracle), through the public API: the same profile,
// the same appended data, the same queries, on a CPU context and a CUDA context side by side.
//
// Tolerances and where they come from:
//   - 16-bit latents: the GPU reconstructs keys on tensor cores from fp16 latents times fp16
//     up-projections (each rounded once, relative 2^-11) and weights values by fp16
//     probabilities; everything else is fp32. Relative error of the outputs <= 1e-3.
//   - quantized rows: the encoder runs the CPU's formula with correctly rounded division, so rows
//     written from identical latents must be BIT-EXACT (compared through exported snapshots).
//     Attention over identical rows then differs only by the fp16 rounding of decoded latents
//     (relative 2^-11 of a value, far below one quantization step): <= 2e-3.
//   - bf16 outputs: one bf16 rounding (relative 2^-8): <= 8e-3.
// Every test skips when no CUDA device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "api/handles.h"
#include "core/snapshot_format.h"
#include "cuda/device_layer.h"
#include "support/api_fixtures.h"
#include "support/reference_attention.h"
#include "support/skip_without_gpu.h"

using namespace starkv_test;

namespace {

// A device copy of a host vector, freed on scope exit.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr_, std::max<size_t>(1, n_) * sizeof(T)), cudaSuccess);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  explicit DeviceArray(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&ptr_, std::max<size_t>(1, n_) * sizeof(T)), cudaSuccess);
    // Poison: every output element must be written.
    EXPECT_EQ(cudaMemset(ptr_, 0xff, std::max<size_t>(1, n_) * sizeof(T)), cudaSuccess);
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return static_cast<T*>(ptr_); }
  std::vector<T> to_host() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaMemcpy(h.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }

 private:
  void* ptr_ = nullptr;
  size_t n_ = 0;
};

ContextPtr make_cuda_context() {
  starkv_context_params cp = starkv_context_params_default();
  cp.backend = STARKV_BACKEND_CUDA;
  starkv_context* ctx = nullptr;
  EXPECT_EQ(starkv_context_create(&cp, &ctx), STARKV_OK) << starkv_last_error();
  return ContextPtr(ctx);
}

struct ProfileSpec {
  int32_t H = 8, G = 2, D = 64;
  starkv_rope_style rope = STARKV_ROPE_NEOX;
  int32_t rotary_dim = 0;
  float theta = 10000.0f;
  starkv_decomposition key_decomp = STARKV_DECOMP_HEADWISE;
  starkv_decomposition value_decomp = STARKV_DECOMP_JOINT;
  std::vector<int32_t> key_ranks;    // G entries (HD) or 1 (JD); empty: defaults
  std::vector<int32_t> value_ranks;  // G entries (HD) or 1 (JD)
  int32_t inlier_bits = 16, outlier_bits = 16;
  int32_t nibbles = 0;
  int32_t n_layers = 2;
  std::vector<int32_t> uncompressed_layers;  // kept whole by the builder (identity, fp16)
};

std::vector<float> random_uniform(size_t n, uint32_t seed, float amplitude) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amplitude, amplitude);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Random (non-orthonormal) factors with the given ranks; up = transpose of down.
ProfilePtr make_random_profile(const ProfileSpec& spec, uint32_t seed) {
  starkv_profile_params p = starkv_profile_params_default();
  p.n_layers = spec.n_layers;
  p.n_heads = spec.H;
  p.n_kv_heads = spec.G;
  p.head_dim = spec.D;
  p.rope_style = spec.rope;
  p.rope_dim = spec.rotary_dim;
  p.rope_theta = spec.theta;
  p.inlier_bits = spec.inlier_bits;
  p.outlier_bits = spec.outlier_bits;
  p.pack_3bit_in_nibbles = spec.nibbles;
  p.key_decomposition = spec.key_decomp;
  p.value_decomposition = spec.value_decomp;
  p.uncompressed_layers = spec.uncompressed_layers.data();
  p.n_uncompressed_layers = static_cast<int32_t>(spec.uncompressed_layers.size());
  starkv_profile_builder* builder = nullptr;
  EXPECT_EQ(starkv_profile_builder_create(nullptr, &p, &builder), STARKV_OK) << starkv_last_error();
  const int32_t D = spec.D, GD = spec.G * spec.D;
  std::vector<int32_t> kr = spec.key_ranks, vr = spec.value_ranks;
  if (kr.empty()) {
    if (spec.key_decomp == STARKV_DECOMP_HEADWISE) {
      for (int32_t g = 0; g < spec.G; ++g)
        kr.push_back(std::min(D, std::max(1, D / 4 + 3 * g - 1)));
    } else {
      kr.push_back(GD / 4 + 5);
    }
  }
  if (vr.empty()) {
    if (spec.value_decomp == STARKV_DECOMP_JOINT) {
      vr.push_back(GD / 3 + 1);
    } else {
      for (int32_t g = 0; g < spec.G; ++g) vr.push_back(std::min(D, std::max(1, D / 3 + 2 * g)));
    }
  }
  for (int32_t l = 0; l < spec.n_layers; ++l) {
    if (std::find(spec.uncompressed_layers.begin(), spec.uncompressed_layers.end(), l) !=
        spec.uncompressed_layers.end()) {
      continue;  // the builder makes its identity factors
    }
    const int32_t kin = spec.key_decomp == STARKV_DECOMP_HEADWISE ? D : GD;
    const int32_t vin = spec.value_decomp == STARKV_DECOMP_HEADWISE ? D : GD;
    const size_t kn =
        static_cast<size_t>(kin) * static_cast<size_t>(std::accumulate(kr.begin(), kr.end(), 0));
    const size_t vn =
        static_cast<size_t>(vin) * static_cast<size_t>(std::accumulate(vr.begin(), vr.end(), 0));
    std::vector<float> kd = random_uniform(kn, seed + 17 * l + 1, std::sqrt(3.0f / kin));
    std::vector<float> vd = random_uniform(vn, seed + 17 * l + 2, std::sqrt(3.0f / vin));
    starkv_layer_factors f = starkv_layer_factors_default();
    f.key_decomposition = spec.key_decomp;
    f.value_decomposition = spec.value_decomp;
    f.key_ranks = kr.data();
    f.key_down = kd.data();
    f.value_ranks = vr.data();
    f.value_down = vd.data();
    EXPECT_EQ(starkv_profile_builder_set_layer_factors(builder, l, &f), STARKV_OK)
        << starkv_last_error();
  }
  starkv_profile* profile = nullptr;
  EXPECT_EQ(starkv_profile_builder_finish(builder, &profile), STARKV_OK) << starkv_last_error();
  starkv_profile_builder_destroy(builder);
  return ProfilePtr(profile);
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b);

// Per-query, per-head errors, printed when a comparison fails (to see which part is wrong).
std::string error_breakdown(const std::vector<float>& gpu, const std::vector<float>& cpu, int32_t H,
                            int32_t D) {
  std::string s;
  const size_t nq = cpu.size() / (static_cast<size_t>(H) * D);
  for (size_t q = 0; q < nq; ++q) {
    s += "q" + std::to_string(q) + ":";
    for (int32_t h = 0; h < H && h < 8; ++h) {
      const size_t o = (q * H + h) * D;
      std::vector<float> a(gpu.begin() + o, gpu.begin() + o + D),
          b(cpu.begin() + o, cpu.begin() + o + D);
      char buf[32];
      std::snprintf(buf, sizeof buf, " %.1e", rel_error(a, b));
      s += buf;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, " (g0 %.4f c0 %.4f)\n", gpu[q * H * D], cpu[q * H * D]);
    s += buf;
  }
  return s;
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

float half_to_float_host(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  uint32_t u;
  if (e == 0x1f)
    u = sign | 0x7f800000u | (m << 13);
  else if (e != 0)
    u = sign | ((e + 112) << 23) | (m << 13);
  else {
    const float f = std::ldexp(static_cast<float>(m), -24);
    return sign ? -f : f;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A CPU pool and a CUDA pool on one profile, fed the same data.
class Twin {
 public:
  Twin(const ProfileSpec& spec, uint32_t seed, int32_t page_tokens = 16, int64_t pages = 512,
       int32_t max_sequences = 64)
      : spec_(spec),
        cpu_ctx_(make_cpu_context()),
        gpu_ctx_(make_cuda_context()),
        profile_(make_random_profile(spec, seed)) {
    cpu_ = make_pool(cpu_ctx_.get(), profile_.get(), page_tokens, pages, max_sequences);
    gpu_ = make_pool(gpu_ctx_.get(), profile_.get(), page_tokens, pages, max_sequences);
  }

  size_t kv_width() const { return static_cast<size_t>(spec_.G) * spec_.D; }
  size_t q_width() const { return static_cast<size_t>(spec_.H) * spec_.D; }

  // One new sequence in each pool; returns {cpu id, gpu id}.
  std::pair<int32_t, int32_t> new_sequence() {
    int32_t a = 0, b = 0;
    EXPECT_EQ(starkv_seq_create(cpu_.get(), &a), STARKV_OK);
    EXPECT_EQ(starkv_seq_create(gpu_.get(), &b), STARKV_OK);
    return {a, b};
  }

  // Appends n tokens of keys/values to every layer of (cpu, gpu) sequence pairs, in one batch per
  // layer with tokens interleaved over the sequences.
  void append(const std::vector<std::pair<int32_t, int32_t>>& seqs,
              const std::vector<int32_t>& counts, uint32_t seed, float amplitude = 1.0f) {
    for (int32_t l = 0; l < spec_.n_layers; ++l) {
      std::vector<int32_t> cpu_ids, gpu_ids, pos;
      std::vector<float> k, v;
      std::vector<int32_t> left = counts;
      std::vector<int32_t> next(seqs.size());
      for (size_t i = 0; i < seqs.size(); ++i) next[i] = next_position(seqs[i].first, l);
      bool any = true;
      while (any) {
        any = false;
        for (size_t i = 0; i < seqs.size(); ++i) {
          if (left[i] == 0) continue;
          any = true;
          cpu_ids.push_back(seqs[i].first);
          gpu_ids.push_back(seqs[i].second);
          pos.push_back(next[i]++);
          --left[i];
        }
      }
      const size_t n = cpu_ids.size();
      k = random_half_exact(n * kv_width(), seed + 101 * l, amplitude);
      v = random_half_exact(n * kv_width(), seed + 101 * l + 7, amplitude);
      ASSERT_EQ(starkv_append(cpu_.get(), l, static_cast<int32_t>(n), cpu_ids.data(), pos.data(),
                              k.data(), v.data(), STARKV_DTYPE_F32),
                STARKV_OK)
          << starkv_last_error();
      DeviceArray<float> dk(k), dv(v);
      ASSERT_EQ(starkv_append(gpu_.get(), l, static_cast<int32_t>(n), gpu_ids.data(), pos.data(),
                              dk.get(), dv.get(), STARKV_DTYPE_F32),
                STARKV_OK)
          << starkv_last_error();
      for (size_t i = 0; i < n; ++i) ++lengths_[{cpu_ids[i], l}];
    }
  }

  // The same with latents: identical inputs to both encoders.
  void append_latents(const std::vector<std::pair<int32_t, int32_t>>& seqs, int32_t count,
                      uint32_t seed, float amplitude) {
    for (int32_t l = 0; l < spec_.n_layers; ++l) {
      int32_t width = 0;
      ASSERT_EQ(starkv_profile_latent_width(profile_.get(), l, &width), STARKV_OK);
      for (const auto& s : seqs) {
        std::vector<int32_t> cpu_ids(static_cast<size_t>(count), s.first);
        std::vector<int32_t> gpu_ids(static_cast<size_t>(count), s.second);
        std::vector<int32_t> pos(static_cast<size_t>(count));
        for (int32_t i = 0; i < count; ++i)
          pos[static_cast<size_t>(i)] = next_position(s.first, l) + i;
        std::vector<float> lat =
            random_uniform(static_cast<size_t>(count) * width,
                           seed + 31 * l + static_cast<uint32_t>(s.first), amplitude);
        // Structure: a few channels with large outliers, some exact zeros, a zero row.
        for (size_t i = 0; i < lat.size(); i += 7) lat[i] *= 9.0f;
        for (size_t i = 3; i < lat.size(); i += 11) lat[i] = 0.0f;
        if (count > 2) std::fill(lat.begin() + width, lat.begin() + 2 * width, 0.0f);
        ASSERT_EQ(starkv_append_latents(cpu_.get(), l, count, cpu_ids.data(), pos.data(),
                                        lat.data(), STARKV_DTYPE_F32),
                  STARKV_OK)
            << starkv_last_error();
        DeviceArray<float> dl(lat);
        ASSERT_EQ(starkv_append_latents(gpu_.get(), l, count, gpu_ids.data(), pos.data(), dl.get(),
                                        STARKV_DTYPE_F32),
                  STARKV_OK)
            << starkv_last_error();
        lengths_[{s.first, l}] += count;
      }
    }
  }

  // Attends on both backends; returns {cpu out, gpu out} as floats.
  std::pair<std::vector<float>, std::vector<float>> attend(
      int32_t layer, const std::vector<std::pair<int32_t, int32_t>>& seqs,
      const std::vector<int32_t>& kv_lengths, uint32_t seed,
      starkv_dtype q_dtype = STARKV_DTYPE_F32, starkv_dtype out_dtype = STARKV_DTYPE_F32,
      float q_amplitude = 1.0f) {
    const size_t n = seqs.size();
    std::vector<float> q = random_half_exact(n * q_width(), seed, q_amplitude);
    std::vector<int32_t> cpu_ids, gpu_ids;
    for (const auto& s : seqs) {
      cpu_ids.push_back(s.first);
      gpu_ids.push_back(s.second);
    }
    std::vector<float> cpu_out(n * q_width());
    EXPECT_EQ(
        starkv_attend(cpu_.get(), layer, static_cast<int32_t>(n), cpu_ids.data(), kv_lengths.data(),
                      q.data(), STARKV_DTYPE_F32, cpu_out.data(), STARKV_DTYPE_F32),
        STARKV_OK)
        << starkv_last_error();
    std::vector<float> gpu_out(n * q_width());
    if (q_dtype == STARKV_DTYPE_F32 && out_dtype == STARKV_DTYPE_F32) {
      DeviceArray<float> dq(q);
      DeviceArray<float> dout(n * q_width());
      EXPECT_EQ(starkv_attend(gpu_.get(), layer, static_cast<int32_t>(n), gpu_ids.data(),
                              kv_lengths.data(), dq.get(), STARKV_DTYPE_F32, dout.get(),
                              STARKV_DTYPE_F32),
                STARKV_OK)
          << starkv_last_error();
      gpu_out = dout.to_host();
    } else {
      // 16-bit queries: the inputs are fp16-exact, so f16 carries them unchanged; bf16 rounds.
      std::vector<uint16_t> q16(q.size());
      for (size_t i = 0; i < q.size(); ++i) q16[i] = to16(q[i], q_dtype);
      if (q_dtype == STARKV_DTYPE_BF16) {
        // The CPU must see the same rounded queries.
        for (size_t i = 0; i < q.size(); ++i) q[i] = from16(q16[i], q_dtype);
        EXPECT_EQ(starkv_attend(cpu_.get(), layer, static_cast<int32_t>(n), cpu_ids.data(),
                                kv_lengths.data(), q.data(), STARKV_DTYPE_F32, cpu_out.data(),
                                STARKV_DTYPE_F32),
                  STARKV_OK);
      }
      DeviceArray<uint16_t> dq(q16);
      if (out_dtype == STARKV_DTYPE_F32) {
        DeviceArray<float> dout(n * q_width());
        EXPECT_EQ(starkv_attend(gpu_.get(), layer, static_cast<int32_t>(n), gpu_ids.data(),
                                kv_lengths.data(), dq.get(), q_dtype, dout.get(), out_dtype),
                  STARKV_OK)
            << starkv_last_error();
        gpu_out = dout.to_host();
      } else {
        DeviceArray<uint16_t> dout(n * q_width());
        EXPECT_EQ(starkv_attend(gpu_.get(), layer, static_cast<int32_t>(n), gpu_ids.data(),
                                kv_lengths.data(), dq.get(), q_dtype, dout.get(), out_dtype),
                  STARKV_OK)
            << starkv_last_error();
        const std::vector<uint16_t> h = dout.to_host();
        for (size_t i = 0; i < h.size(); ++i) gpu_out[i] = from16(h[i], out_dtype);
      }
    }
    return {cpu_out, gpu_out};
  }

  static uint16_t to16(float f, starkv_dtype d) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (d == STARKV_DTYPE_BF16)
      return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    // fp16-exact inputs: exact conversion by bit manipulation for normal values and zero.
    if ((u & 0x7fffffffu) == 0) return static_cast<uint16_t>(u >> 16);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const int32_t e = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0) {  // subnormal half (exact by construction)
      const float a = std::fabs(f) * 16777216.0f;
      return static_cast<uint16_t>(sign | static_cast<uint32_t>(a));
    }
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | ((u >> 13) & 0x3ffu));
  }
  static float from16(uint16_t h, starkv_dtype d) {
    if (d == STARKV_DTYPE_BF16) {
      const uint32_t u = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    return half_to_float_host(h);
  }

  std::vector<uint8_t> export_seq(starkv_cache_pool* pool, int32_t seq) {
    size_t size = 0;
    const starkv_status st = starkv_seq_export(pool, seq, nullptr, 0, &size);
    EXPECT_TRUE(st == STARKV_OK || st == STARKV_ERR_BUFFER_TOO_SMALL) << starkv_status_string(st);
    std::vector<uint8_t> buf(size);
    EXPECT_EQ(starkv_seq_export(pool, seq, buf.data(), buf.size(), &size), STARKV_OK)
        << starkv_last_error();
    buf.resize(size);
    return buf;
  }

  int32_t next_position(int32_t cpu_seq, int32_t layer) { return lengths_[{cpu_seq, layer}]; }

  ProfileSpec spec_;
  ContextPtr cpu_ctx_, gpu_ctx_;
  ProfilePtr profile_;
  PoolPtr cpu_, gpu_;
  std::map<std::pair<int32_t, int32_t>, int32_t> lengths_;
};

// ---- 16-bit latents: every shape, RoPE style and decomposition ---------------------------------

struct ShapeCase {
  int32_t qpk, D;
  starkv_rope_style rope;
  starkv_decomposition kd, vd;
};
// Readable test names in ctest (gtest prints parameters through PrintTo).
const char* decomposition_name(starkv_decomposition d) {
  return d == STARKV_DECOMP_JOINT ? "joint" : "headwise";
}
void PrintTo(const ShapeCase& c, std::ostream* os) {
  *os << c.qpk << " queries/kv-head, D=" << c.D << ", "
      << (c.rope == STARKV_ROPE_GPTJ ? "gptj" : "neox") << ", keys " << decomposition_name(c.kd)
      << ", values " << decomposition_name(c.vd);
}

class CudaVsCpu16 : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(CudaVsCpu16, RaggedBatchMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const ShapeCase c = GetParam();
  ProfileSpec spec;
  spec.G = 2;
  spec.H = 2 * c.qpk;
  spec.D = c.D;
  spec.rope = c.rope;
  spec.key_decomp = c.kd;
  spec.value_decomp = c.vd;
  Twin twin(spec, 1234u + static_cast<uint32_t>(c.qpk * 7 + c.D));
  std::vector<std::pair<int32_t, int32_t>> seqs;
  for (int i = 0; i < 4; ++i) seqs.push_back(twin.new_sequence());
  twin.append(seqs, {1, 37, 300, 1100}, 99u);
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, seqs, {1, 37, 300, 1100}, 500u + layer);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << "layer " << layer << "\n"
                                         << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
  // Shorter prefixes, and several queries on one sequence (causal prefill rows).
  std::vector<std::pair<int32_t, int32_t>> rows(6, seqs[3]);
  auto [cpu, gpu] = twin.attend(1, rows, {1, 2, 31, 32, 33, 1099}, 77u);
  EXPECT_LE(rel_error(gpu, cpu), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaVsCpu16,
    ::testing::Values(
        ShapeCase{1, 64, STARKV_ROPE_NEOX, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
        ShapeCase{2, 128, STARKV_ROPE_NEOX, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
        ShapeCase{4, 128, STARKV_ROPE_GPTJ, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
        ShapeCase{8, 64, STARKV_ROPE_NEOX, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
        ShapeCase{3, 64, STARKV_ROPE_NEOX, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
        ShapeCase{1, 128, STARKV_ROPE_NEOX, STARKV_DECOMP_JOINT, STARKV_DECOMP_HEADWISE},
        ShapeCase{4, 64, STARKV_ROPE_NONE, STARKV_DECOMP_JOINT, STARKV_DECOMP_JOINT},
        ShapeCase{2, 32, STARKV_ROPE_GPTJ, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_HEADWISE}));

TEST(CudaBackend, ManyHeadsPartialRotaryAndSixteenBitIo) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 32;
  spec.G = 32;  // MHA, several head chunks, value latents over two value parts
  spec.D = 64;
  spec.rotary_dim = 32;
  spec.value_ranks = {1100};
  spec.n_layers = 1;
  Twin twin(spec, 42u, 64, 256);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
  twin.append(seqs, {700, 129}, 5u);
  {
    auto [cpu, gpu] = twin.attend(0, seqs, {700, 129}, 6u);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3);
  }
  {
    auto [cpu, gpu] = twin.attend(0, seqs, {700, 129}, 7u, STARKV_DTYPE_F16, STARKV_DTYPE_F32);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3);
  }
  {
    auto [cpu, gpu] = twin.attend(0, seqs, {700, 129}, 8u, STARKV_DTYPE_BF16, STARKV_DTYPE_BF16);
    EXPECT_LE(rel_error(gpu, cpu), 8e-3);
  }
}

// A joint value group so wide that the fused kernel's tile would not fit in shared memory (the
// Llama-2-7B-like layer at 50%: 32 heads x 128, value rank 2458, fp16): the pool must still be
// created, and the split path must match the CPU.
TEST(CudaBackend, WideJointValueGroupTakesTheSplitPath) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 32;
  spec.G = 32;
  spec.D = 128;
  spec.key_ranks.assign(32, 51);
  spec.value_ranks = {2458};
  spec.n_layers = 1;
  Twin twin(spec, 61u, 64, 320);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
  twin.append_latents(seqs, 300, 19u, 1.0f);
  auto [cpu, gpu] = twin.attend(0, seqs, {300, 77}, 43u);
  EXPECT_LE(rel_error(gpu, cpu), 2e-3) << error_breakdown(gpu, cpu, spec.H, spec.D);
}

// One long sequence: a query with many work items (the split merge takes its many-split schedule
// from 32 on, kernels/split_values.cu; on the H200 this test, CudaLongSplit and CudaVsCpu16
// launch both of its schedules between them).
TEST(CudaBackend, LongContextSplitsMatchCpu) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 8;
  spec.G = 2;
  spec.D = 128;
  spec.theta = 500000.0f;
  spec.n_layers = 1;
  Twin twin(spec, 7u, 64, 1100);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence()};
  twin.append(seqs, {65536}, 3u);
  auto [cpu, gpu] = twin.attend(0, seqs, {65536}, 9u, STARKV_DTYPE_F32, STARKV_DTYPE_F32, 3.0f);
  EXPECT_LE(rel_error(gpu, cpu), 1e-3);
}

// Long contexts through the split path (the fold-the-query score kernel: RoPE tables at large
// positions, many 64-token tiles, several work items per sequence), GQA and MHA, fp16 and 4/3.
// The GQA cases are the suite whose key-reconstruction work items span several tiles, so they are
// what checks the reconstruction fold's softmax deferred into the next tile (fold_defers_softmax):
// a version that kept the scores in one buffer failed only here (bench/RESULTS.md, twenty-sixth
// session).
struct LongSplitCase {
  int32_t H, G, inlier, outlier;
};
void PrintTo(const LongSplitCase& c, std::ostream* os) {
  *os << "H=" << c.H << " G=" << c.G << ", " << c.inlier << "/" << c.outlier << " bits";
}

class CudaLongSplit : public ::testing::TestWithParam<LongSplitCase> {};

TEST_P(CudaLongSplit, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const LongSplitCase c = GetParam();
  ProfileSpec spec;
  spec.H = c.H;
  spec.G = c.G;
  spec.D = 128;
  spec.theta = 500000.0f;
  spec.inlier_bits = c.inlier;
  spec.outlier_bits = c.outlier;
  spec.n_layers = 1;
  Twin twin(spec, 31u + static_cast<uint32_t>(c.H * 3 + c.G + c.inlier), 64, 700);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
  twin.append_latents(seqs, 20000, 13u, 1.0f);
  auto [cpu, gpu] = twin.attend(0, seqs, {20000, 11111}, 19u, STARKV_DTYPE_F32, STARKV_DTYPE_F32,
                                2.0f);
  EXPECT_LE(rel_error(gpu, cpu), c.inlier == 16 ? 1e-3 : 2e-3)
      << error_breakdown(gpu, cpu, spec.H, spec.D);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaLongSplit,
                         ::testing::Values(LongSplitCase{32, 8, 16, 16}, LongSplitCase{16, 16, 16, 16},
                                           LongSplitCase{32, 8, 3, 4}));

// ---- the fold score kernel's 32-token tile --------------------------------------------------
// Layers whose 64-token fold layout would leave one CTA per SM run 32-token tiles (fold_layout in
// fold_scores.cu; two CTAs per SM need <= 115,712 B). fp16 keys, shared memory at 64 / 32
// tokens, roughly AB (8 heads x padded rank x 136 halves) + CS + scores + two staged key-row
// buffers: MHA rank 26, about 142 / 106 KB; GQA 2:1 rank 30 (4 KV heads of 60 B), about 120 / 95
// KB. Quantized keys add the decoded tile (64 x (8 x 32 + 8) halves for MHA), so they take 32
// too. Page size 16 makes tiles cross pages (the general staging path), 64 keeps them inside one.

struct FoldTileCase {
  int32_t G, key_rank, value_rank, inlier, outlier, page_tokens;
};
void PrintTo(const FoldTileCase& c, std::ostream* os) {
  *os << "H=32 G=" << c.G << " key rank " << c.key_rank << ", " << c.inlier << "/" << c.outlier
      << " bits, page " << c.page_tokens;
}

class CudaFoldSmallTile : public ::testing::TestWithParam<FoldTileCase> {};

TEST_P(CudaFoldSmallTile, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const FoldTileCase c = GetParam();
  ProfileSpec spec;
  spec.H = 32;
  spec.G = c.G;
  spec.D = 128;
  spec.key_ranks.assign(static_cast<size_t>(c.G), c.key_rank);
  spec.value_ranks = {c.value_rank};
  spec.inlier_bits = c.inlier;
  spec.outlier_bits = c.outlier;
  spec.n_layers = 1;
  Twin twin(spec, 71u + static_cast<uint32_t>(c.G + c.inlier + c.page_tokens), c.page_tokens,
            4096 / c.page_tokens * 3);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
  twin.append_latents(seqs, 2000, 23u, 1.0f);
  auto [cpu, gpu] = twin.attend(0, seqs, {2000, 733}, 29u, STARKV_DTYPE_F32, STARKV_DTYPE_F32,
                                2.0f);
  EXPECT_LE(rel_error(gpu, cpu), c.inlier == 16 ? 1e-3 : 2e-3)
      << error_breakdown(gpu, cpu, spec.H, spec.D);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaFoldSmallTile,
                         ::testing::Values(FoldTileCase{32, 26, 1229, 3, 4, 64},
                                           FoldTileCase{32, 26, 1229, 16, 16, 16},
                                           FoldTileCase{16, 30, 600, 16, 16, 64},
                                           FoldTileCase{16, 30, 600, 3, 4, 16}));

// ---- the fold kernel's wgmma instances (sm_90a) -------------------------------------------------
// On an H100 / H200 the fold of a head_dim-128 layer whose fp16 keys are folded (MHA, or GQA with
// STARKV_NO_RECON) runs on warpgroup MMAs (kernels/sm90a/fold_scores_wgmma.cu) when the layer's
// padded key rank is 16, 32, 48 or 64, and so does quantized keys' (at 16, 32 and 48 in chunks of
// 4 heads, kNarrow), decoded first into a tile that shares the CS table's space. The cases at 2/8
// and 3/16 bits take the decode's general paths (a 2-bit plan, 16-bit outlier blocks), 3/4 and
// 4/4 its fast kinds and pairs. Each padded rank, heads of unequal and odd ranks (latents at
// 2-byte offsets, padding ranks past a head's rank), a last chunk of fewer than 8 heads, pages
// that tiles cross. The tolerances are the other split-path tests' (the scores round Z to fp16 as
// there). With fp16 keys and pages of whole 64-token tiles (page 64, or 128: tiles at two offsets
// in a page) the fold stages each tile by one tensor copy (LayerView::key_row_maps); pages of 16
// tokens keep cp.async. Where the fp16 keys' padded rank is 16 or 32, tensor-staged, and the
// batch's work items pair up within their queries, the paired instance runs (one CTA scoring two
// items with one AB; ncu counted 3 of this suite's and the small-tile suite's 26 fold launches on
// it, bench/results-2026-12-03s15/call4); STARKV_NO_PAIRED_FOLD=1 runs the others.

// Key ranks top, top - 3, top - 6, top, ... for G heads: odd and even ranks, so that heads' latents
// start at 2-byte offsets and pad differently.
std::vector<int32_t> stepped_key_ranks(int32_t G, int32_t top_rank) {
  std::vector<int32_t> ranks(static_cast<size_t>(G));
  for (int32_t g = 0; g < G; ++g) ranks[static_cast<size_t>(g)] = std::max(1, top_rank - 3 * (g % 3));
  return ranks;
}

// One layer's attention over three sequences of 1500, 65 and 1 random latents (pages of
// page_tokens), CUDA against the CPU, within `tolerance` relative error.
void expect_three_sequences_match_cpu(const ProfileSpec& spec, uint32_t twin_seed,
                                      int32_t page_tokens, uint32_t query_seed, double tolerance) {
  Twin twin(spec, twin_seed, page_tokens, 4096 / page_tokens * 3);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence(),
                                                twin.new_sequence()};
  twin.append_latents(seqs, 1500, 37u, 1.0f);
  auto [cpu, gpu] = twin.attend(0, seqs, {1500, 65, 1}, query_seed, STARKV_DTYPE_F32,
                                STARKV_DTYPE_F32, 2.0f);
  // (Recorded as a test property, so that --gtest_output=json shows how far inside its tolerance
  // each shape runs, e.g. across a change of the kernels' arithmetic.)
  const double error = rel_error(gpu, cpu);
  char recorded[32];
  std::snprintf(recorded, sizeof recorded, "%.3e", error);
  ::testing::Test::RecordProperty("rel_error", recorded);
  EXPECT_LE(error, tolerance) << error_breakdown(gpu, cpu, spec.H, spec.D);
}

struct WgmmaFoldCase {
  int32_t H, top_rank, inlier, outlier, page_tokens;
};
void PrintTo(const WgmmaFoldCase& c, std::ostream* os) {
  *os << "H=" << c.H << " MHA, key ranks up to " << c.top_rank << ", " << c.inlier << "/"
      << c.outlier << " bits, page " << c.page_tokens;
}

class CudaFoldWgmma : public ::testing::TestWithParam<WgmmaFoldCase> {};

TEST_P(CudaFoldWgmma, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const WgmmaFoldCase c = GetParam();
  ProfileSpec spec;
  spec.H = c.H;
  spec.G = c.H;
  spec.D = 128;
  spec.key_ranks = stepped_key_ranks(c.H, c.top_rank);
  spec.value_ranks = {300};
  spec.inlier_bits = c.inlier;
  spec.outlier_bits = c.outlier;
  spec.n_layers = 1;
  expect_three_sequences_match_cpu(spec, 83u + static_cast<uint32_t>(c.H + c.top_rank + c.inlier),
                                   c.page_tokens, 41u, c.inlier == 16 ? 1e-3 : 2e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaFoldWgmma,
    ::testing::Values(WgmmaFoldCase{12, 13, 16, 16, 64}, WgmmaFoldCase{12, 29, 16, 16, 64},
                      WgmmaFoldCase{16, 45, 16, 16, 16}, WgmmaFoldCase{20, 64, 16, 16, 64},
                      WgmmaFoldCase{12, 32, 16, 16, 16}, WgmmaFoldCase{20, 29, 3, 4, 64},
                      WgmmaFoldCase{32, 26, 16, 16, 128}, WgmmaFoldCase{20, 45, 3, 4, 64},
                      WgmmaFoldCase{16, 64, 4, 4, 16}, WgmmaFoldCase{12, 32, 2, 8, 64},
                      WgmmaFoldCase{12, 61, 3, 16, 16}, WgmmaFoldCase{16, 62, 3, 4, 64}));

// Which quantized key groups the fold decodes in whole groups per block (kernels::
// pack_key_group_columns: host code, so it runs without a GPU too): where the outlier block does
// not end on a multiple of 8 and that takes no more 8-channel groups than the identity.
TEST(KeyGroupColumns, BlocksDecodedInWholeGroupsWhereNoGroupIsAdded) {
  using starkv::kernels::pack_key_group_columns;
  EXPECT_EQ(pack_key_group_columns(5, 26, true), 5 | 3 << 8);  // (5) (8 8) (5): 4 groups
  EXPECT_EQ(pack_key_group_columns(7, 38, true), 7 | 1 << 8);  // (7) (8 8 8 7): 5 groups
  EXPECT_EQ(pack_key_group_columns(10, 51, true), 0);          // 2 + 6 groups against 7
  EXPECT_EQ(pack_key_group_columns(6, 32, true), 0);           // 1 + 4 groups against 4
  EXPECT_EQ(pack_key_group_columns(8, 26, true), 0);           // no group straddles the blocks
  EXPECT_EQ(pack_key_group_columns(0, 26, true), 0);           // no outlier block
  EXPECT_EQ(pack_key_group_columns(26, 26, true), 0);          // no inlier block
  EXPECT_EQ(pack_key_group_columns(5, 26, false), 0);          // a 16-bit block
  EXPECT_EQ(pack_key_group_columns(261, 1300, true), 0);       // n_outlier past its 8 bits
}

// ---- the fold kernel's wide chunks for reconstructed keys ---------------------------------------
// GQA layers reconstruct keys in chunks of 4 KV heads (up to 32 query heads per CTA,
// DeviceLayer::wide_fold_view) instead of the model's chunks of 8 query heads: 8, 4, 3 and 2
// queries per KV head, a last chunk of fewer KV heads, heads of unequal and odd ranks (latents at
// 2-byte offsets), head_dim 64 and 128, pages that tiles cross; fp16 latents, and quantized ones
// (3/4 and 4/4 bits, padded ranks 16 to 64) reconstructed from the decoded tile (on Hopper: the
// recon wgmma instances with quantized keys; with STARKV_NO_WIDE_RECON=1 in the model's chunks of
// 2, 2, 1 and 4 KV heads, so warpgroups with one head, none or two). The last case is shaped like
// the Llama-3-like 60% 3/4-bit layer (padded rank 48, 16 query heads per chunk), whose layout fits
// two CTAs per SM with a single staging buffer, refilled right after each tile's decode.

struct WideReconCase {
  int32_t H, G, D, top_rank, page_tokens;
  int32_t inlier = 16, outlier = 16;
};
void PrintTo(const WideReconCase& c, std::ostream* os) {
  *os << "H=" << c.H << " G=" << c.G << " D=" << c.D << ", key ranks up to " << c.top_rank << ", "
      << c.inlier << "/" << c.outlier << " bits, page " << c.page_tokens;
}

class CudaWideRecon : public ::testing::TestWithParam<WideReconCase> {};

TEST_P(CudaWideRecon, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const WideReconCase c = GetParam();
  const bool quantized = c.inlier != 16;
  ProfileSpec spec;
  spec.H = c.H;
  spec.G = c.G;
  spec.D = c.D;
  spec.key_ranks = stepped_key_ranks(c.G, c.top_rank);
  spec.value_ranks = {200};
  spec.inlier_bits = c.inlier;
  spec.outlier_bits = c.outlier;
  spec.n_layers = 1;
  expect_three_sequences_match_cpu(
      spec, (quantized ? 71u : 61u) + static_cast<uint32_t>(c.H + c.G + c.top_rank), c.page_tokens,
      quantized ? 47u : 43u, quantized ? 2e-3 : 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaWideRecon,
                         ::testing::Values(WideReconCase{48, 6, 128, 29, 64},
                                           WideReconCase{24, 6, 128, 26, 16},
                                           WideReconCase{18, 6, 64, 21, 64},
                                           WideReconCase{32, 8, 128, 45, 64},
                                           WideReconCase{32, 8, 128, 29, 64, 3, 4},
                                           WideReconCase{24, 8, 128, 45, 16, 3, 4},
                                           WideReconCase{16, 2, 128, 64, 64, 4, 4},
                                           WideReconCase{32, 16, 128, 13, 128, 3, 4},
                                           WideReconCase{32, 8, 128, 40, 64, 3, 4}));

// ---- quantized rows: bit-exact encoding, attention over identical rows -------------------------

struct QuantCase {
  int32_t inlier, outlier, nibbles;
  float amplitude = 2.0f;
};
void PrintTo(const QuantCase& c, std::ostream* os) {
  *os << c.inlier << "-bit inliers, " << c.outlier << "-bit outliers"
      << (c.nibbles ? ", nibble packing" : "") << ", amplitude " << c.amplitude;
}

class CudaQuantized : public ::testing::TestWithParam<QuantCase> {};

TEST_P(CudaQuantized, RowsAreBitExactAndAttentionMatches) {
  SKIP_WITHOUT_GPU();
  const QuantCase qc = GetParam();
  ProfileSpec spec;
  spec.H = 8;
  spec.G = 4;
  spec.D = 64;
  spec.inlier_bits = qc.inlier;
  spec.outlier_bits = qc.outlier;
  spec.nibbles = qc.nibbles;
  Twin twin(spec, 555u + static_cast<uint32_t>(qc.inlier * 10 + qc.outlier));
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
  twin.append_latents(seqs, 203, 11u, qc.amplitude);
  for (const auto& s : seqs) {
    const std::vector<uint8_t> a = twin.export_seq(twin.cpu_.get(), s.first);
    const std::vector<uint8_t> b = twin.export_seq(twin.gpu_.get(), s.second);
    EXPECT_EQ(a, b) << "snapshots of identical latents differ: rows are not bit-exact";
    // Decoded through the CPU: the GPU's rows, imported, attend exactly like the CPU's own.
    int32_t imported = 0;
    ASSERT_EQ(starkv_seq_import(twin.cpu_.get(), b.data(), b.size(), &imported), STARKV_OK)
        << starkv_last_error();
    std::vector<float> q = random_half_exact(twin.q_width(), 3u);
    std::vector<float> o1(twin.q_width()), o2(twin.q_width());
    const int32_t len = 203;
    ASSERT_EQ(starkv_attend(twin.cpu_.get(), 0, 1, &s.first, &len, q.data(), STARKV_DTYPE_F32,
                            o1.data(), STARKV_DTYPE_F32),
              STARKV_OK);
    ASSERT_EQ(starkv_attend(twin.cpu_.get(), 0, 1, &imported, &len, q.data(), STARKV_DTYPE_F32,
                            o2.data(), STARKV_DTYPE_F32),
              STARKV_OK);
    EXPECT_EQ(o1, o2);
    starkv_seq_release(twin.cpu_.get(), imported);
  }
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, seqs, {203, 150}, 21u + layer);
    EXPECT_LE(rel_error(gpu, cpu), 2e-3) << "layer " << layer;
  }
}

INSTANTIATE_TEST_SUITE_P(Bits, CudaQuantized,
                         ::testing::Values(QuantCase{4, 4, 0}, QuantCase{3, 4, 1},
                                           QuantCase{3, 4, 0}, QuantCase{2, 8, 0},
                                           QuantCase{4, 8, 0}, QuantCase{3, 16, 0},
                                           QuantCase{32, 16, 0}, QuantCase{16, 16, 0},
                                           QuantCase{16, 16, 0, 0.2f}, QuantCase{4, 4, 0, 0.2f}));

TEST(CudaBackend, QuantizedAppendFromKeysMatchesCpu) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 16;
  spec.G = 4;
  spec.D = 128;
  spec.inlier_bits = 3;
  spec.outlier_bits = 4;
  Twin twin(spec, 99u);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence(),
                                                twin.new_sequence()};
  twin.append(seqs, {5, 60, 400}, 12u);  // 465 tokens per layer: the cuBLAS (prefill) path
  twin.append(seqs, {1, 1, 1}, 13u);     // decode-sized batch: the exact-order kernel
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, seqs, {6, 61, 401}, 30u + layer);
    // Projections may differ in the last bit (summation order), which can flip a code by one
    // step: allow a few quantization steps' worth on top of the fp16 rounding.
    EXPECT_LE(rel_error(gpu, cpu), 2e-2) << "layer " << layer;
  }
}

// ---- snapshots, fork, pool full, bad arguments -------------------------------------------------

TEST(CudaBackend, SnapshotsMoveBetweenCpuAndCuda) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.inlier_bits = 4;
  spec.outlier_bits = 8;
  Twin twin(spec, 8u);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence()};
  twin.append(seqs, {77}, 4u);
  // CPU -> CUDA
  const std::vector<uint8_t> snap = twin.export_seq(twin.cpu_.get(), seqs[0].first);
  int32_t on_gpu = 0;
  ASSERT_EQ(starkv_seq_import(twin.gpu_.get(), snap.data(), snap.size(), &on_gpu), STARKV_OK)
      << starkv_last_error();
  auto [cpu, gpu] = twin.attend(1, {{seqs[0].first, on_gpu}}, {77}, 5u);
  EXPECT_LE(rel_error(gpu, cpu), 2e-3);
  // CUDA -> CPU: the round trip gives back the same bytes.
  const std::vector<uint8_t> back = twin.export_seq(twin.gpu_.get(), on_gpu);
  EXPECT_EQ(back, snap);
}

TEST(CudaBackend, ForkCopiesOnWrite) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  Twin twin(spec, 10u, 16, 64);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence()};
  twin.append(seqs, {40}, 1u);  // 2.5 pages: the last one is shared after the fork
  int32_t cf = 0, gf = 0;
  ASSERT_EQ(starkv_seq_fork(twin.cpu_.get(), seqs[0].first, &cf), STARKV_OK);
  ASSERT_EQ(starkv_seq_fork(twin.gpu_.get(), seqs[0].second, &gf), STARKV_OK);
  twin.lengths_[{cf, 0}] = 40;
  twin.lengths_[{cf, 1}] = 40;
  twin.append({{cf, gf}}, {5}, 2u);
  auto [cpu, gpu] = twin.attend(0, {seqs[0], {cf, gf}}, {40, 45}, 3u);
  EXPECT_LE(rel_error(gpu, cpu), 1e-3);
}

TEST(CudaBackend, PoolFullAndBadArgumentsBehaveLikeCpu) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  Twin twin(spec, 11u, 16, /*pages=*/4);
  auto s = twin.new_sequence();
  const int32_t n = 80;  // 5 pages > 4
  std::vector<int32_t> ids_c(n, s.first), ids_g(n, s.second), pos(n);
  std::iota(pos.begin(), pos.end(), 0);
  std::vector<float> k = random_half_exact(n * twin.kv_width(), 1u);
  DeviceArray<float> dk(k);
  EXPECT_EQ(starkv_append(twin.cpu_.get(), 0, n, ids_c.data(), pos.data(), k.data(), k.data(),
                          STARKV_DTYPE_F32),
            STARKV_ERR_POOL_FULL);
  EXPECT_EQ(starkv_append(twin.gpu_.get(), 0, n, ids_g.data(), pos.data(), dk.get(), dk.get(),
                          STARKV_DTYPE_F32),
            STARKV_ERR_POOL_FULL);
  int32_t len = -1;
  EXPECT_EQ(starkv_seq_length(twin.gpu_.get(), s.second, &len), STARKV_OK);
  EXPECT_EQ(len, 0);
  EXPECT_EQ(starkv_append(twin.gpu_.get(), 0, 1, ids_g.data(), pos.data(), nullptr, dk.get(),
                          STARKV_DTYPE_F32),
            starkv_append(twin.cpu_.get(), 0, 1, ids_c.data(), pos.data(), nullptr, k.data(),
                          STARKV_DTYPE_F32));
  EXPECT_EQ(starkv_append(twin.gpu_.get(), 7, 1, ids_g.data(), pos.data(), dk.get(), dk.get(),
                          STARKV_DTYPE_F32),
            starkv_append(twin.cpu_.get(), 7, 1, ids_c.data(), pos.data(), k.data(), k.data(),
                          STARKV_DTYPE_F32));
  const int32_t too_long = 5;
  std::vector<float> out(twin.q_width());
  DeviceArray<float> dq(k), dout(twin.q_width());
  EXPECT_EQ(starkv_attend(twin.gpu_.get(), 0, 1, &s.second, &too_long, dq.get(), STARKV_DTYPE_F32,
                          dout.get(), STARKV_DTYPE_F32),
            starkv_attend(twin.cpu_.get(), 0, 1, &s.first, &too_long, k.data(), STARKV_DTYPE_F32,
                          out.data(), STARKV_DTYPE_F32));
}

TEST(CudaBackend, DecodeStepPlansOnceRunsPerLayer) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 16;
  spec.G = 4;
  spec.D = 128;
  spec.inlier_bits = 4;
  spec.outlier_bits = 4;
  spec.n_layers = 3;
  Twin twin(spec, 12u, 32, 512);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence(),
                                                twin.new_sequence()};
  twin.append(seqs, {100, 2000, 33}, 6u);
  std::vector<int32_t> gpu_ids, cpu_ids;
  for (auto& s : seqs) {
    cpu_ids.push_back(s.first);
    gpu_ids.push_back(s.second);
  }
  starkv_decode_step* step = nullptr;
  ASSERT_EQ(starkv_decode_step_create(twin.gpu_.get(), &step), STARKV_OK);
  StepPtr owner(step);
  ASSERT_EQ(starkv_decode_step_plan(step, 3, gpu_ids.data(), nullptr), STARKV_OK)
      << starkv_last_error();
  const std::vector<int32_t> lengths{100, 2000, 33};
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    std::vector<float> q = random_half_exact(3 * twin.q_width(), 40u + layer);
    DeviceArray<float> dq(q), dout(3 * twin.q_width());
    ASSERT_EQ(starkv_decode_step_run(step, layer, dq.get(), STARKV_DTYPE_F32, dout.get(),
                                     STARKV_DTYPE_F32),
              STARKV_OK)
        << starkv_last_error();
    std::vector<float> cpu(3 * twin.q_width());
    ASSERT_EQ(starkv_attend(twin.cpu_.get(), layer, 3, cpu_ids.data(), lengths.data(), q.data(),
                            STARKV_DTYPE_F32, cpu.data(), STARKV_DTYPE_F32),
              STARKV_OK);
    EXPECT_LE(rel_error(dout.to_host(), cpu), 2e-3) << "layer " << layer;
  }
}

// Plans a decode step over fresh sequences of `lengths`, captures starkv_decode_step_run of layers
// 0 .. n_layers-1 into one CUDA graph (capture fails on any allocation or synchronization inside a
// step), launches it `launches` times and compares every layer's output with the CPU reference.
void expect_captured_step_matches_cpu(Twin& twin, const std::vector<int32_t>& lengths,
                                      int32_t n_layers, uint32_t seed, int launches, double tol) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(starkv_context_set_stream(twin.gpu_ctx_.get(), stream), STARKV_OK);
  std::vector<std::pair<int32_t, int32_t>> seqs;
  for (size_t i = 0; i < lengths.size(); ++i) seqs.push_back(twin.new_sequence());
  twin.append(seqs, lengths, seed);
  std::vector<int32_t> gpu_ids, cpu_ids;
  for (auto& s : seqs) {
    cpu_ids.push_back(s.first);
    gpu_ids.push_back(s.second);
  }
  const int32_t n = static_cast<int32_t>(lengths.size());
  starkv_decode_step* step = nullptr;
  ASSERT_EQ(starkv_decode_step_create(twin.gpu_.get(), &step), STARKV_OK);
  StepPtr owner(step);
  ASSERT_EQ(starkv_decode_step_plan(step, n, gpu_ids.data(), nullptr), STARKV_OK)
      << starkv_last_error();
  std::vector<float> q = random_half_exact(static_cast<size_t>(n) * twin.q_width(), seed + 1);
  DeviceArray<float> dq(q);
  std::vector<std::unique_ptr<DeviceArray<float>>> outs;
  for (int32_t layer = 0; layer < n_layers; ++layer)
    outs.push_back(std::make_unique<DeviceArray<float>>(static_cast<size_t>(n) * twin.q_width()));
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  std::vector<starkv_status> st;
  for (int32_t layer = 0; layer < n_layers; ++layer)
    st.push_back(starkv_decode_step_run(step, layer, dq.get(), STARKV_DTYPE_F32,
                                        outs[static_cast<size_t>(layer)]->get(), STARKV_DTYPE_F32));
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  for (starkv_status s : st) ASSERT_EQ(s, STARKV_OK) << starkv_last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int rep = 0; rep < launches; ++rep) ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  for (int32_t layer = 0; layer < n_layers; ++layer) {
    std::vector<float> cpu(static_cast<size_t>(n) * twin.q_width());
    ASSERT_EQ(starkv_attend(twin.cpu_.get(), layer, n, cpu_ids.data(), lengths.data(), q.data(),
                            STARKV_DTYPE_F32, cpu.data(), STARKV_DTYPE_F32),
              STARKV_OK);
    EXPECT_LE(rel_error(outs[static_cast<size_t>(layer)]->to_host(), cpu), tol) << "layer " << layer;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  ASSERT_EQ(starkv_context_set_stream(twin.gpu_ctx_.get(), nullptr), STARKV_OK);
  cudaStreamDestroy(stream);
}

TEST(CudaBackend, DecodeStepRunIsGraphCapturable) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.inlier_bits = 4;
  spec.outlier_bits = 4;
  spec.n_layers = 1;
  Twin twin(spec, 13u);
  expect_captured_step_matches_cpu(twin, {300}, 1, 7u, 1, 2e-3);
}

}  // namespace

namespace {

TEST(CudaBackend, SixteenBitDecodeSizedAppendMatchesCpu) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.n_layers = 1;
  Twin twin(spec, 21u);
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence()};
  twin.append(seqs, {40}, 1u);  // 40 tokens: the projection kernel (not cuBLAS)
  auto [cpu, gpu] = twin.attend(0, seqs, {40}, 3u);
  EXPECT_LE(rel_error(gpu, cpu), 1e-3) << error_breakdown(gpu, cpu, spec.H, spec.D);
}

// Decode-sized appends (the projection kernel, kernels/append.cu) in every input dtype, their
// latents compared with the CPU's directly: the rows hold the latents unquantized (fp32, or fp16
// for the wide layer), read back through exported snapshots. Batches of 1 to 64 tokens (one to
// four 16-token chunks, partly filled), odd ranks (partly filled 64-channel tiles), key groups
// with one slice next to a value group with several (the zeros the key groups' items write into
// the other partial-sum buffers are added by the encode), and for the wide layer (a Llama-2-7B-
// like layer at 50%: 6 value slices of 683 rows on an H100's or H200's 132 SMs) slices longer
// than the 512 rows the kernel stages at a time.
// Tolerance: the sums differ only in order, fp32 rounding far below 2e-5 of the latents' RMS (one
// input row left out would be 1/sqrt(in_dim) of it, 1.6e-2 at 4096 rows); fp16 rows add up to one
// fp16 rounding step (2^-10 relative) where the two fp32 sums round to neighbouring halves.
struct DecodeAppendCase {
  const char* name;
  int32_t G, D;
  std::vector<int32_t> key_ranks, value_ranks;  // headwise keys, joint values
  int32_t latent_bits;                          // 32: fp32 rows, 16: fp16 rows
  starkv_dtype dtype;
};
void PrintTo(const DecodeAppendCase& c, std::ostream* os) {
  *os << c.name << ", " << c.latent_bits << "-bit latents, "
      << (c.dtype == STARKV_DTYPE_F32 ? "f32" : c.dtype == STARKV_DTYPE_F16 ? "f16" : "bf16")
      << " inputs";
}

class CudaDecodeSizedAppend : public ::testing::TestWithParam<DecodeAppendCase> {};

TEST_P(CudaDecodeSizedAppend, LatentsMatchCpu) {
  SKIP_WITHOUT_GPU();
  const DecodeAppendCase c = GetParam();
  ProfileSpec spec;
  spec.H = c.G;
  spec.G = c.G;
  spec.D = c.D;
  spec.key_ranks = c.key_ranks;
  spec.value_ranks = c.value_ranks;
  spec.inlier_bits = c.latent_bits;
  spec.outlier_bits = c.latent_bits;
  spec.n_layers = 1;
  Twin twin(spec, 314u + static_cast<uint32_t>(c.G), 16, 64);
  constexpr int32_t kSeqs = 8;
  std::vector<std::pair<int32_t, int32_t>> seqs;
  for (int32_t i = 0; i < kSeqs; ++i) seqs.push_back(twin.new_sequence());
  std::vector<int32_t> lengths(kSeqs, 0);
  const size_t kv = twin.kv_width();
  uint32_t seed = 70u;
  for (const int32_t n : {1, 9, 16, 17, 40, 64}) {
    std::vector<int32_t> cpu_ids, gpu_ids, pos;
    for (int32_t i = 0; i < n; ++i) {  // one sequence after the other, as a decode batch
      cpu_ids.push_back(seqs[static_cast<size_t>(i % kSeqs)].first);
      gpu_ids.push_back(seqs[static_cast<size_t>(i % kSeqs)].second);
      pos.push_back(lengths[static_cast<size_t>(i % kSeqs)]++);
    }
    const std::vector<float> k = random_half_exact(static_cast<size_t>(n) * kv, seed++);
    const std::vector<float> v = random_half_exact(static_cast<size_t>(n) * kv, seed++);
    // Both backends read the same bytes in the same dtype.
    auto append_both = [&](const void* hk, const void* hv, const void* dk, const void* dv) {
      ASSERT_EQ(starkv_append(twin.cpu_.get(), 0, n, cpu_ids.data(), pos.data(), hk, hv, c.dtype),
                STARKV_OK)
          << starkv_last_error();
      ASSERT_EQ(starkv_append(twin.gpu_.get(), 0, n, gpu_ids.data(), pos.data(), dk, dv, c.dtype),
                STARKV_OK)
          << starkv_last_error();
    };
    if (c.dtype == STARKV_DTYPE_F32) {
      DeviceArray<float> dk(k), dv(v);
      append_both(k.data(), v.data(), dk.get(), dv.get());
    } else {
      std::vector<uint16_t> k16(k.size()), v16(v.size());
      for (size_t i = 0; i < k.size(); ++i) k16[i] = Twin::to16(k[i], c.dtype);
      for (size_t i = 0; i < v.size(); ++i) v16[i] = Twin::to16(v[i], c.dtype);
      DeviceArray<uint16_t> dk(k16), dv(v16);
      append_both(k16.data(), v16.data(), dk.get(), dv.get());
    }
  }

  int32_t width = 0;
  ASSERT_EQ(starkv_profile_latent_width(twin.profile_.get(), 0, &width), STARKV_OK);
  auto latents = [&](starkv_cache_pool* pool, int32_t seq) {
    const std::vector<uint8_t> bytes = twin.export_seq(pool, seq);
    const starkv::SequenceSnapshot snap = starkv::decode_snapshot(bytes.data(), bytes.size());
    const size_t row_bytes = static_cast<size_t>(snap.row_bytes.at(0));
    std::vector<float> out;
    for (int32_t t = 0; t < snap.n_tokens; ++t) {
      const uint8_t* row = snap.layer_rows.at(0).data() + static_cast<size_t>(t) * row_bytes;
      for (int32_t ch = 0; ch < width; ++ch) {
        if (c.latent_bits == 32) {
          float f;
          std::memcpy(&f, row + 4 * ch, 4);
          out.push_back(f);
        } else {
          uint16_t h;
          std::memcpy(&h, row + 2 * ch, 2);
          out.push_back(half_to_float_host(h));
        }
      }
    }
    return out;
  };
  for (int32_t i = 0; i < kSeqs; ++i) {
    const std::vector<float> cpu = latents(twin.cpu_.get(), seqs[static_cast<size_t>(i)].first);
    const std::vector<float> gpu = latents(twin.gpu_.get(), seqs[static_cast<size_t>(i)].second);
    ASSERT_EQ(cpu.size(), gpu.size());
    ASSERT_EQ(cpu.size(), static_cast<size_t>(lengths[static_cast<size_t>(i)]) * width);
    double sum_sq = 0.0;
    for (const float x : cpu) sum_sq += static_cast<double>(x) * x;
    const double rms = std::sqrt(sum_sq / std::max<size_t>(1, cpu.size()));
    const double relative = c.latent_bits == 32 ? 0.0 : 1.01 / 1024.0;
    int failures = 0;
    for (size_t j = 0; j < cpu.size() && failures < 8; ++j) {
      const double tolerance = 2e-5 * rms + relative * std::fabs(cpu[j]);
      if (!(std::fabs(static_cast<double>(gpu[j]) - cpu[j]) <= tolerance)) {
        ++failures;
        ADD_FAILURE() << "sequence " << i << ", token " << j / static_cast<size_t>(width)
                      << ", channel " << j % static_cast<size_t>(width) << ": gpu " << gpu[j]
                      << ", cpu " << cpu[j] << " (rms " << rms << ")";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaDecodeSizedAppend,
    ::testing::Values(
        DecodeAppendCase{"small", 4, 64, {29, 45, 13, 63}, {203}, 32, STARKV_DTYPE_F32},
        DecodeAppendCase{"small", 4, 64, {29, 45, 13, 63}, {203}, 32, STARKV_DTYPE_F16},
        DecodeAppendCase{"small", 4, 64, {29, 45, 13, 63}, {203}, 32, STARKV_DTYPE_BF16},
        DecodeAppendCase{"wide", 32, 128, std::vector<int32_t>(32, 51), {2458}, 16,
                         STARKV_DTYPE_F32},
        DecodeAppendCase{"wide", 32, 128, std::vector<int32_t>(32, 51), {2458}, 16,
                         STARKV_DTYPE_F16},
        DecodeAppendCase{"wide", 32, 128, std::vector<int32_t>(32, 51), {2458}, 16,
                         STARKV_DTYPE_BF16}));

}  // namespace

namespace {

// Several head chunks: the backend runs the split path (score kernel, value kernel, combine).
struct SplitCase {
  int32_t H, G, D, inlier, outlier, nibbles;
  starkv_decomposition kd, vd;
};
void PrintTo(const SplitCase& c, std::ostream* os) {
  *os << "H=" << c.H << " G=" << c.G << " D=" << c.D << ", " << c.inlier << "/" << c.outlier
      << " bits" << (c.nibbles ? " (nibbles)" : "") << ", keys " << decomposition_name(c.kd)
      << ", values " << decomposition_name(c.vd);
}

class CudaSplitPath : public ::testing::TestWithParam<SplitCase> {};

TEST_P(CudaSplitPath, MatchesCpuOnIdenticalRows) {
  SKIP_WITHOUT_GPU();
  const SplitCase c = GetParam();
  ProfileSpec spec;
  spec.H = c.H;
  spec.G = c.G;
  spec.D = c.D;
  spec.inlier_bits = c.inlier;
  spec.outlier_bits = c.outlier;
  spec.nibbles = c.nibbles;
  spec.key_decomp = c.kd;
  spec.value_decomp = c.vd;
  Twin twin(spec, 900u + static_cast<uint32_t>(c.H + c.inlier));
  std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence(),
                                                twin.new_sequence()};
  twin.append_latents(seqs, 333, 17u, 1.0f);
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, seqs, {333, 1, 97}, 41u + layer);
    EXPECT_LE(rel_error(gpu, cpu), 2e-3) << "layer " << layer << "\n"
                                         << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
  // More than one block of 4 queries: the combine's 8-warp form and its second query block
  // (batches of 4 or fewer take the 32-warp form). Prefixes of the first sequence, as causal
  // prefill rows.
  std::vector<std::pair<int32_t, int32_t>> rows(6, seqs[0]);
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, rows, {1, 2, 64, 65, 200, 333}, 47u + layer);
    EXPECT_LE(rel_error(gpu, cpu), 2e-3) << "six queries, layer " << layer << "\n"
                                         << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaSplitPath,
    ::testing::Values(SplitCase{32, 8, 64, 3, 4, 0, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT},
                      SplitCase{32, 8, 64, 4, 8, 1, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_HEADWISE},
                      SplitCase{16, 8, 128, 16, 16, 0, STARKV_DECOMP_JOINT, STARKV_DECOMP_JOINT},
                      SplitCase{24, 24, 32, 2, 4, 0, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT}));

}  // namespace

// ---- uncompressed layers: the dense path (kernels/dense_layer_attention.cu) --------------------
//
// Profiles mix uncompressed layers (the builder's identity factors, fp16 rows: the dense kernels)
// with compressed ones (the low-rank kernels) in one pool. Tolerances: the dense path rounds the
// query, the rotated keys and the probabilities to fp16 (relative 2^-11 each, as any fp16
// flash-decoding kernel over a post-RoPE fp16 cache does) and accumulates in f32; a numerical
// model of exactly these roundings gives relative errors of 2e-4 to 6e-4 on these inputs, so the
// tests ask for 1e-3 (bf16 outputs: one more bf16 rounding, 8e-3 as above).

namespace {

// Sets (or clears) an environment variable for a scope; the backend reads STARKV_NO_DENSE when a
// pool is created.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

// The host-side rule that picks the dense path (no GPU needed).
TEST(CudaDenseLayers, OnlyExactlyDenseLayersQualify) {
  ProfileSpec spec;
  spec.H = 8;
  spec.G = 2;
  spec.D = 64;
  spec.n_layers = 3;
  spec.uncompressed_layers = {0, 2};
  ProfilePtr handle = make_random_profile(spec, 5u);
  const starkv::Profile& profile = *handle->profile;
  int32_t keys = -1, values = -1;
  ASSERT_TRUE(starkv::dense_row_offsets(profile, 0, &keys, &values));
  EXPECT_EQ(keys, 0);
  EXPECT_EQ(values, 2 * spec.G * spec.D);  // the G*D fp16 keys come first
  EXPECT_TRUE(starkv::dense_row_offsets(profile, 2, &keys, &values));
  EXPECT_FALSE(starkv::dense_row_offsets(profile, 1, &keys, &values)) << "a low-rank layer";

  // Any factor entry off the identity, however slightly, keeps the low-rank path.
  {
    starkv::Profile p = profile;
    p.layers[2].values[0].up[5] = 1e-30f;
    EXPECT_FALSE(starkv::dense_row_offsets(p, 2, &keys, &values));
  }
  {
    starkv::Profile p = profile;
    p.layers[2].keys[1].down[0] = std::nextafter(1.0f, 2.0f);
    EXPECT_FALSE(starkv::dense_row_offsets(p, 2, &keys, &values));
  }
  // 32-bit rows are not fp16.
  {
    starkv::Profile p = profile;
    p.layers[0].inlier_bits = p.layers[0].outlier_bits = 32;
    p.finalize_layouts();
    EXPECT_FALSE(starkv::dense_row_offsets(p, 0, &keys, &values));
  }
  // Identity factors set by the caller make a compressed layer: not taken (the rule is the flag
  // *and* the factors).
  {
    AttentionShape shape;
    shape.n_heads = 8;
    shape.n_kv_heads = 2;
    shape.head_dim = 64;
    ProfilePtr identity = make_identity_profile(shape, 1);
    EXPECT_FALSE(starkv::dense_row_offsets(*identity->profile, 0, &keys, &values));
  }
}

struct DenseCase {
  int32_t G, qpk, D;
  starkv_rope_style rope;
  int32_t rotary_dim;  // 0: head_dim
  starkv_decomposition key_decomp;
};
void PrintTo(const DenseCase& c, std::ostream* os) {
  *os << "G=" << c.G << ", " << c.qpk << " queries/kv-head, D=" << c.D << ", "
      << (c.rope == STARKV_ROPE_GPTJ   ? "gptj"
          : c.rope == STARKV_ROPE_NONE ? "no rope"
                                       : "neox")
      << (c.rotary_dim > 0 ? ", rotary " + std::to_string(c.rotary_dim) : std::string())
      << ", keys " << decomposition_name(c.key_decomp);
}

class CudaDenseVsCpu : public ::testing::TestWithParam<DenseCase> {};

// Layer 0 uncompressed (dense kernels), layer 1 compressed (low-rank kernels), one pool; a ragged
// batch whose longest sequence spans many work items; f32, f16 and bf16 queries and outputs.
TEST_P(CudaDenseVsCpu, MixedProfileRaggedBatchMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const DenseCase c = GetParam();
  ProfileSpec spec;
  spec.G = c.G;
  spec.H = c.G * c.qpk;
  spec.D = c.D;
  spec.rope = c.rope;
  spec.rotary_dim = c.rotary_dim;
  spec.key_decomp = c.key_decomp;
  spec.uncompressed_layers = {0};
  Twin twin(spec, 4321u + static_cast<uint32_t>(c.qpk * 11 + c.D + c.G));
  std::vector<std::pair<int32_t, int32_t>> seqs;
  for (int i = 0; i < 4; ++i) seqs.push_back(twin.new_sequence());
  const std::vector<int32_t> lengths{1, 37, 300, 4100};
  twin.append(seqs, lengths, 71u);
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu, gpu] = twin.attend(layer, seqs, lengths, 600u + layer);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << "layer " << layer << "\n"
                                         << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
  {
    auto [cpu, gpu] = twin.attend(0, seqs, lengths, 610u, STARKV_DTYPE_F16, STARKV_DTYPE_F16);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << "f16 in/out\n"
                                         << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
  {
    auto [cpu, gpu] = twin.attend(0, seqs, lengths, 611u, STARKV_DTYPE_F16, STARKV_DTYPE_F32);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << "f16 in, f32 out";
  }
  {
    auto [cpu, gpu] = twin.attend(0, seqs, lengths, 612u, STARKV_DTYPE_BF16, STARKV_DTYPE_BF16);
    EXPECT_LE(rel_error(gpu, cpu), 8e-3) << "bf16 in/out";
  }
  // Prefixes of the long sequence (causal prefill rows): 1 token, tile and page edges.
  std::vector<std::pair<int32_t, int32_t>> rows(8, seqs[3]);
  auto [cpu, gpu] = twin.attend(0, rows, {1, 2, 16, 17, 63, 64, 65, 4099}, 613u);
  EXPECT_LE(rel_error(gpu, cpu), 1e-3) << error_breakdown(gpu, cpu, spec.H, spec.D);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaDenseVsCpu,
    ::testing::Values(DenseCase{2, 1, 64, STARKV_ROPE_NEOX, 0, STARKV_DECOMP_HEADWISE},
                      DenseCase{3, 3, 64, STARKV_ROPE_NEOX, 0, STARKV_DECOMP_HEADWISE},
                      DenseCase{2, 4, 128, STARKV_ROPE_NEOX, 0, STARKV_DECOMP_HEADWISE},
                      DenseCase{2, 8, 128, STARKV_ROPE_GPTJ, 0, STARKV_DECOMP_JOINT},
                      DenseCase{2, 8, 64, STARKV_ROPE_NEOX, 32, STARKV_DECOMP_HEADWISE},
                      DenseCase{1, 3, 128, STARKV_ROPE_NEOX, 64, STARKV_DECOMP_JOINT},
                      DenseCase{4, 1, 128, STARKV_ROPE_GPTJ, 96, STARKV_DECOMP_HEADWISE},
                      DenseCase{2, 4, 32, STARKV_ROPE_GPTJ, 20, STARKV_DECOMP_HEADWISE},
                      DenseCase{2, 2, 32, STARKV_ROPE_NONE, 0, STARKV_DECOMP_HEADWISE},
                      // rotary 20 with neox: not covered by the dense kernel, the layer keeps the
                      // low-rank kernels and must still match
                      DenseCase{2, 2, 64, STARKV_ROPE_NEOX, 20, STARKV_DECOMP_HEADWISE}));

// Long contexts: many 16-token tiles per warp (the base angles are advanced and re-anchored),
// many work items per query, positions past 64K.
TEST(CudaDenseLayers, LongContextsMatchCpu) {
  SKIP_WITHOUT_GPU();
  {
    ProfileSpec spec;
    spec.H = 32;
    spec.G = 8;
    spec.D = 128;
    spec.theta = 500000.0f;
    spec.n_layers = 1;
    spec.uncompressed_layers = {0};
    Twin twin(spec, 77u, 64, 700);
    std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence(), twin.new_sequence()};
    twin.append_latents(seqs, 20000, 23u, 1.0f);
    auto [cpu, gpu] = twin.attend(0, seqs, {20000, 11111}, 29u);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
  {
    ProfileSpec spec;
    spec.H = 8;
    spec.G = 1;
    spec.D = 128;
    spec.theta = 500000.0f;
    spec.n_layers = 1;
    spec.uncompressed_layers = {0};
    const int32_t n = 131072 + 77;
    Twin twin(spec, 78u, 64, n / 64 + 8, 4);
    std::vector<std::pair<int32_t, int32_t>> seqs{twin.new_sequence()};
    twin.append_latents(seqs, n, 31u, 1.0f);
    auto [cpu, gpu] = twin.attend(0, {seqs[0], seqs[0]}, {n, 70000}, 37u);
    EXPECT_LE(rel_error(gpu, cpu), 1e-3) << error_breakdown(gpu, cpu, spec.H, spec.D);
  }
}

// STARKV_NO_DENSE=1 (read at pool creation) keeps uncompressed layers on the low-rank kernels;
// both paths must agree with the CPU and with each other.
TEST(CudaDenseLayers, NoDenseEnvironmentGivesTheSameResults) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;  // SmolLM2-135M's attention shape
  spec.H = 9;
  spec.G = 3;
  spec.D = 64;
  spec.uncompressed_layers = {0};
  std::unique_ptr<Twin> dense, low_rank;
  {
    ScopedEnv env("STARKV_NO_DENSE", "0");
    dense = std::make_unique<Twin>(spec, 91u);
  }
  {
    ScopedEnv env("STARKV_NO_DENSE", "1");
    low_rank = std::make_unique<Twin>(spec, 91u);
  }
  const std::vector<int32_t> lengths{5, 700, 2500};
  std::vector<std::pair<int32_t, int32_t>> seqs_a, seqs_b;
  for (size_t i = 0; i < lengths.size(); ++i) {
    seqs_a.push_back(dense->new_sequence());
    seqs_b.push_back(low_rank->new_sequence());
  }
  dense->append(seqs_a, lengths, 17u);
  low_rank->append(seqs_b, lengths, 17u);
  for (int32_t layer = 0; layer < spec.n_layers; ++layer) {
    auto [cpu_a, gpu_a] = dense->attend(layer, seqs_a, lengths, 50u + layer);
    auto [cpu_b, gpu_b] = low_rank->attend(layer, seqs_b, lengths, 50u + layer);
    EXPECT_EQ(cpu_a, cpu_b) << "the CPU pools hold the same data";
    EXPECT_LE(rel_error(gpu_a, cpu_a), 1e-3) << "layer " << layer << ", dense path";
    EXPECT_LE(rel_error(gpu_b, cpu_b), 1e-3) << "layer " << layer << ", STARKV_NO_DENSE=1";
    EXPECT_LE(rel_error(gpu_a, gpu_b), 2e-3) << "layer " << layer;
  }
}

// The dense path inside a planned decode step, captured into a CUDA graph (no allocation, no
// synchronization), next to a compressed layer.
TEST(CudaDenseLayers, DecodeStepIsGraphCapturable) {
  SKIP_WITHOUT_GPU();
  ProfileSpec spec;
  spec.H = 16;
  spec.G = 4;
  spec.D = 128;
  spec.uncompressed_layers = {1};
  Twin twin(spec, 14u, 32, 512);
  expect_captured_step_matches_cpu(twin, {100, 3000, 33}, 2, 8u, 2, 1e-3);
}

}  // namespace
