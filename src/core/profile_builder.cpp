// The profile builder's orchestration (profile_builder.h): validate the params, keep each layer's
// spectrum as it is added, and at finish allocate ranks over all layers, cut the factors, fold the
// quantizer's rotations in and lay the rows out. The math lives elsewhere: decomposition.cpp (SVD),
// rank_*.cpp (allocators), attention_distill_loss.h (the soft-threshold loss, on the CPU or a GPU).
#include "core/profile_builder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/attention_distill_loss.h"
#include "core/cpu_attention_distill_loss.h"
#include "core/enum_value.h"
#include "core/error.h"
#include "core/hadamard.h"
#include "core/layer_spectrum.h"
#include "core/rank_allocation.h"
#include "core/rope.h"

namespace starkv {
namespace {

// The K/V split rule's anchors (DESIGN §2.2): overall 0.60 -> keys 0.70 / values 0.50, 0.75 ->
// keys 0.80 / values 0.70. The mean of the two is always the target.
constexpr double kSplitTargetA = 0.60, kSplitKeyA = 0.70, kSplitValueA = 0.50;
constexpr double kSplitTargetB = 0.75, kSplitKeyB = 0.80, kSplitValueB = 0.70;
constexpr double kMaxTensorCompression = 0.98;

void report_progress(const starkv_profile_params& params, const char* stage, int64_t done,
                     int64_t total) {
  if (params.progress != nullptr &&
      params.progress(params.progress_user, stage, done, total) != 0) {
    throw Error(STARKV_ERR_CANCELLED,
                std::string("the progress callback cancelled the build (stage \"") + stage + "\")");
  }
}

bool finite_positive(float x) { return std::isfinite(x) && x > 0.0f; }

void validate_params(const starkv_profile_params& p) {
  auto invalid = [](bool ok, const std::string& message) {
    require(ok, STARKV_ERR_INVALID_ARGUMENT, message);
  };
  invalid(p.n_layers >= 1, "n_layers must be at least 1, got " + std::to_string(p.n_layers));
  invalid(p.n_heads >= 1 && p.n_kv_heads >= 1 && p.head_dim >= 1,
          "n_heads, n_kv_heads and head_dim must be at least 1");
  invalid(p.n_heads % p.n_kv_heads == 0, "n_heads (" + std::to_string(p.n_heads) +
                                             ") must be a multiple of n_kv_heads (" +
                                             std::to_string(p.n_kv_heads) + ")");
  invalid(p.hidden_dim >= 0, "hidden_dim must not be negative");

  invalid(enum_is_one_of(p.rope_style, STARKV_ROPE_NEOX, STARKV_ROPE_GPTJ, STARKV_ROPE_NONE),
          "unknown rope_style " + std::to_string(enum_value(p.rope_style)));
  const int32_t rotary = p.rope_dim > 0 ? p.rope_dim : p.head_dim;
  invalid(p.rope_dim >= 0 && rotary <= p.head_dim, "rope_dim must lie in [0, head_dim]");
  invalid(p.rope_style == STARKV_ROPE_NONE || rotary % 2 == 0,
          "the rotated dimension (rope_dim, or head_dim when 0) must be even");
  invalid(finite_positive(p.rope_theta), "rope_theta must be positive");
  invalid(enum_is_one_of(p.rope_scaling, STARKV_ROPE_SCALING_NONE, STARKV_ROPE_SCALING_LINEAR,
                         STARKV_ROPE_SCALING_LLAMA3),
          "unknown rope_scaling " + std::to_string(enum_value(p.rope_scaling)));
  if (p.rope_scaling != STARKV_ROPE_SCALING_NONE) {
    invalid(finite_positive(p.rope_scaling_factor), "rope_scaling_factor must be positive");
  }
  if (p.rope_scaling == STARKV_ROPE_SCALING_LLAMA3) {
    invalid(finite_positive(p.rope_low_freq_factor) && std::isfinite(p.rope_high_freq_factor) &&
                p.rope_high_freq_factor > p.rope_low_freq_factor,
            "llama3 RoPE scaling needs 0 < rope_low_freq_factor < rope_high_freq_factor");
    invalid(p.rope_original_max_position > 0, "rope_original_max_position must be positive");
  }
  invalid(std::isfinite(p.attention_scale) && p.attention_scale >= 0.0f,
          "attention_scale must be finite and not negative (0 = 1/sqrt(head_dim))");

  invalid(std::isfinite(p.target_compression) && p.target_compression >= 0.0f &&
              p.target_compression < 1.0f,
          "target_compression must lie in [0, 1), got " + std::to_string(p.target_compression));
  const bool key_set = p.key_compression >= 0.0f, value_set = p.value_compression >= 0.0f;
  invalid(key_set == value_set,
          "set key_compression and value_compression both (>= 0) or neither (< 0)");
  if (key_set) {
    invalid(p.key_compression < 1.0f && p.value_compression < 1.0f,
            "key_compression and value_compression must lie in [0, 1)");
  }
  invalid(enum_is_one_of(p.allocator, STARKV_ALLOC_SOFT_THRESHOLD, STARKV_ALLOC_STATIC,
                         STARKV_ALLOC_GREEDY),
          "unknown allocator " + std::to_string(enum_value(p.allocator)));
  invalid(enum_is_one_of(p.key_decomposition, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT) &&
              enum_is_one_of(p.value_decomposition, STARKV_DECOMP_HEADWISE, STARKV_DECOMP_JOINT),
          "unknown key or value decomposition");
  invalid(p.min_key_rank >= 0, "min_key_rank must not be negative");
  invalid(p.key_rank_tile >= 1 && p.value_rank_tile >= 1, "rank tiles must be at least 1");
  invalid(p.n_uncompressed_layers >= 0 &&
              (p.n_uncompressed_layers == 0 || p.uncompressed_layers != nullptr),
          "uncompressed_layers must not be NULL when n_uncompressed_layers > 0");
  for (int32_t i = 0; i < p.n_uncompressed_layers; ++i) {
    const int32_t l = p.uncompressed_layers[i];
    invalid(l >= 0 && l < p.n_layers, "uncompressed layer " + std::to_string(l) +
                                          " is out of range [0, " + std::to_string(p.n_layers) +
                                          ")");
  }
  invalid(p.target_counts_all_layers == 0 || p.target_counts_all_layers == 1,
          "target_counts_all_layers must be 0 or 1");

  invalid(std::isfinite(p.whitening_lambda) && p.whitening_lambda >= 0.0f,
          "whitening_lambda must be finite and not negative");
  invalid(p.max_calibration_tokens >= 1, "max_calibration_tokens must be at least 1");
  invalid(p.st_max_steps >= 0, "st_max_steps must not be negative");
  invalid(finite_positive(p.st_sharpness), "st_sharpness must be positive");
  invalid(finite_positive(p.st_learning_rate), "st_learning_rate must be positive");
  invalid(finite_positive(p.st_key_pressure) && finite_positive(p.st_value_pressure),
          "st_key_pressure and st_value_pressure must be positive");
  invalid(p.st_distill_tokens >= 0, "st_distill_tokens must not be negative");

  const int32_t ib = p.inlier_bits;
  invalid(ib == 2 || ib == 3 || ib == 4 || ib == 16 || ib == 32,
          "inlier_bits must be 2, 3, 4, 16 or 32, got " + std::to_string(ib));
  if (ib < 16) {
    invalid(p.outlier_bits == 4 || p.outlier_bits == 8 || p.outlier_bits == 16,
            "outlier_bits must be 4, 8 or 16, got " + std::to_string(p.outlier_bits));
  }
  invalid(
      std::isfinite(p.outlier_fraction) && p.outlier_fraction >= 0.0f && p.outlier_fraction <= 1.0f,
      "outlier_fraction must lie in [0, 1]");
  invalid(p.hadamard == 0 || p.hadamard == 1, "hadamard must be 0 or 1");
  invalid(p.pack_3bit_in_nibbles == 0 || p.pack_3bit_in_nibbles == 1,
          "pack_3bit_in_nibbles must be 0 or 1");
}

bool is_quantized(int32_t inlier_bits) { return inlier_bits < 16; }

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A distinct, reproducible rotation seed for every (layer, tensor, group).
uint64_t rotation_seed(uint64_t seed, int32_t layer, starkv_tensor_kind kind, size_t group) {
  uint64_t h = mix64(seed);
  h = mix64(h ^ static_cast<uint64_t>(layer));
  h = mix64(h ^ static_cast<uint64_t>(kind));
  return mix64(h ^ static_cast<uint64_t>(group));
}

FactorGroup identity_group(GroupRange range) {
  FactorGroup g;
  g.in_offset = range.in_offset;
  g.in_dim = g.rank = range.in_dim;
  g.down.assign(static_cast<size_t>(g.in_dim) * static_cast<size_t>(g.in_dim), 0.0f);
  for (int32_t i = 0; i < g.in_dim; ++i) g.down[static_cast<size_t>(i) * g.in_dim + i] = 1.0f;
  g.up = g.down;
  return g;
}

// Factors of a rank-r truncation: down = V[:, :r] ([in_dim x r]), up = downᵀ.
FactorGroup truncated_group(const GroupSpectrum& s, int32_t rank) {
  FactorGroup g;
  g.in_offset = s.in_offset;
  g.in_dim = s.in_dim;
  g.rank = rank;
  g.down.resize(static_cast<size_t>(s.in_dim) * static_cast<size_t>(rank));
  g.up.resize(g.down.size());
  for (int32_t i = 0; i < s.in_dim; ++i) {
    for (int32_t r = 0; r < rank; ++r) {
      const float v = s.basis[static_cast<size_t>(i) * s.in_dim + r];
      g.down[static_cast<size_t>(i) * rank + r] = v;
      g.up[static_cast<size_t>(r) * s.in_dim + i] = v;
    }
  }
  return g;
}

}  // namespace

void split_target_compression(float target, float* key_compression, float* value_compression) {
  const double slope_key = (kSplitKeyB - kSplitKeyA) / (kSplitTargetB - kSplitTargetA);
  const double slope_value = (kSplitValueB - kSplitValueA) / (kSplitTargetB - kSplitTargetA);
  double k = kSplitKeyA + slope_key * (target - kSplitTargetA);
  double v = kSplitValueA + slope_value * (target - kSplitTargetA);
  // Clamp without moving the mean (keys and values have the same dense width, so the mean is the
  // overall compression): what one side cannot take goes to the other.
  if (v < 0.0) {
    k += v;
    v = 0.0;
  }
  if (v > kMaxTensorCompression) {
    k += v - kMaxTensorCompression;
    v = kMaxTensorCompression;
  }
  *key_compression = static_cast<float>(std::clamp(k, 0.0, kMaxTensorCompression));
  *value_compression = static_cast<float>(std::clamp(v, 0.0, kMaxTensorCompression));
}

ProfileBuilder::ProfileBuilder(const starkv_profile_params& params,
                               std::unique_ptr<SpectrumSolver> solver)
    : params_(params),
      solver_(std::move(solver)) {
  validate_params(params_);
  uncompressed_layers_.assign(params.uncompressed_layers,
                              params.uncompressed_layers + params.n_uncompressed_layers);
  std::sort(uncompressed_layers_.begin(), uncompressed_layers_.end());
  uncompressed_layers_.erase(std::unique(uncompressed_layers_.begin(), uncompressed_layers_.end()),
                             uncompressed_layers_.end());
  // The caller's array is not ours to keep.
  params_.uncompressed_layers = nullptr;
  params_.n_uncompressed_layers = static_cast<int32_t>(uncompressed_layers_.size());
  layers_.resize(static_cast<size_t>(params_.n_layers));
}

ProfileBuilder::~ProfileBuilder() = default;

namespace {

void require_open_slot(bool finished, const std::vector<std::unique_ptr<LayerSpectrum>>& layers,
                       int32_t layer) {
  require(!finished, STARKV_ERR_INVALID_STATE, "the builder has already been finished");
  require(layer >= 0 && static_cast<size_t>(layer) < layers.size(), STARKV_ERR_INVALID_ARGUMENT,
          "layer " + std::to_string(layer) + " is out of range [0, " +
              std::to_string(layers.size()) + ")");
  require(layers[static_cast<size_t>(layer)] == nullptr, STARKV_ERR_INVALID_STATE,
          "layer " + std::to_string(layer) + " was already added");
}

int64_t count_present(const std::vector<std::unique_ptr<LayerSpectrum>>& layers) {
  return std::count_if(layers.begin(), layers.end(), [](const auto& l) { return l != nullptr; });
}

// Everything of a profile but its layers: shape, RoPE, softmax scale, storage format, record.
std::unique_ptr<Profile> profile_skeleton(const starkv_profile_params& p) {
  auto profile = std::make_unique<Profile>();
  profile->shape.n_layers = p.n_layers;
  profile->shape.n_heads = p.n_heads;
  profile->shape.n_kv_heads = p.n_kv_heads;
  profile->shape.head_dim = p.head_dim;
  profile->shape.hidden_dim = p.hidden_dim;
  profile->rope = rope_config_from_params(p);
  profile->attention_scale =
      p.attention_scale > 0.0f
          ? p.attention_scale
          : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  profile->quant.inlier_bits = p.inlier_bits;
  profile->quant.outlier_bits = is_quantized(p.inlier_bits) ? p.outlier_bits : p.inlier_bits;
  profile->quant.outlier_fraction = p.outlier_fraction;
  profile->quant.hadamard = p.hadamard != 0;
  profile->quant.pack_3bit_in_nibbles = p.pack_3bit_in_nibbles != 0;
  profile->seed = p.seed;

  BuildRecord& record = profile->record;
  record.allocator = p.allocator;
  record.target_compression = p.target_compression;
  record.key_compression = p.key_compression;
  record.value_compression = p.value_compression;
  if (p.key_compression < 0.0f) {
    split_target_compression(p.target_compression, &record.key_compression,
                             &record.value_compression);
  }
  return profile;
}

// The allocation problem over every group of every decomposed layer, with the distillation losses
// it points to (soft threshold only) and, per model layer, its index in problem.layers (-1: none).
struct RankSetup {
  RankProblem problem;
  std::vector<std::unique_ptr<AttentionDistillLoss>> losses;
  std::vector<int32_t> problem_layer_of;
};

// Budgets (DESIGN §2.4): (1 − compression) of the dense G*D channels of every counted layer, for
// keys and for values; the decomposed groups share what the imported layers and, when they count,
// the uncompressed layers leave over. Also records calibrated/imported.
// The distillation losses run where the builder's solver runs: on its CUDA device when it has one
// (cuda_device >= 0; the losses share one stream and cuBLAS handle), else on the CPU. The
// allocator evaluates every layer's loss on every step, most of a calibrated build's arithmetic.
RankSetup rank_setup(const starkv_profile_params& p, Profile& profile,
                     const std::vector<std::unique_ptr<LayerSpectrum>>& layers,
                     int32_t cuda_device) {
  using Source = LayerSpectrum::Source;
  const int32_t width = p.n_kv_heads * p.head_dim;
  BuildRecord& record = profile.record;
  RankSetup setup;
  setup.problem_layer_of.assign(layers.size(), -1);

  int32_t counted_layers = 0;
  double taken_keys = 0.0, taken_values = 0.0;
  for (const auto& layer : layers) {
    if (layer->source == Source::kUncompressed) {
      if (!p.target_counts_all_layers) continue;
      taken_keys += width;
      taken_values += width;
    } else if (layer->source == Source::kFixedFactors) {
      for (const FactorGroup& g : layer->fixed_keys) taken_keys += g.rank;
      for (const FactorGroup& g : layer->fixed_values) taken_values += g.rank;
      record.imported = true;
    }
    ++counted_layers;
  }
  const double dense = static_cast<double>(counted_layers) * width;
  RankProblem& problem = setup.problem;
  problem.key_budget = (1.0 - record.key_compression) * dense - taken_keys;
  problem.value_budget = (1.0 - record.value_compression) * dense - taken_values;

  std::shared_ptr<CudaDistillQueue> queue;  // made with the first CUDA loss
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerSpectrum& s = *layers[l];
    if (s.source != Source::kDecomposed) continue;
    record.calibrated = record.calibrated || s.calibrated;
    const int32_t index = static_cast<int32_t>(problem.layers.size());
    RankLayer layer;
    for (const GroupSpectrum& g : s.keys) {
      layer.key_groups.push_back(static_cast<int32_t>(problem.keys.size()));
      problem.keys.push_back(
          {index, &g, std::min(g.in_dim, std::max(1, p.min_key_rank)), p.key_rank_tile});
    }
    for (const GroupSpectrum& g : s.values) {
      layer.value_groups.push_back(static_cast<int32_t>(problem.values.size()));
      problem.values.push_back({index, &g, 1, p.value_rank_tile});
    }
    if (p.allocator == STARKV_ALLOC_SOFT_THRESHOLD && s.distill.has_queries()) {
      if (cuda_device >= 0) {
        if (queue == nullptr) queue = make_cuda_distill_queue(cuda_device);
        setup.losses.push_back(make_cuda_attention_distill_loss(queue, profile.shape, profile.rope,
                                                                profile.attention_scale, s.distill,
                                                                s.keys, s.values));
      } else {
        setup.losses.push_back(std::make_unique<CpuAttentionDistillLoss>(
            profile.shape, profile.rope, profile.attention_scale, s.distill, s.keys, s.values));
      }
      layer.loss = setup.losses.back().get();
    }
    setup.problem_layer_of[l] = index;
    problem.layers.push_back(std::move(layer));
  }
  return setup;
}

RankAllocation run_allocator(const starkv_profile_params& p, const RankProblem& problem) {
  const int64_t total = p.allocator == STARKV_ALLOC_SOFT_THRESHOLD ? p.st_max_steps : 1;
  report_progress(p, "allocate", 0, total);
  RankAllocation allocation;
  switch (p.allocator) {
    case STARKV_ALLOC_STATIC:
      allocation = allocate_static(problem);
      break;
    case STARKV_ALLOC_GREEDY:
      allocation = allocate_greedy(problem);
      break;
    case STARKV_ALLOC_SOFT_THRESHOLD: {
      SoftThresholdOptions options;
      options.max_steps = p.st_max_steps;
      options.sharpness = p.st_sharpness;
      options.learning_rate = p.st_learning_rate;
      options.key_pressure = p.st_key_pressure;
      options.value_pressure = p.st_value_pressure;
      allocation = allocate_soft_threshold(problem, options, [&](int64_t done, int64_t all) {
        report_progress(p, "allocate", done, all);
      });
      break;
    }
  }
  report_progress(p, "allocate", total, total);
  return allocation;
}

// One layer of the profile: identity factors for an uncompressed layer, the given factors for an
// imported one, truncated bases at the allocated ranks otherwise; then, for compressed layers, the
// outlier split and the folded Hadamard rotations.
LayerProfile assemble_layer(const starkv_profile_params& p, const QuantConfig& quant, int32_t l,
                            const LayerSpectrum& s, const RankAllocation& allocation,
                            const RankLayer* allocated) {
  LayerProfile layer;
  layer.key_decomposition = s.key_decomposition;
  layer.value_decomposition = s.value_decomposition;
  switch (s.source) {
    case LayerSpectrum::Source::kUncompressed:
      layer.compressed = false;
      layer.key_decomposition = p.key_decomposition;
      layer.value_decomposition = p.value_decomposition;
      for (GroupRange r : group_ranges(p.key_decomposition, p.n_kv_heads, p.head_dim)) {
        layer.keys.push_back(identity_group(r));
      }
      for (GroupRange r : group_ranges(p.value_decomposition, p.n_kv_heads, p.head_dim)) {
        layer.values.push_back(identity_group(r));
      }
      layer.inlier_bits = layer.outlier_bits = 16;
      return layer;
    case LayerSpectrum::Source::kFixedFactors:
      layer.keys = s.fixed_keys;
      layer.values = s.fixed_values;
      break;
    case LayerSpectrum::Source::kDecomposed:
      for (size_t k = 0; k < s.keys.size(); ++k) {
        const size_t j = static_cast<size_t>(allocated->key_groups[k]);
        layer.keys.push_back(truncated_group(s.keys[k], allocation.key_ranks[j]));
      }
      for (size_t k = 0; k < s.values.size(); ++k) {
        const size_t j = static_cast<size_t>(allocated->value_groups[k]);
        layer.values.push_back(truncated_group(s.values[k], allocation.value_ranks[j]));
      }
      break;
  }
  layer.inlier_bits = quant.inlier_bits;
  layer.outlier_bits = quant.outlier_bits;
  const bool quantized = is_quantized(quant.inlier_bits);
  for (starkv_tensor_kind kind : {STARKV_KEYS, STARKV_VALUES}) {
    std::vector<FactorGroup>& groups = kind == STARKV_KEYS ? layer.keys : layer.values;
    for (size_t j = 0; j < groups.size(); ++j) {
      FactorGroup& g = groups[j];
      g.n_outlier =
          quantized ? static_cast<int32_t>(std::floor(quant.outlier_fraction * g.rank)) : 0;
      if (quantized && quant.hadamard) {
        fold_block_rotations(g.down, g.up, g.in_dim, g.rank, g.n_outlier,
                             rotation_seed(p.seed, l, kind, j));
      }
    }
  }
  return layer;
}
}  // namespace

void ProfileBuilder::add_layer(int32_t layer, const starkv_layer_data& data) {
  require_open_slot(finished_, layers_, layer);
  std::unique_ptr<LayerSpectrum> spectrum;
  if (std::binary_search(uncompressed_layers_.begin(), uncompressed_layers_.end(), layer)) {
    spectrum = std::make_unique<LayerSpectrum>();  // kept whole: nothing to decompose
    spectrum->source = LayerSpectrum::Source::kUncompressed;
  } else {
    spectrum = spectrum_from_layer_data(params_, layer, data, solver());
  }
  // Reported before the layer is kept, so a cancelled add_layer leaves the builder unchanged.
  report_progress(params_, "decompose", count_present(layers_) + 1, params_.n_layers);
  layers_[static_cast<size_t>(layer)] = std::move(spectrum);
}

void ProfileBuilder::set_layer_factors(int32_t layer, const starkv_layer_factors& factors) {
  require_open_slot(finished_, layers_, layer);
  require(!std::binary_search(uncompressed_layers_.begin(), uncompressed_layers_.end(), layer),
          STARKV_ERR_INVALID_ARGUMENT,
          "layer " + std::to_string(layer) + " is listed as uncompressed; it takes no factors");
  layers_[static_cast<size_t>(layer)] = spectrum_from_factors(params_, layer, factors);
}

std::unique_ptr<Profile> ProfileBuilder::finish() {
  require(!finished_, STARKV_ERR_INVALID_STATE, "the builder has already been finished");
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l] != nullptr) continue;
    // Uncompressed layers need not be added: there is nothing to decompose.
    require(std::binary_search(uncompressed_layers_.begin(), uncompressed_layers_.end(),
                               static_cast<int32_t>(l)),
            STARKV_ERR_INVALID_STATE,
            "layer " + std::to_string(l) + " was neither added nor given factors (" +
                std::to_string(count_present(layers_)) + " of " + std::to_string(layers_.size()) +
                " layers are in)");
    layers_[l] = std::make_unique<LayerSpectrum>();
    layers_[l]->source = LayerSpectrum::Source::kUncompressed;
  }

  std::unique_ptr<Profile> profile = profile_skeleton(params_);
  RankSetup setup = rank_setup(params_, *profile, layers_, solver().cuda_device());
  const RankAllocation allocation =
      setup.problem.layers.empty() ? RankAllocation{} : run_allocator(params_, setup.problem);

  for (size_t l = 0; l < layers_.size(); ++l) {
    const int32_t index = setup.problem_layer_of[l];
    profile->layers.push_back(
        assemble_layer(params_, profile->quant, static_cast<int32_t>(l), *layers_[l], allocation,
                       index >= 0 ? &setup.problem.layers[static_cast<size_t>(index)] : nullptr));
    report_progress(params_, "fold", static_cast<int64_t>(l) + 1, params_.n_layers);
  }
  profile->finalize_layouts();

  finished_ = true;
  layers_.clear();  // the spectra are no longer needed; a finished builder accepts nothing more
  return profile;
}

}  // namespace starkv
