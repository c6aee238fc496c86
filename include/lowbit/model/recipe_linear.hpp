#pragma once
// RecipeLinear: a linear layer quantized by a named recipe (algo/recipes.hpp) through
// quantize_linear() (smoothing -> GPTQ or round-to-nearest -> LoRC), run through the packed
// kernels when attach_kernels() finds one, otherwise through QuantizedLinear's reference
// formula (QuantizedLinear::reference_forward in algo/linear.hpp, its only home) with the
// dequantized weight W_hat computed once here (not on every call).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/linear_gemm.hpp"
#include "lowbit/model/linear_layer.hpp"

namespace lowbit::model {

// RecipeLinear (the alias below) is a class template only so that its virtual forward() (the
// reference path's Eigen products) and its constructors (the kernels attach_kernels()
// instantiates) are compiled where a RecipeLinear is built, not wherever this header is
// included ("Compile time" in docs/design.md). Deferred is never named.
template <class Deferred>
class BasicRecipeLinear final : public LinearLayer {
 public:
  BasicRecipeLinear(QuantizedLinear layer, bool use_kernels) : layer_(std::move(layer)) {
    if (use_kernels) packed_ = attach_kernels(layer_);
    finish();
  }
  // A layer whose weight codes are elsewhere (`codes`, rows * row_stride bytes, e.g. in a
  // checkpoint's memory map: load_quantized_linear_mapped) and only read here: packed from
  // there, or copied for the reference path.
  BasicRecipeLinear(QuantizedLinear layer, const std::uint8_t* codes, bool use_kernels) : layer_(std::move(layer)) {
    if (use_kernels) packed_ = attach_kernels(layer_, codes);
    if (!packed_) {
      const std::size_t n = static_cast<std::size_t>(layer_.weight.rows * layer_.weight.row_stride);
      layer_.weight.codes.assign(codes, codes + n);
    }
    finish();
  }
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override {
    if (packed_) {
      run_split_work(*begin(x, y));
      return;
    }
    check_shapes(x, y);
    layer_.reference_forward(x, w_hat_, y);  // the formula's one home: algo/linear.hpp
  }
  // The kernels' call, prepared; the reference path does not split (nullptr).
  std::unique_ptr<SplitWork> begin(ConstRowMatrixRef x, RowMatrixRef y) const override {
    if (!packed_) return nullptr;
    check_shapes(x, y);
    return layer_.kernel(x, y);
  }
  std::int64_t in_features() const override { return layer_.in_features(); }
  std::int64_t out_features() const override { return layer_.out_features(); }
  double storage_bits() const override { return static_cast<double>(layer_.storage_bits()); }
  std::string describe() const override {
    const activation_dtype input = layer_.effective_input();
    return "recipe " + layer_.recipe +
           (input != activation_dtype::f32 ? " + " + std::string(to_string(input)) + " activations" : "") +
           (packed_ ? " (packed kernels)" : " (reference path)");
  }
  // The layer's scheme, shape and side parts (activations, bias, smoothing, LoRC, recipe).
  // Its weight's codes and scales are released once the kernels hold them packed (or the
  // reference path holds W_hat), so layer memory is one copy of the weights.
  const QuantizedLinear& quantized() const { return layer_; }
  bool uses_kernels() const { return packed_; }

 private:
  void check_shapes(ConstRowMatrixRef x, RowMatrixRef y) const {
    if (x.cols() != in_features() || y.cols() != out_features() || y.rows() != x.rows())
      lowbit::detail::fail("RecipeLinear '" + layer_.weight.name + "': shape mismatch");
  }
  // The reference path needs W_hat (dequantized once: it is what every call multiplies by);
  // the packed path needs nothing more. Either way the codes and scales are not needed again.
  void finish() {
    if (!packed_) w_hat_ = dequantize(layer_.weight);
    QuantizedMatrix& q = layer_.weight;
    for (auto* v : {&q.codes, &q.zeros, &q.scale_codes}) std::vector<std::uint8_t>().swap(*v);
    std::vector<float>().swap(q.scales);
    std::vector<float>().swap(q.offsets);
    std::vector<float>().swap(q.row_scales);
    std::vector<std::int8_t>().swap(q.shifts);
  }

  QuantizedLinear layer_;
  bool packed_ = false;
  RowMatrixXf w_hat_;  // reference path only
};

using RecipeLinear = BasicRecipeLinear<void>;

// How a loader builds the layers a checkpoint stores quantized (a lowbit checkpoint, a GGUF
// file, a compressed-tensors directory: model/quantized_model.hpp).
struct QuantizedLoadOptions {
  // Refuse a layer whose scheme no kernel of this CPU runs (instead of the slower reference
  // path that dequantizes it once and multiplies in fp32).
  bool require_kernels = false;
  // Weight-only layers round their (smoothed) input to this type and run the kernels on it
  // (QuantizedLinear::input): bf16 takes the bf16 tiles of AMX-BF16 and AVX512-BF16 CPUs in
  // one pass (a 1B-shape W4A16 prefill 1.6x the fp32 path's on Zen 5, 1.2-1.8x on a Sapphire
  // Rapids-class Xeon); f16 the fp16 kernel of AVX512-FP16 CPUs (no faster there). Layers that
  // quantize their activations (A8) run as stored. The cost in perplexity is in
  // docs/accuracy.md; the speeds in docs/performance.md, "Session 40".
  activation_dtype input = activation_dtype::f32;
};

// A stored layer as every loader builds it: `q` (its codes at `codes`, or in q.weight.codes
// when null) run as `opt` says, packed for this CPU's kernels. `where` (the checkpoint's path)
// and `name` (the layer's) head the errors.
template <class Deferred = void>  // see "Compile time" in docs/design.md
std::unique_ptr<RecipeLinear> stored_linear(QuantizedLinear q, const std::uint8_t* codes, const QuantizedLoadOptions& opt,
                                            const std::string& where, const std::string& name) {
  q.input = opt.input;
  std::unique_ptr<RecipeLinear> layer;
  try {
    layer = codes ? std::make_unique<RecipeLinear>(std::move(q), codes, /*use_kernels=*/true)
                  : std::make_unique<RecipeLinear>(std::move(q), /*use_kernels=*/true);
  } catch (const lowbit::error& e) {
    lowbit::detail::fail(where + ": layer " + name + ": " + e.what());
  }
  if (opt.require_kernels && !layer->uses_kernels()) {
    const QuantizedLinear& s = layer->quantized();
    lowbit::detail::fail(where + ": layer " + name + ": no kernel of this CPU runs its scheme (" +
                         lowbit::to_string(s.weight.spec) +
                         (s.activations ? ", activations " + std::string(lowbit::to_string(s.activations->format))
                                        : std::string()) +
                         ")");
  }
  return layer;
}

}  // namespace lowbit::model
