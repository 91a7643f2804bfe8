// The soft-threshold allocator, STAR-KV's adaptive rank (DESIGN §2.2).
//
// Group j's singular values, normalized by its largest (σ̂ ∈ [0, 1]), pass through a learned
// threshold α_j: mask m_i = tanh(s(σ̂_i − α_j)) for σ̂_i > α_j, else 0, so directions below the
// threshold vanish and those just above fade in smoothly, which gives α a gradient. The objective
//   Σ_layers L_layer(m) + γ_K Σ_keys exp(−α_j) + γ_V Σ_values exp(−α_j)
// has L_layer = the layer's attention-output distillation loss when it has calibration queries
// (attention_distill_loss.h), otherwise the relative spectral energy lost by the mask,
// Σ σ_i²(1 − m_i)² / Σ σ_i² over the layer's groups of each kind.
//
// The loss is measured in units of its value at the plain answer (one common normalized threshold
// meeting the budgets; see loss_normalization), so the pressure weights mean the same for any
// model.
//
// Phase 1: Adam on α from α = 0. While a kind (keys, values) is over its budget its pressure γ
// grows multiplicatively; once its hard ranks #{σ̂ > α} (after the floor and tile rules) fit the
// budget, its thresholds freeze. Then the ranks are read off the thresholds and fitted to the
// budget: a global shift of all the kind's thresholds (bisection) and single steps ordered by their
// margin σ̂ − α, so the ranks land on the budget whatever the optimizer reached.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rank_allocation.h"

namespace starkv {
namespace {

// How fast γ grows per step while a kind is over budget: doubling in ~14 steps, slow against
// Adam's ~lr-per-step motion of α, so the thresholds can follow the rising pressure.
constexpr double kPressureGrowth = 1.05;
constexpr double kAdamBeta1 = 0.9, kAdamBeta2 = 0.999, kAdamEpsilon = 1e-8;

// The thresholds and optimizer state of one tensor kind (all key groups, or all value groups).
struct ThresholdSet {
  const std::vector<RankGroup>* groups = nullptr;
  double budget = 0.0;
  double pressure = 0.0;
  bool frozen = false;
  std::vector<std::vector<double>> sigma_hat;  // normalized spectra
  std::vector<double> alpha, adam_m, adam_v, grad;

  ThresholdSet(const std::vector<RankGroup>& g, double b, double initial_pressure)
      : groups(&g), budget(b), pressure(initial_pressure) {
    for (const RankGroup& group : g) {
      const std::vector<double>& s = group.spectrum->sigma;
      const double top = s.empty() ? 0.0 : s.front();
      std::vector<double> normalized(s.size(), 0.0);
      if (top > 0.0) {
        for (size_t i = 0; i < s.size(); ++i) normalized[i] = s[i] / top;
      }
      sigma_hat.push_back(std::move(normalized));
    }
    alpha.assign(g.size(), 0.0);
    adam_m.assign(g.size(), 0.0);
    adam_v.assign(g.size(), 0.0);
    grad.assign(g.size(), 0.0);
  }

  // Allowed rank of group j for a threshold: the directions above it, then the floor/tile rules.
  int32_t rank_at(size_t j, double threshold) const {
    const std::vector<double>& s = sigma_hat[j];
    const int32_t above = static_cast<int32_t>(
        std::count_if(s.begin(), s.end(), [&](double v) { return v > threshold; }));
    return nearest_allowed_rank((*groups)[j], above);
  }
  int64_t total_at_shift(double shift) const {
    int64_t total = 0;
    for (size_t j = 0; j < alpha.size(); ++j) total += rank_at(j, alpha[j] + shift);
    return total;
  }
  // The smallest common shift of all thresholds whose hard ranks fit `target` (bisection: the
  // total only falls as the shift grows). Shifts span every threshold position: α + shift must
  // reach below 0 and above 1.
  double shift_for_budget(double target) const {
    double lo = -1.0 - 1e-9, hi = 1.0 + 1e-9;
    if (static_cast<double>(total_at_shift(lo)) <= target) return lo;  // everything fits
    for (int iter = 0; iter < 60; ++iter) {
      const double mid = 0.5 * (lo + hi);
      (static_cast<double>(total_at_shift(mid)) <= target ? hi : lo) = mid;
    }
    return hi;
  }
};

std::vector<double> soft_mask(const std::vector<double>& sigma_hat, double alpha,
                              double sharpness) {
  std::vector<double> m(sigma_hat.size(), 0.0);
  for (size_t i = 0; i < m.size(); ++i) {
    if (sigma_hat[i] > alpha) m[i] = std::tanh(sharpness * (sigma_hat[i] - alpha));
  }
  return m;
}

// dL/dα_j from dL/dm: dm_i/dα = −s (1 − m_i²) above the threshold, 0 below.
double threshold_gradient(const std::vector<double>& sigma_hat, double alpha,
                          const std::vector<double>& mask, const std::vector<double>& mask_grad,
                          double sharpness) {
  double g = 0.0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (sigma_hat[i] > alpha) g -= mask_grad[i] * sharpness * (1.0 - mask[i] * mask[i]);
  }
  return g;
}

// The spectral-energy fallback for one kind of one layer, L = Σ σ_i² (1 − m_i)² / E over its
// groups (E their total energy); with `grad`, also dL/dm_i = −2 σ_i² (1 − m_i) / E.
double spectral_loss(const std::vector<RankGroup>& groups, const std::vector<int32_t>& members,
                     const std::vector<std::vector<double>>& masks,
                     std::vector<std::vector<double>>* grad) {
  double energy = 0.0, lost = 0.0;
  for (size_t k = 0; k < members.size(); ++k) {
    const std::vector<double>& sigma = groups[static_cast<size_t>(members[k])].spectrum->sigma;
    for (size_t i = 0; i < sigma.size(); ++i) {
      energy += sigma[i] * sigma[i];
      lost += sigma[i] * sigma[i] * (1.0 - masks[k][i]) * (1.0 - masks[k][i]);
    }
  }
  if (grad != nullptr) {
    grad->clear();
    for (size_t k = 0; k < members.size(); ++k) {
      const std::vector<double>& sigma = groups[static_cast<size_t>(members[k])].spectrum->sigma;
      std::vector<double> g(sigma.size(), 0.0);
      if (energy > 0.0) {
        for (size_t i = 0; i < g.size(); ++i)
          g[i] = -2.0 * sigma[i] * sigma[i] * (1.0 - masks[k][i]) / energy;
      }
      grad->push_back(std::move(g));
    }
  }
  return energy > 0.0 ? lost / energy : 0.0;
}

// Σ_layers L_layer at the current thresholds. With `with_grad`, also fills keys.grad and
// values.grad with `scale` · dL/dα.
double evaluate_layers(const RankProblem& problem, double sharpness, bool with_grad, double scale,
                       ThresholdSet& keys, ThresholdSet& values) {
  std::fill(keys.grad.begin(), keys.grad.end(), 0.0);
  std::fill(values.grad.begin(), values.grad.end(), 0.0);
  double total = 0.0;
  // Layers are independent, but running them on OpenMP threads fights OpenBLAS's own threads
  // (measured 7x slower on 2 cores); the GEMMs inside carry the parallelism instead.
  for (const RankLayer& layer : problem.layers) {
    std::vector<std::vector<double>> key_masks, value_masks, key_grad, value_grad;
    for (int32_t j : layer.key_groups) {
      key_masks.push_back(soft_mask(keys.sigma_hat[static_cast<size_t>(j)],
                                    keys.alpha[static_cast<size_t>(j)], sharpness));
    }
    for (int32_t j : layer.value_groups) {
      value_masks.push_back(soft_mask(values.sigma_hat[static_cast<size_t>(j)],
                                      values.alpha[static_cast<size_t>(j)], sharpness));
    }
    if (layer.loss != nullptr) {
      total += layer.loss->evaluate(key_masks, value_masks, with_grad ? &key_grad : nullptr,
                                    with_grad ? &value_grad : nullptr);
    } else {
      total +=
          spectral_loss(problem.keys, layer.key_groups, key_masks, with_grad ? &key_grad : nullptr);
      total += spectral_loss(problem.values, layer.value_groups, value_masks,
                             with_grad ? &value_grad : nullptr);
    }
    if (!with_grad) continue;
    for (size_t k = 0; k < layer.key_groups.size(); ++k) {
      const size_t j = static_cast<size_t>(layer.key_groups[k]);
      keys.grad[j] += scale * threshold_gradient(keys.sigma_hat[j], keys.alpha[j], key_masks[k],
                                                 key_grad[k], sharpness);
    }
    for (size_t k = 0; k < layer.value_groups.size(); ++k) {
      const size_t j = static_cast<size_t>(layer.value_groups[k]);
      values.grad[j] += scale * threshold_gradient(values.sigma_hat[j], values.alpha[j],
                                                   value_masks[k], value_grad[k], sharpness);
    }
  }
  return total;
}

// The distillation loss has no natural scale (a relative error, summed over layers) while the
// pressure's does (γ e^{−α} with γ ~ 0.1), and only their ratio steers Adam. Measuring the loss
// in units of its value at the plain answer — one common normalized threshold meeting the budgets
// — makes the loss gradient O(1) where compression starts to cost, so the thresholds settle where
// the loss resists instead of all rising together under the pressure.
double loss_normalization(const RankProblem& problem, double sharpness, ThresholdSet& keys,
                          ThresholdSet& values) {
  const std::vector<double> key_alpha = keys.alpha, value_alpha = values.alpha;
  const double key_shift = keys.shift_for_budget(keys.budget);
  const double value_shift = values.shift_for_budget(values.budget);
  for (double& a : keys.alpha) a = std::clamp(a + key_shift, 0.0, 1.0);
  for (double& a : values.alpha) a = std::clamp(a + value_shift, 0.0, 1.0);
  const double reference = evaluate_layers(problem, sharpness, false, 1.0, keys, values);
  keys.alpha = key_alpha;
  values.alpha = value_alpha;
  return reference > 0.0 ? 1.0 / reference : 1.0;
}

// Adds the pressure term and takes one Adam step; then freezes the set if its hard ranks fit, or
// raises the pressure if not.
void adam_step(ThresholdSet& set, int32_t step, double learning_rate) {
  if (set.frozen) return;
  const double bias1 = 1.0 - std::pow(kAdamBeta1, step), bias2 = 1.0 - std::pow(kAdamBeta2, step);
  for (size_t j = 0; j < set.alpha.size(); ++j) {
    const double g = set.grad[j] - set.pressure * std::exp(-set.alpha[j]);
    set.adam_m[j] = kAdamBeta1 * set.adam_m[j] + (1.0 - kAdamBeta1) * g;
    set.adam_v[j] = kAdamBeta2 * set.adam_v[j] + (1.0 - kAdamBeta2) * g * g;
    const double step_size =
        learning_rate * (set.adam_m[j] / bias1) / (std::sqrt(set.adam_v[j] / bias2) + kAdamEpsilon);
    // Past 1 every normalized singular value is below the threshold; below 0 none is.
    set.alpha[j] = std::clamp(set.alpha[j] - step_size, 0.0, 1.0);
  }
  if (static_cast<double>(set.total_at_shift(0.0)) <= set.budget) {
    set.frozen = true;
  } else {
    set.pressure *= kPressureGrowth;
  }
}

// Freezes the ranks: the loosest global shift of the thresholds that fits the budget, then single
// steps by margin (the direction nearest its threshold goes first).
std::vector<int32_t> ranks_on_budget(const ThresholdSet& set, double budget) {
  const double shift = set.shift_for_budget(budget);
  std::vector<int32_t> ranks;
  for (size_t j = 0; j < set.alpha.size(); ++j)
    ranks.push_back(set.rank_at(j, set.alpha[j] + shift));

  auto margin = [&](size_t j, int32_t channel) {
    const std::vector<double>& s = set.sigma_hat[j];
    return s[static_cast<size_t>(channel)] - (set.alpha[j] + shift);
  };
  auto gain = [&](size_t j, int32_t from, int32_t) { return margin(j, from); };
  auto loss = [&](size_t j, int32_t from, int32_t) { return margin(j, from - 1); };
  fit_ranks_to_budget(*set.groups, budget, gain, loss, ranks);
  return ranks;
}

}  // namespace

RankAllocation allocate_soft_threshold(const RankProblem& problem,
                                       const SoftThresholdOptions& options,
                                       const RankProgress& progress) {
  require_feasible(problem.keys, problem.key_budget, "key");
  require_feasible(problem.values, problem.value_budget, "value");
  ThresholdSet keys(problem.keys, problem.key_budget, options.key_pressure);
  ThresholdSet values(problem.values, problem.value_budget, options.value_pressure);
  keys.frozen = static_cast<double>(keys.total_at_shift(0.0)) <= keys.budget;
  values.frozen = static_cast<double>(values.total_at_shift(0.0)) <= values.budget;

  const bool optimize = options.max_steps > 0 && !(keys.frozen && values.frozen);
  const double loss_scale =
      optimize ? loss_normalization(problem, options.sharpness, keys, values) : 1.0;

  RankAllocation result;
  for (int32_t step = 1; step <= options.max_steps && !(keys.frozen && values.frozen); ++step) {
    evaluate_layers(problem, options.sharpness, true, loss_scale, keys, values);
    adam_step(keys, step, options.learning_rate);
    adam_step(values, step, options.learning_rate);
    result.steps = step;
    if (progress) progress(step, options.max_steps);
  }

  result.key_ranks = ranks_on_budget(keys, problem.key_budget);
  const double carried = problem.key_budget - static_cast<double>(total_rank(result.key_ranks));
  require_feasible(problem.values, problem.value_budget + carried, "value");
  result.value_ranks = ranks_on_budget(values, problem.value_budget + carried);
  return result;
}

}  // namespace starkv
