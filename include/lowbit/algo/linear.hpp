#pragma once
// QuantizedLinear: one nn.Linear quantized by a recipe, composed of
//     smoothing (SmoothQuant / SmoothQuant+)  ->  GPTQ or round-to-nearest  ->  LoRC
// and callable as y = layer(x):
//     y = Qa(x / s) * W_hat^T + ((x / s) * V_hat^T) * U_hat^T + bias
// where Qa is the recipe's dynamic activation quantization (identity for weight-only), s the
// smoothing factors (absent = 1) and U_hat, V_hat the LoRC factors (absent = 0). The LoRC
// term reads the fp32 (smoothed) activations, as the GEMM epilogue does; a weight-only layer
// run on 16-bit activations (QuantizedLinear::input) rounds x / s first, for both terms.
//
// The struct is plain public data (the quantized matrix, optional bias, smoothing vector and
// LoRC factors with their storage format, the activation format) so the checkpoint layer can
// save and load it. The forward pass has one switch: `kernel`, when set (attach_kernels() in
// algo/linear_gemm.hpp packs the weights for lowbit::gemm), runs the fast kernels; otherwise
// the reference path dequantizes and uses an Eigen product. algo never includes kernels.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/fake_quant.hpp"
#include "lowbit/algo/gptq.hpp"
#include "lowbit/algo/lorc.hpp"
#include "lowbit/algo/quantized_linear.hpp"
#include "lowbit/algo/smoothquant.hpp"
#include "lowbit/config.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

enum class weight_method : std::uint8_t { round_to_nearest, gptq };
enum class smoothing_mode : std::uint8_t {
  none,
  fixed,   // SmoothQuant with recipe.alpha
  search,  // SmoothQuant+: alpha searched on [0, 1] per layer
};
// Which layers of a model share a smoothing vector. quantize_linear() sees one layer and
// always smooths it alone; the scope is read by the model-level code that knows where a layer
// sits (model/norm_smoothing.hpp, the one home of the rule).
enum class smoothing_scope : std::uint8_t {
  per_layer,  // every linear its own s (the papers' per-layer search)
  per_norm,   // the readers of one norm share one s (q/k/v, gate/up: it folds into the norm,
              // so compressed-tensors export works); layers reading no norm (o_proj,
              // down_proj) are not smoothed
};

struct LinearRecipe {
  std::string name = "custom";
  QuantSpec weight;
  std::optional<ActivationQuant> activations;  // empty: weight-only (A16)
  smoothing_mode smoothing = smoothing_mode::none;
  float alpha = 0.5f;                          // for smoothing_mode::fixed
  float alpha_step = 0.05f;                    // for smoothing_mode::search
  smoothing_scope scope = smoothing_scope::per_layer;
  weight_method method = weight_method::round_to_nearest;
  GptqOptions gptq{};
  int lorc_rank = 0;                           // 0: no LoRC
  LorcOptions lorc{};
  // Whether the recipe needs calibration data (smoothing or GPTQ).
  bool needs_calibration() const noexcept {
    return smoothing != smoothing_mode::none || method == weight_method::gptq;
  }
};

namespace detail {
// The smoothing search of `recipe` for weights named `name` (quantizers for the objective).
template <class Deferred = void>  // see "Compile time" in docs/design.md
SmoothOptions smooth_options(const LinearRecipe& recipe, const std::string& name) {
  SmoothOptions so;
  if (recipe.smoothing == smoothing_mode::fixed) so.alpha = recipe.alpha;
  so.alpha_step = recipe.alpha_step;
  if (recipe.smoothing == smoothing_mode::search) {
    so.weight_quantizer = weight_fake_quantizer(recipe.weight, name);
    if (recipe.activations) {
      const ActivationQuant aq = *recipe.activations;
      so.activation_quantizer = [aq, name](ConstRowMatrixRef x) {
        return dequantize(quantize_activations(x, aq.format, aq.group, name));
      };
    }
  }
  return so;
}

// `consume`: take the Hessian out of the statistics (they must be `calibration`) instead of
// copying it.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear quantize_linear_impl(deferred_t<Deferred, ConstRowMatrixRef> w, const Eigen::VectorXf* bias,
                                     const LinearRecipe& recipe, const deferred_t<Deferred, ActivationStats>* calibration,
                                     deferred_t<Deferred, ActivationStats>* consume, std::string_view name,
                                     const SmoothingResult* preset = nullptr) {
  using Ref = deferred_t<Deferred, ConstRowMatrixRef>;
  const std::string tname(name);
  if (w.rows() == 0 || w.cols() == 0) detail::fail("quantize_linear '" + tname + "': empty weight");
  if (bias && bias->size() != w.rows())
    detail::fail("quantize_linear '" + tname + "': bias has " + std::to_string(bias->size()) +
                 " values, the weight has " + std::to_string(w.rows()) + " outputs");
  if (recipe.needs_calibration() && calibration == nullptr)
    detail::fail("quantize_linear '" + tname + "': recipe '" + recipe.name +
                 "' needs calibration data (smoothing or GPTQ)");
  if (calibration && calibration->channels() != w.cols())
    detail::fail("quantize_linear '" + tname + "': calibration has " +
                 std::to_string(calibration->channels()) + " channels, the weight has " +
                 std::to_string(w.cols()) + " inputs");

  QuantizedLinear layer;
  layer.recipe = recipe.name;
  layer.activations = recipe.activations;
  if (bias) layer.bias = *bias;

  // 1. Smoothing.
  deferred_t<Deferred, RowMatrixXf> smoothed;
  if (recipe.smoothing != smoothing_mode::none) {
    // A vector chosen for several layers at once (smooth_shared) or this layer's own.
    if (preset && preset->scales.size() != w.cols())
      detail::fail("quantize_linear '" + tname + "': the given smoothing vector has " +
                   std::to_string(preset->scales.size()) + " values, the weight has " + std::to_string(w.cols()) +
                   " inputs");
    const SmoothingResult sr = preset ? *preset : smooth<Deferred>(*calibration, w, smooth_options<Deferred>(recipe, tname));
    layer.smoothing = sr.scales;
    layer.smoothing_alpha = sr.alpha;
    smoothed = smoothed_weight(w, sr.scales);
  }
  // The weight to quantize: W diag(s) when smoothed, else w itself (no copy).
  const Ref ws = layer.smoothing ? Ref(smoothed) : w;

  // 2. Weights: GPTQ (on the Hessian of the smoothed inputs X / s) or round-to-nearest.
  if (recipe.method == weight_method::gptq) {
    // One n x n buffer from here on: the statistics' own when consumed, else a copy; scaled,
    // then factored and inverted by gptq() in place.
    // needs_calibration() refused a GPTQ recipe without statistics above; said again here so
    // that no path reads through a null pointer (GCC 12 at -O3 warns that one does, through
    // hessian(), once this is inlined into a caller passing nullptr).
    if (calibration == nullptr) detail::fail("quantize_linear '" + tname + "': GPTQ needs calibration data");
    deferred_t<Deferred, Eigen::MatrixXf> h = consume ? consume->take_hessian() : calibration->hessian();
    if (layer.smoothing) {
      // diag(1/s) H diag(1/s), element by element in the order the diagonal products compute
      // it, (h_ij / s_i) / s_j with 1/s precomputed.
      const deferred_t<Deferred, Eigen::VectorXf> inv = layer.smoothing->cwiseInverse();
      for (Eigen::Index j = 0; j < h.cols(); ++j) {
        h.col(j).array() *= inv.array();
        h.col(j) *= inv(j);
      }
    }
    GptqResult g = gptq<Deferred>(ws, std::move(h), recipe.weight, recipe.gptq, tname);
    layer.weight = std::move(g.matrix);
    layer.warning = std::move(g.warning);
  } else {
    layer.weight = quantize<Deferred>(ws, recipe.weight, tname);
  }

  // 3. LoRC of what is left.
  if (recipe.lorc_rank > 0) {
    layer.lorc = lorc<Deferred>(ws, layer.weight, recipe.lorc_rank, recipe.lorc);
    // The rank cannot exceed min(out, in); say so rather than store a smaller one silently.
    if (layer.lorc->rank() < recipe.lorc_rank)
      layer.warning += std::string(layer.warning.empty() ? "" : "; ") + "LoRC rank " + std::to_string(recipe.lorc_rank) +
                       " reduced to " + std::to_string(layer.lorc->rank()) + " (the smaller dimension of the weight)";
  }
  return layer;
}
}  // namespace detail

// Quantizes w ([out, in]) with an optional bias by `recipe`. Smoothing and GPTQ need
// calibration stats of this layer's input (W8A8 smoothing also needs kept sample rows).
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear quantize_linear(ConstRowMatrixRef w, const Eigen::VectorXf* bias,
                                const LinearRecipe& recipe,
                                const ActivationStats* calibration = nullptr,
                                std::string_view name = "weight") {
  return detail::quantize_linear_impl(w, bias, recipe, calibration, nullptr, name);
}

// The same result, bit for bit, for the last layer that reads `calibration`: GPTQ takes the
// Hessian out of it (ActivationStats::take_hessian) and works in that buffer instead of a
// copy, which saves in^2 floats at the peak of calibrating a wide layer (268 MB for an
// 8192-input down_proj). The other statistics (counts, absmax, kept rows) stay usable.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear quantize_linear_consuming(ConstRowMatrixRef w, const Eigen::VectorXf* bias,
                                          const LinearRecipe& recipe, ActivationStats& calibration,
                                          std::string_view name = "weight") {
  return detail::quantize_linear_impl(w, bias, recipe, &calibration,
                                      recipe.method == weight_method::gptq ? &calibration : nullptr, name);
}

// The same with the smoothing vector given (recipes with smoothing only): `smoothing`, chosen
// for several layers reading one input (smooth_shared, model/norm_smoothing.hpp), replaces the
// layer's own search. `consume` (the same statistics, or null): as
// quantize_linear_consuming.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear quantize_linear_smoothed(ConstRowMatrixRef w, const Eigen::VectorXf* bias, const LinearRecipe& recipe,
                                         const SmoothingResult& smoothing, const ActivationStats* calibration,
                                         ActivationStats* consume = nullptr, std::string_view name = "weight") {
  return detail::quantize_linear_impl(w, bias, recipe, consume ? consume : calibration,
                                      recipe.method == weight_method::gptq ? consume : nullptr, name, &smoothing);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear quantize_linear(ConstRowMatrixRef w, const LinearRecipe& recipe,
                                const ActivationStats* calibration = nullptr,
                                std::string_view name = "weight") {
  return quantize_linear(w, nullptr, recipe, calibration, name);
}

}  // namespace lowbit
