#pragma once
// The one place that decides what each linear layer of a model runs as.
//
// EvalScheme describes a quantization scheme for evaluation: a weight QuantSpec (or fp32
// weights), an optional dynamic per-token activation format (A8 schemes), and whether the
// classifier is quantized too (it is kept fp32 by default, as deployments usually do).
// scheme_linear_factory() turns it into the LinearFactory that LlamaModel calls for every
// weight, choosing the backend of each layer:
//  - packed: the weights are packed for lowbit's quantized kernels and run through gemm()
//    (model/packed_linear.hpp), activations quantized per token inside the kernel;
//  - fake_quant: the weights are quantized once and kept dequantized (exactly the values the
//    kernels multiply by), and for A8 schemes every input row is quantized and dequantized
//    per token before an fp32 product. Same numbers as the kernels up to summation order;
//    it runs every format, including those no kernel covers (FP6, E5M2, int8 + E4M3 ...);
//  - automatic (default): packed where a kernel runs the scheme, fake_quant elsewhere.
// A named recipe (EvalScheme::recipe, algo/recipes.hpp) instead goes through
// quantize_linear() (smoothing, GPTQ, LoRC) with the layer's calibration statistics from a
// CalibrationRecorder (model/calibration.hpp), and runs as a RecipeLinear.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "lowbit/model/linear_layer.hpp"
#include "lowbit/model/norm_smoothing.hpp"
#include "lowbit/model/source.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/packed_linear.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit::model {

enum class linear_backend { automatic, packed, fake_quant };

struct EvalScheme {
  std::string name = "fp32";            // what reports call it (a recipe name or "custom")
  std::optional<LinearRecipe> recipe;   // a named recipe: replaces weights/activations
  std::optional<QuantSpec> weights;     // empty: fp32 weights
  std::optional<act_format> activations;  // empty: fp32 activations (weight-only, "A16")
  // Weight-only schemes and recipes: activations are rounded to this type (fp16/bf16) and the
  // kernel takes them so (gemm's 16-bit overloads; a recipe's layers round x / s,
  // QuantizedLinear::input); f32 keeps them as they are. A8 recipes ignore it.
  activation_dtype input = activation_dtype::f32;
  bool quantize_classifier = false;
  linear_backend backend = linear_backend::automatic;

  bool is_fp32() const { return !recipe && !weights && !activations && input == activation_dtype::f32; }
  bool needs_calibration() const { return recipe && recipe->needs_calibration(); }
};

// Weights dequantized once; activations optionally quantized per token on every call.
// FakeQuantLinear (the alias below) is a class template only so that its Eigen products are
// compiled where one is built ("Compile time" in docs/design.md). Deferred is never named.
template <class Deferred>
class BasicFakeQuantLinear final : public LinearLayer {
 public:
  BasicFakeQuantLinear(const RowMatrixXf& weight, const std::optional<QuantSpec>& spec,
                       std::optional<act_format> act, const std::string& name,
                       activation_dtype input = activation_dtype::f32)
      : act_(act), input_(input), name_(name) {
    // As PackedLinear: an A8 layer quantizes the fp32 rows (QuantizedLinear::effective_input).
    if (act && input != activation_dtype::f32)
      lowbit::detail::fail("FakeQuantLinear '" + name + "': 16-bit inputs are for weight-only schemes");
    if (spec) {
      const QuantizedMatrix q = quantize(weight, *spec, name);
      storage_bits_ = static_cast<double>(q.storage_bits());
      weight_ = dequantize(q);
      what_ = "fake-quant weights";
    } else {
      weight_ = weight;
      storage_bits_ = 32.0 * static_cast<double>(weight.size());
      what_ = "fp32 weights";
    }
    if (act_) what_ += " + per-token activations";
    if (input_ != activation_dtype::f32) what_ += " + " + std::string(to_string(input_)) + " activations";  // A16 only
  }
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override {
    if (x.cols() != weight_.cols() || y.cols() != weight_.rows() || y.rows() != x.rows())
      lowbit::detail::fail("FakeQuantLinear: input has " + std::to_string(x.cols()) +
                           " columns, weight expects " + std::to_string(weight_.cols()));
    // Spelled dependent (deferred_t): the products are checked where a layer is built.
    const deferred_t<Deferred, ConstRowMatrixRef>& in = x;
    deferred_t<Deferred, RowMatrixRef>& out = y;
    if (act_) {
      out.noalias() = dequantize(quantize_activations(in, *act_, 0, name_)) * weight_.transpose();
    } else if (input_ == activation_dtype::f16) {
      out.noalias() = in.template cast<Eigen::half>().template cast<float>() * weight_.transpose();
    } else if (input_ == activation_dtype::bf16) {
      out.noalias() = in.template cast<Eigen::bfloat16>().template cast<float>() * weight_.transpose();
    } else {
      out.noalias() = in * weight_.transpose();
    }
  }
  std::int64_t in_features() const override { return weight_.cols(); }
  std::int64_t out_features() const override { return weight_.rows(); }
  double storage_bits() const override { return storage_bits_; }
  std::string describe() const override { return what_; }

 private:
  std::optional<act_format> act_;
  activation_dtype input_ = activation_dtype::f32;
  std::string name_;
  RowMatrixXf weight_;
  double storage_bits_ = 0.0;
  std::string what_;
};

using FakeQuantLinear = BasicFakeQuantLinear<void>;

// `calibration` (kept by reference while the factory is used) is needed by recipes with
// smoothing or GPTQ; it must have statistics for every layer the factory builds. A recipe
// whose smoothing is shared per norm (smoothing_scope::per_norm, model/norm_smoothing.hpp) also
// needs `source`, the model's weights: a layer's vector depends on the other readers of its
// norm, so the vectors of every decoder layer are chosen here, before any layer is built.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LinearFactory scheme_linear_factory(const EvalScheme& scheme,
                                    const CalibrationRecorder* calibration = nullptr,
                                    const ModelSource* source = nullptr) {
  if (scheme.needs_calibration() && calibration == nullptr)
    lowbit::detail::fail("recipe '" + scheme.recipe->name + "' needs calibration data (smoothing or GPTQ)");
  struct placed {
    LinearRecipe recipe;
    std::optional<SmoothingResult> shared;
  };
  auto plan = std::make_shared<std::map<std::string, placed>>();
  if (scheme.recipe && scheme.recipe->smoothing != smoothing_mode::none &&
      scheme.recipe->scope == smoothing_scope::per_norm) {
    if (!source)
      lowbit::detail::fail("recipe '" + scheme.recipe->name +
                           "' shares one smoothing vector per norm and needs the model's weights to choose it "
                           "(scheme_linear_factory(scheme, calibration, &model.source()))");
    const LinearRecipe& r = *scheme.recipe;
    for (int l = 0; l < source->config().n_layers; ++l) {
      const LlamaLayerWeights lw = source->layer(l);
      const auto name_of = [&](linear_slot s) { return source->linear_name(l, s); };
      const LayerSmoothing ls = share_norm_smoothing<Deferred>(
          [&](linear_slot) { return &r; }, [&](linear_slot s) { return &lw.matrix(s); },
          [&](linear_slot s) { return calibration->find(name_of(s)); }, name_of);
      for (int k = 0; k < kLinearSlots; ++k) {
        const auto slot = static_cast<linear_slot>(k);
        (*plan)[name_of(slot)] = {recipe_at(r, slot), ls.shared[static_cast<std::size_t>(k)]};
      }
    }
  }
  return [scheme, calibration, plan](const std::string& name, const RowMatrixXf& w) -> std::unique_ptr<LinearLayer> {
    if (scheme.is_fp32() || (is_classifier_name(name) && !scheme.quantize_classifier))
      return std::make_unique<Fp32Linear>(w);
    if (scheme.recipe) {
      const ActivationStats* stats = calibration ? calibration->find(name) : nullptr;
      const auto p = plan->find(name);
      const bool use_kernels = scheme.backend != linear_backend::fake_quant;
      QuantizedLinear q =
          p != plan->end() && p->second.shared
              ? quantize_linear_smoothed(w, nullptr, p->second.recipe, *p->second.shared, stats, nullptr, name)
              : quantize_linear(w, p != plan->end() ? p->second.recipe : *scheme.recipe, stats, name);
      q.input = scheme.input;  // weight-only layers only (QuantizedLinear::input)
      return std::make_unique<RecipeLinear>(std::move(q), use_kernels);
    }
    if (!scheme.weights && scheme.backend == linear_backend::packed)
      lowbit::detail::fail(name + ": the packed backend needs quantized weights (no kernel runs fp32 weights)");
    if (scheme.weights && scheme.backend != linear_backend::fake_quant) {
      const QuantizedMatrix q = quantize(w, *scheme.weights, name);
      const bool kernel_exists = kernel_activation_mode(scheme.activations).has_value();
      if (scheme.backend == linear_backend::packed || kernel_exists) {
        try {
          return std::make_unique<PackedLinear>(q, scheme.activations, scheme.input);
        } catch (const lowbit::error&) {
          if (scheme.backend == linear_backend::packed) throw;  // asked for kernels explicitly
        }
      }
    }
    return std::make_unique<FakeQuantLinear>(w, scheme.weights, scheme.activations, name, scheme.input);
  };
}

}  // namespace lowbit::model
