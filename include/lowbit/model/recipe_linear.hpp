#pragma once
// RecipeLinear: a linear layer quantized by a named recipe (algo/recipes.hpp) through
// quantize_linear() (smoothing -> GPTQ or round-to-nearest -> LoRC), run through the packed
// kernels when attach_kernels() finds one, otherwise through the reference formula of
// QuantizedLinear with the dequantized weight computed once (not on every call):
//     y = Qa(x / s) * W_hat^T + ((x / s) * V_hat^T) * U_hat^T + bias
#include <string>
#include <utility>

#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/linear_gemm.hpp"
#include "lowbit/model/linear_layer.hpp"

namespace lowbit::model {

class RecipeLinear final : public LinearLayer {
 public:
  RecipeLinear(QuantizedLinear layer, bool use_kernels) : layer_(std::move(layer)) {
    if (use_kernels) packed_ = attach_kernels(layer_);
    if (!packed_) w_hat_ = dequantize(layer_.weight);
  }
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override {
    if (x.cols() != in_features() || y.cols() != out_features() || y.rows() != x.rows())
      lowbit::detail::fail("RecipeLinear '" + layer_.weight.name + "': shape mismatch");
    if (packed_) {
      layer_.kernel(x, y);
      return;
    }
    const RowMatrixXf xs = layer_.smoothing ? smoothed_activations(x, *layer_.smoothing) : RowMatrixXf(x);
    if (layer_.activations)
      y.noalias() = dequantize(quantize_activations(xs, layer_.activations->format, layer_.activations->group,
                                                    layer_.weight.name)) *
                    w_hat_.transpose();
    else
      y.noalias() = xs * w_hat_.transpose();
    if (layer_.lorc) y.noalias() += (xs * layer_.lorc->v.transpose()) * layer_.lorc->u.transpose();
    if (layer_.bias) y.rowwise() += layer_.bias->transpose();
  }
  std::int64_t in_features() const override { return layer_.in_features(); }
  std::int64_t out_features() const override { return layer_.out_features(); }
  double storage_bits() const override { return static_cast<double>(layer_.storage_bits()); }
  std::string describe() const override {
    return "recipe " + layer_.recipe + (packed_ ? " (packed kernels)" : " (reference path)");
  }
  const QuantizedLinear& quantized() const { return layer_; }
  bool uses_kernels() const { return packed_; }

 private:
  QuantizedLinear layer_;
  bool packed_ = false;
  RowMatrixXf w_hat_;  // reference path only
};

}  // namespace lowbit::model
