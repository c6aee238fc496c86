#pragma once
// SmoothQuant / SmoothQuant+ (arXiv 2211.10438, 2312.03788): migrate activation outliers
// into the weights with a per-input-channel factor s,
//     s_j = max|X_j|^alpha / max|W_j|^(1 - alpha),   X' = X diag(s)^-1,   W' = W diag(s),
// which leaves X W^T unchanged, and pick alpha on a grid over [0, 1] minimizing the
// quantized output error || X W^T - Qa(X / s) Q(W s)^T || on calibration data.
//
// The search runs for one layer, or for several layers that read the same input (q/k/v,
// gate/up) and therefore must share one s: their column maxima are pooled and their
// errors summed. A model-level alpha (the paper's setting) is chosen with
// choose_alpha(objective), where the caller's objective runs whatever it wants (a whole
// model's loss) for a given alpha. 1/s is folded into a preceding RMSNorm/LayerNorm weight
// (and bias) with fold_smoothing_into_norm, so at run time nothing extra happens.
#include <Eigen/Core>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/fake_quant.hpp"
#include "lowbit/algo/smoothed.hpp"
#include "lowbit/config.hpp"

namespace lowbit {

struct SmoothOptions {
  std::optional<float> alpha;   // a fixed alpha (SmoothQuant's 0.5 / 0.8); empty = search
  float alpha_step = 0.05f;     // grid step of the search on [0, 1]
  float min_scale = 1e-5f;      // factors are clamped to [min_scale, 1 / min_scale]
  FakeQuantizer weight_quantizer;                 // Q(W'), required for the search
  FakeQuantizer activation_quantizer;             // Qa(X'); empty = weight-only (W4A16)
};

struct AlphaPoint {
  float alpha;
  double error;  // relative output error ||Y - Y_q|| / ||Y||
};

struct SmoothingResult {
  Eigen::VectorXf scales;        // s (divide activations, multiply weight columns)
  float alpha = 0.0f;
  double error = 0.0;            // relative output error at the chosen alpha (0 if not evaluated)
  double error_unsmoothed = 0.0; // the same objective with s = 1 (0 if not evaluated)
  std::vector<AlphaPoint> curve; // every alpha tried, in order
};

// max_r |W(r, j)| per input column j.
template <class Deferred = void>  // see "Compile time" in docs/design.md
Eigen::VectorXf weight_column_absmax(deferred_t<Deferred, ConstRowMatrixRef> w) {
  return w.cwiseAbs().colwise().maxCoeff().transpose();
}

// s_j = a_j^alpha / w_j^(1 - alpha). A channel that never fires (a_j = 0) or whose weights
// are all zero (w_j = 0) carries no information to balance, so its factor is 1.
template <class Deferred = void>  // see "Compile time" in docs/design.md
Eigen::VectorXf smoothing_factors(const deferred_t<Deferred, Eigen::VectorXf>& act_absmax,
                                         const deferred_t<Deferred, Eigen::VectorXf>& weight_absmax, float alpha,
                                         float min_scale = 1e-5f) {
  if (act_absmax.size() != weight_absmax.size())
    detail::fail("smoothing: activation stats have " + std::to_string(act_absmax.size()) +
                 " channels but the weight has " + std::to_string(weight_absmax.size()) +
                 " input columns");
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    detail::fail("smoothing: alpha " + detail::show_number(alpha) + " is outside [0, 1]");
  if (!(min_scale > 0.0f && min_scale < 1.0f))
    detail::fail("smoothing: min_scale must lie in (0, 1)");
  deferred_t<Deferred, Eigen::VectorXf> s(act_absmax.size());
  for (Eigen::Index j = 0; j < s.size(); ++j) {
    const float a = act_absmax[j], w = weight_absmax[j];
    if (!std::isfinite(a) || !std::isfinite(w))
      detail::fail("smoothing: channel " + std::to_string(j) + " has a non-finite maximum");
    if (a <= 0.0f || w <= 0.0f) {
      s[j] = 1.0f;
      continue;
    }
    const double v = std::pow(double(a), double(alpha)) / std::pow(double(w), 1.0 - alpha);
    s[j] = static_cast<float>(std::min(std::max(v, double(min_scale)), 1.0 / min_scale));
  }
  return s;
}

// Folds 1/s into the preceding normalization: norm(x) * gamma (+ beta) becomes
// norm(x) * gamma / s (+ beta / s), so the layer reads X / s with no extra work.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void fold_smoothing_into_norm(Eigen::Ref<deferred_t<Deferred, Eigen::VectorXf>> norm_weight,
                                     const deferred_t<Deferred, Eigen::VectorXf>& s,
                                     Eigen::VectorXf* norm_bias = nullptr) {
  if (norm_weight.size() != s.size())
    detail::fail("smoothing: norm weight has " + std::to_string(norm_weight.size()) +
                 " channels, factors have " + std::to_string(s.size()));
  norm_weight.array() /= s.array();
  if (norm_bias) {
    if (norm_bias->size() != s.size()) detail::fail("smoothing: norm bias size mismatch");
    norm_bias->array() /= s.array();
  }
}

namespace detail {

// || X W^T - Qa(X/s) Q(W s)^T ||^2 summed over layers and ||X W^T||^2, from either the kept
// sample of X or (weight-only) from X^T X:  ||X D^T||^2 = tr(D X^T X D^T).
template <class Deferred = void>  // see "Compile time" in docs/design.md
struct smoothing_objective {
  const deferred_t<Deferred, ActivationStats>& stats;
  const std::vector<deferred_t<Deferred, ConstRowMatrixRef>>& weights;
  const deferred_t<Deferred, SmoothOptions>& options;
  using Row = deferred_t<Deferred, RowMatrixXf>;

  bool use_sample() const {
    return options.activation_quantizer || !stats.has_hessian() ||
           (stats.sample().rows() > 0 && stats.sample().rows() < stats.channels());
  }

  double reference_energy() const {
    double e = 0.0;
    for (const auto& w : weights) {
      if (use_sample()) {
        e += (stats.sample() * w.transpose()).squaredNorm();
      } else {
        e += (w * stats.xtx()).cwiseProduct(w).sum();
      }
    }
    return e;
  }

  double error_energy(const deferred_t<Deferred, Eigen::VectorXf>& s) const {
    const bool sample = use_sample();
    Row xq;
    if (sample) {
      xq = smoothed_activations(stats.sample(), s);
      if (options.activation_quantizer) xq = options.activation_quantizer(xq);
    }
    double e = 0.0;
    for (const auto& w : weights) {
      const Row wq = options.weight_quantizer(smoothed_weight(w, s));
      if (sample) {
        e += (stats.sample() * w.transpose() - xq * wq.transpose()).squaredNorm();
      } else {
        const Row d = w - wq * s.cwiseInverse().asDiagonal();
        e += (d * stats.xtx()).cwiseProduct(d).sum();
      }
    }
    return e;
  }
};

inline std::vector<float> alpha_grid(float step) {
  if (!(step > 0.0f && step <= 1.0f)) fail("smoothing: alpha_step must lie in (0, 1]");
  const int n = static_cast<int>(std::lround(1.0 / step));
  std::vector<float> grid;
  for (int i = 0; i <= n; ++i) grid.push_back(std::min(1.0f, static_cast<float>(i) / n));
  return grid;
}

}  // namespace detail

// Chooses the factors shared by every weight in `weights` (layers reading the same input).
template <class Deferred = void>  // see "Compile time" in docs/design.md
SmoothingResult smooth_shared(const deferred_t<Deferred, ActivationStats>& stats,
                              const std::vector<deferred_t<Deferred, ConstRowMatrixRef>>& weights,
                              const SmoothOptions& options) {
  using Vector = deferred_t<Deferred, Eigen::VectorXf>;
  if (weights.empty()) detail::fail("smoothing: no weights given");
  Vector wmax = Vector::Zero(stats.channels());
  for (const auto& w : weights) {
    if (w.cols() != stats.channels())
      detail::fail("smoothing: a weight has " + std::to_string(w.cols()) +
                   " input columns but the calibration stats have " +
                   std::to_string(stats.channels()) + " channels");
    if (!w.allFinite()) detail::fail("smoothing: weight contains NaN or Inf");
    wmax = wmax.cwiseMax(weight_column_absmax(w));
  }
  if (stats.count() == 0) detail::fail(stats.name() + ": smoothing needs calibration data");
  SmoothingResult result;
  if (options.alpha && !options.weight_quantizer) {
    // A fixed alpha needs no objective.
    result.alpha = *options.alpha;
    result.scales = smoothing_factors(stats.absmax(), wmax, result.alpha, options.min_scale);
    return result;
  }
  if (!options.weight_quantizer)
    detail::fail("smoothing: the alpha search needs a weight quantizer");
  if (options.activation_quantizer && stats.sample().rows() == 0)
    detail::fail(stats.name() +
                 ": smoothing with quantized activations needs kept calibration rows "
                 "(CalibrationOptions::max_sample_rows > 0)");

  const detail::smoothing_objective<Deferred> objective{stats, weights, options};
  const double ref = std::max(objective.reference_energy(), 1e-30);
  auto relative = [&](const Vector& s) {
    return std::sqrt(std::max(objective.error_energy(s), 0.0) / ref);
  };
  result.error_unsmoothed = relative(Vector::Ones(stats.channels()));
  const std::vector<float> grid =
      options.alpha ? std::vector<float>{*options.alpha} : detail::alpha_grid(options.alpha_step);
  double best = std::numeric_limits<double>::infinity();
  for (float a : grid) {
    Vector s = smoothing_factors(stats.absmax(), wmax, a, options.min_scale);
    const double err = relative(s);
    result.curve.push_back({a, err});
    if (err < best) {  // strict: ties keep the smaller alpha
      best = err;
      result.alpha = a;
      result.error = err;
      result.scales = std::move(s);
    }
  }
  return result;
}

// One layer.
template <class Deferred = void>  // see "Compile time" in docs/design.md
SmoothingResult smooth(const deferred_t<Deferred, ActivationStats>& stats, deferred_t<Deferred, ConstRowMatrixRef> w,
                       const SmoothOptions& options) {
  return smooth_shared<Deferred>(stats, std::vector<deferred_t<Deferred, ConstRowMatrixRef>>{w}, options);
}

// Model-level alpha: evaluates the caller's objective (lower is better) on the grid and
// returns the best alpha with the whole curve.
struct AlphaChoice {
  float alpha = 0.0f;
  double objective = 0.0;
  std::vector<AlphaPoint> curve;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
AlphaChoice choose_alpha(const std::function<double(float)>& objective,
                                float alpha_step = 0.05f) {
  if (!objective) detail::fail("smoothing: choose_alpha needs an objective");
  AlphaChoice choice;
  choice.objective = std::numeric_limits<double>::infinity();
  for (float a : detail::alpha_grid(alpha_step)) {
    const double v = objective(a);
    choice.curve.push_back({a, v});
    if (v < choice.objective) {
      choice.objective = v;
      choice.alpha = a;
    }
  }
  if (!std::isfinite(choice.objective))
    detail::fail("smoothing: the model-level objective was not finite for any alpha");
  return choice;
}

}  // namespace lowbit
