#include "core/layer_spectrum.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/enum_value.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/rope.h"

namespace starkv {
namespace {

std::vector<double> to_double(const void* data, starkv_dtype dtype, size_t n) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = load_as_float(data, dtype, i);
  return out;
}

template <typename T>
void require_finite(const std::vector<T>& v, const std::string& what) {
  for (T x : v) {
    require(std::isfinite(x), STARKV_ERR_NUMERICAL, what + " contains NaN or Inf");
  }
}

void require_dtype(const starkv_dtype& dtype, const std::string& what) {
  require(enum_is_one_of(dtype, STARKV_DTYPE_F32, STARKV_DTYPE_F16, STARKV_DTYPE_BF16),
          STARKV_ERR_DTYPE, what + " has an unknown dtype " + std::to_string(enum_value(dtype)));
}

bool valid_decomposition(const starkv_decomposition& d) {
  return enum_is_one_of(d, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT);
}

std::vector<float> to_float(const std::vector<double>& v, size_t n) {
  return std::vector<float>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
}

// rows x width = X[:rows] · W, in fp32 for the distillation sample.
std::vector<float> project(SpectrumSolver& solver, const std::vector<double>& x, int64_t rows,
                           int32_t hidden_dim, const std::vector<double>& w, int32_t width) {
  std::vector<double> out(static_cast<size_t>(rows) * static_cast<size_t>(width));
  solver.multiply(rows, width, hidden_dim, x.data(), w.data(), out.data());
  return to_float(out, out.size());
}

// Copies `count` concatenated groups of factors ([in_dim x rank] down, [rank x in_dim] up).
std::vector<FactorGroup> copy_factor_groups(const std::vector<GroupRange>& ranges,
                                            const int32_t* ranks, const float* down,
                                            const float* up, const std::string& what) {
  require(ranks != nullptr && down != nullptr, STARKV_ERR_INVALID_ARGUMENT,
          what + " ranks and down matrices must not be NULL");
  std::vector<FactorGroup> groups;
  size_t down_at = 0, up_at = 0;
  for (size_t g = 0; g < ranges.size(); ++g) {
    FactorGroup group;
    group.in_offset = ranges[g].in_offset;
    group.in_dim = ranges[g].in_dim;
    group.rank = ranks[g];
    require(group.rank >= 1 && group.rank <= group.in_dim, STARKV_ERR_INVALID_ARGUMENT,
            what + " group " + std::to_string(g) + " has rank " + std::to_string(group.rank) +
                ", outside [1, " + std::to_string(group.in_dim) + "]");
    const size_t n = static_cast<size_t>(group.in_dim) * static_cast<size_t>(group.rank);
    group.down.assign(down + down_at, down + down_at + n);
    down_at += n;
    group.up.resize(n);
    if (up != nullptr) {
      group.up.assign(up + up_at, up + up_at + n);
      up_at += n;
    } else {  // orthonormal factors: up = downᵀ
      for (int32_t i = 0; i < group.in_dim; ++i) {
        for (int32_t r = 0; r < group.rank; ++r) {
          group.up[static_cast<size_t>(r) * group.in_dim + i] =
              group.down[static_cast<size_t>(i) * group.rank + r];
        }
      }
    }
    require_finite(group.down, what + " group " + std::to_string(g) + " down");
    require_finite(group.up, what + " group " + std::to_string(g) + " up");
    groups.push_back(std::move(group));
  }
  return groups;
}

}  // namespace

std::unique_ptr<LayerSpectrum> spectrum_from_layer_data(const starkv_profile_params& params,
                                                        int32_t layer,
                                                        const starkv_layer_data& data,
                                                        SpectrumSolver& solver) {
  const std::string where = "layer " + std::to_string(layer) + ": ";
  const int32_t G = params.n_kv_heads, D = params.head_dim, H = params.n_heads;
  const int32_t d = params.hidden_dim, width = G * D;

  // --- which inputs are there, and are they consistent ---
  require((data.w_k == nullptr) == (data.w_v == nullptr), STARKV_ERR_INVALID_ARGUMENT,
          where + "give both w_k and w_v, or neither (to build from K/V samples)");
  const bool has_weights = data.w_k != nullptr;
  require(data.n_calib_kv >= 0 && data.n_calib_hidden >= 0, STARKV_ERR_INVALID_ARGUMENT,
          where + "calibration token counts must not be negative");
  const bool has_samples = data.n_calib_kv > 0;
  const bool has_hidden = data.n_calib_hidden > 0;
  require(has_weights || has_samples, STARKV_ERR_INVALID_ARGUMENT,
          where + "needs weights (w_k, w_v) or calibration K/V samples (calib_k, calib_v)");
  if (has_weights) {
    require(d > 0, STARKV_ERR_INVALID_ARGUMENT,
            where + "weights were given but params.hidden_dim is 0");
    require_dtype(data.weight_dtype, where + "the weights");
    require(enum_is_one_of(data.weight_layout, STARKV_WEIGHT_OUT_IN, STARKV_WEIGHT_IN_OUT),
            STARKV_ERR_INVALID_ARGUMENT, where + "unknown weight_layout");
  }
  if (has_samples) {
    require(data.calib_k != nullptr && data.calib_v != nullptr, STARKV_ERR_INVALID_ARGUMENT,
            where + "n_calib_kv > 0 needs both calib_k and calib_v");
    require_dtype(data.calib_kv_dtype, where + "the calibration K/V samples");
  }
  if (has_hidden) {
    require(data.calib_hidden != nullptr, STARKV_ERR_INVALID_ARGUMENT,
            where + "n_calib_hidden > 0 needs calib_hidden");
    require(has_weights, STARKV_ERR_INVALID_ARGUMENT,
            where + "calibration hidden states need the weights w_k and w_v");
    require_dtype(data.calib_hidden_dtype, where + "the calibration hidden states");
  }

  // --- copy everything out of the caller's buffers, as double ---
  std::vector<double> w_k, w_v, hidden, k_samples, v_samples;
  if (has_weights) {
    w_k = weights_as_in_out(data.w_k, data.weight_dtype, data.weight_layout, d, width);
    w_v = weights_as_in_out(data.w_v, data.weight_dtype, data.weight_layout, d, width);
    require_finite(w_k, where + "w_k");
    require_finite(w_v, where + "w_v");
  }
  const int64_t n_hidden = std::min<int64_t>(data.n_calib_hidden, params.max_calibration_tokens);
  if (has_hidden) {
    hidden = to_double(data.calib_hidden, data.calib_hidden_dtype,
                       static_cast<size_t>(n_hidden) * static_cast<size_t>(d));
    require_finite(hidden, where + "calib_hidden");
  }
  const int64_t n_kv = std::min<int64_t>(data.n_calib_kv, params.max_calibration_tokens);
  if (has_samples) {
    const size_t n = static_cast<size_t>(n_kv) * static_cast<size_t>(width);
    k_samples = to_double(data.calib_k, data.calib_kv_dtype, n);
    v_samples = to_double(data.calib_v, data.calib_kv_dtype, n);
    require_finite(k_samples, where + "calib_k");
    require_finite(v_samples, where + "calib_v");
  }

  // --- decompose ---
  auto spectrum = std::make_unique<LayerSpectrum>();
  spectrum->source = LayerSpectrum::Source::kDecomposed;
  spectrum->key_decomposition = params.key_decomposition;
  spectrum->value_decomposition = params.value_decomposition;
  DecompositionInput input;
  input.width = width;
  input.hidden_dim = d;
  input.hidden = has_hidden ? hidden.data() : nullptr;
  input.n_hidden = has_hidden ? n_hidden : 0;
  input.n_samples = has_samples ? n_kv : 0;
  input.whitening_lambda = params.whitening_lambda;

  input.weights = has_weights ? w_k.data() : nullptr;
  input.samples = has_samples ? k_samples.data() : nullptr;
  spectrum->calibrated = is_data_aware(input);
  spectrum->keys = decompose_tensor(input, params.key_decomposition, G, D, solver);
  input.weights = has_weights ? w_v.data() : nullptr;
  input.samples = has_samples ? v_samples.data() : nullptr;
  spectrum->values = decompose_tensor(input, params.value_decomposition, G, D, solver);

  // --- the distillation sample: the first st_distill_tokens calibration tokens ---
  DistillSample& sample = spectrum->distill;
  if (has_samples) {
    sample.n_tokens = static_cast<int32_t>(std::min<int64_t>(n_kv, params.st_distill_tokens));
    const size_t n = static_cast<size_t>(sample.n_tokens) * static_cast<size_t>(width);
    sample.keys = to_float(k_samples, n);
    sample.values = to_float(v_samples, n);
    if (data.calib_q != nullptr && sample.n_tokens > 0) {
      sample.queries.resize(static_cast<size_t>(sample.n_tokens) * static_cast<size_t>(H) * D);
      convert_to_float(data.calib_q, data.calib_kv_dtype, sample.queries.size(),
                       sample.queries.data());
      require_finite(sample.queries, where + "calib_q");
    }
  } else if (has_hidden) {
    sample.n_tokens = static_cast<int32_t>(std::min<int64_t>(n_hidden, params.st_distill_tokens));
    sample.keys = project(solver, hidden, sample.n_tokens, d, w_k, width);
    sample.values = project(solver, hidden, sample.n_tokens, d, w_v, width);
    if (data.w_q != nullptr && sample.n_tokens > 0) {
      std::vector<double> w_q =
          weights_as_in_out(data.w_q, data.weight_dtype, data.weight_layout, d, H * D);
      require_finite(w_q, where + "w_q");
      sample.queries = project(solver, hidden, sample.n_tokens, d, w_q, H * D);
      // The engine hands queries post-RoPE; so does this sample (tokens at positions 0..n-1).
      const RopeConfig rope = rope_config_from_params(params);
      std::vector<float> inv_freq(static_cast<size_t>(std::max(1, rope.rotary_dim / 2)));
      rope_inverse_frequencies(rope, D, inv_freq.data());
      for (int32_t t = 0; t < sample.n_tokens; ++t) {
        for (int32_t h = 0; h < H; ++h) {
          apply_rope(rope, D, t, inv_freq.data(),
                     sample.queries.data() + (static_cast<size_t>(t) * H + h) * D);
        }
      }
    }
  }
  if (sample.n_tokens == 0) sample = DistillSample{};
  return spectrum;
}

std::unique_ptr<LayerSpectrum> spectrum_from_factors(const starkv_profile_params& params,
                                                     int32_t layer,
                                                     const starkv_layer_factors& factors) {
  const std::string where = "layer " + std::to_string(layer) + ": ";
  require(valid_decomposition(factors.key_decomposition) &&
              valid_decomposition(factors.value_decomposition),
          STARKV_ERR_INVALID_ARGUMENT, where + "unknown key or value decomposition");
  auto spectrum = std::make_unique<LayerSpectrum>();
  spectrum->source = LayerSpectrum::Source::kFixedFactors;
  spectrum->key_decomposition = factors.key_decomposition;
  spectrum->value_decomposition = factors.value_decomposition;
  spectrum->fixed_keys = copy_factor_groups(
      group_ranges(factors.key_decomposition, params.n_kv_heads, params.head_dim),
      factors.key_ranks, factors.key_down, factors.key_up, where + "key");
  spectrum->fixed_values = copy_factor_groups(
      group_ranges(factors.value_decomposition, params.n_kv_heads, params.head_dim),
      factors.value_ranks, factors.value_down, factors.value_up, where + "value");
  return spectrum;
}

}  // namespace starkv
