#pragma once
// QuantizedLinear, the result of quantize_linear() (algo/linear.hpp, which documents the
// layer): its data and its reference forward pass, without the algorithms that produce it
// (GPTQ, LoRC's SVDs, the smoothing search). The checkpoint layer (io/linear_checkpoint.hpp)
// includes only this ("Compile time" in docs/design.md).
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lowbit/algo/fake_quant.hpp"
#include "lowbit/algo/low_rank.hpp"
#include "lowbit/algo/smoothed.hpp"
#include "lowbit/config.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

struct QuantizedLinear {
  QuantizedMatrix weight;                     // of W diag(s) when smoothed
  std::optional<Eigen::VectorXf> bias;        // [out]
  std::optional<Eigen::VectorXf> smoothing;   // s [in]: the layer reads x / s
  std::optional<LowRank> lorc;                // U_hat [out, r], V_hat [r, in]
  std::optional<ActivationQuant> activations; // dynamic activation quantization
  // How a weight-only layer (no `activations`) is run, not stored: f16/bf16 round the
  // operand x / s to that type (round to nearest even) before the products, so that the
  // kernels take 16-bit activations (bf16 tiles on AMX-BF16 and AVX512-BF16 CPUs, the fp16
  // kernel on AVX512-FP16 ones); the LoRC term reads the same rounded operand. Layers that
  // quantize their activations ignore it. Set it before attach_kernels().
  activation_dtype input = activation_dtype::f32;
  std::string recipe;                         // the recipe's name
  float smoothing_alpha = 0.0f;               // chosen alpha (when smoothed)
  std::string warning;                        // e.g. GPTQ fell back to round-to-nearest

  // The fast path, set by attach_kernels() (algo/linear_gemm.hpp); empty: reference path.
  // kernel(x, y) prepares the call (the activations as the kernels take them) and returns
  // its tasks, which compute y when run (run_split_work, threads.hpp), alone or together
  // with other layers' tasks (model/decoder_layer.hpp runs q, k and v so).
  std::function<std::unique_ptr<SplitWork>(ConstRowMatrixRef x, RowMatrixRef y)> kernel;

  std::int64_t in_features() const noexcept { return weight.cols; }
  std::int64_t out_features() const noexcept { return weight.rows; }

  // The type the products read x / s in: `input` for a weight-only layer, f32 for a layer
  // that quantizes its activations (its codes come from the fp32 operand). The one home of
  // that rule: the reference formula, the kernel path (attach_kernels) and the descriptions
  // all read it here.
  activation_dtype effective_input() const noexcept { return activations ? activation_dtype::f32 : input; }

  // Bits of every stored part: weight (codes + scales), LoRC factors, smoothing vector and
  // bias at 32 bits each.
  std::int64_t storage_bits() const {
    std::int64_t b = weight.storage_bits();
    if (lorc) b += lorc->storage_bits();
    if (smoothing) b += 32 * smoothing->size();
    if (bias) b += 32 * bias->size();
    return b;
  }

  // Bits/weight, the one definition every report uses (quantize, compare, accuracy, inspect
  // and the checkpoint's "bits_per_weight"): codes + scales + zero points (the weight's
  // storage_bits()) + LoRC factors + the smoothing vector at 32 bits per value, over
  // out x in weights. The bias is not counted: the unquantized layer stores it too.
  std::int64_t quantized_bits() const {
    std::int64_t b = weight.storage_bits();
    if (lorc) b += lorc->storage_bits();
    if (smoothing) b += 32 * smoothing->size();
    return b;
  }
  double bits_per_weight() const {
    const std::int64_t n = weight.rows * weight.cols;
    return n == 0 ? 0.0 : static_cast<double>(quantized_bits()) / static_cast<double>(n);
  }

  // The weight the layer effectively applies to x (activation quantization aside):
  // (W_hat + U V) diag(1/s). Reports compare it with the original weight; a lossy export
  // requantizes it (model/export_lossy.hpp).
  template <class Deferred = void>
  RowMatrixXf effective_weight() const {
    RowMatrixXf w = dequantize(weight);
    if (lorc) w += lorc->product();
    if (smoothing) w = w * smoothing->cwiseInverse().asDiagonal();
    return w;
  }

  // The reference forward pass (fake quantization + Eigen products). These three are templates
  // only so that Eigen's products are compiled where they are called ("Compile time" in
  // docs/design.md).
  template <class Deferred = void>
  RowMatrixXf reference_forward(ConstRowMatrixRef x) const {
    RowMatrixXf y(x.rows(), out_features());
    reference_forward(x, dequantize(weight), y);
    return y;
  }

  // The layer formula, written once here and nowhere else:
  //     y = Qa(x / s) * W_hat^T + ((x / s) * V_hat^T) * U_hat^T + bias
  // (a weight-only layer with a 16-bit `input` first rounds x / s to that type), with
  // W_hat = dequantize(weight) given by the caller, so that a caller running the
  // reference path on every call (model::RecipeLinear) dequantizes once and may then release
  // the codes. reference_forward(x) above is this with W_hat computed per call; both give the
  // same floats, operation for operation.
  template <class Deferred = void>
  void reference_forward(ConstRowMatrixRef x, const RowMatrixXf& w_hat, RowMatrixRef y) const {
    check_input(x);
    if (w_hat.rows() != out_features() || w_hat.cols() != in_features() || y.rows() != x.rows() ||
        y.cols() != out_features())
      detail::fail("linear '" + weight.name + "': W_hat is " + std::to_string(w_hat.rows()) + "x" +
                   std::to_string(w_hat.cols()) + " and the output " + std::to_string(y.rows()) + "x" +
                   std::to_string(y.cols()) + "; the layer is " + std::to_string(out_features()) + "x" +
                   std::to_string(in_features()) + " and the input has " + std::to_string(x.rows()) + " rows");
    // xs and out are spelled dependent (deferred_t): the products are checked where this runs.
    using Matrix = deferred_t<Deferred, RowMatrixXf>;
    const Matrix xs = rounded_input(smoothing ? smoothed_activations(x, *smoothing) : Matrix(x));
    deferred_t<Deferred, RowMatrixRef>& out = y;
    if (activations)
      out.noalias() = dequantize(quantize_activations(xs, activations->format, activations->group, weight.name)) *
                      w_hat.transpose();
    else
      out.noalias() = xs * w_hat.transpose();
    if (lorc) out.noalias() += (xs * lorc->v.transpose()) * lorc->u.transpose();
    if (bias) out.rowwise() += bias->transpose();
  }

  template <class Deferred = void>
  RowMatrixXf operator()(ConstRowMatrixRef x) const {
    if (!kernel) return reference_forward(x);
    check_input(x);
    RowMatrixXf y(x.rows(), out_features());
    run_split_work(*kernel(x, y));
    return y;
  }

 private:
  // x / s as the products read it: rounded to `input` for a weight-only layer (Eigen's casts
  // round to nearest even; the kernel path, attach_kernels(), casts to fp16 the same way and
  // to bf16 with detail::round_rows_to_bf16, the same bits: tests/test_algo_linear.cpp).
  template <class Matrix>
  Matrix rounded_input(Matrix xs) const {
    switch (effective_input()) {
      case activation_dtype::f32: break;
      case activation_dtype::f16: return xs.template cast<Eigen::half>().template cast<float>();
      case activation_dtype::bf16: return xs.template cast<Eigen::bfloat16>().template cast<float>();
    }
    return xs;
  }
  void check_input(ConstRowMatrixRef x) const {
    if (x.cols() != in_features())
      detail::fail("linear '" + weight.name + "': input has " + std::to_string(x.cols()) +
                   " features, the layer expects " + std::to_string(in_features()));
  }
};

}  // namespace lowbit
