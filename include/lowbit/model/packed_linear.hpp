#pragma once
// PackedLinear: a linear layer that runs through lowbit's packed quantized kernels
// (gemm.hpp): the weights are quantized, packed once for this CPU, and every call quantizes
// the activations per token inside gemm() as the kernel's scheme says (int8 or E4M3), or
// keeps them fp32 for weight-only schemes.
#include <optional>
#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/model/linear_layer.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit::model {

// The kernels' activation mode for an evaluation's activation format; empty when no kernel
// quantizes activations that way (E5M2).
inline std::optional<activation_quant> kernel_activation_mode(std::optional<act_format> act) {
  if (!act) return activation_quant::none;
  switch (*act) {
    case act_format::int8: return activation_quant::int8;
    case act_format::float8_e4m3fn: return activation_quant::float8_e4m3fn;
    case act_format::float8_e5m2: return std::nullopt;
  }
  return std::nullopt;
}

// PackedLinear (the alias below) is a class template only so that its virtual forward() (three
// gemm() overloads) and pack() are compiled where a PackedLinear is built ("Compile time" in
// docs/design.md). Deferred is never named.
template <class Deferred>
class BasicPackedLinear final : public LinearLayer {
 public:
  // Throws lowbit::error when no kernel runs this weight format with these activations.
  // `input`: weight-only schemes may take fp16/bf16 activations (rounded from fp32 per call).
  BasicPackedLinear(const QuantizedMatrix& q, std::optional<act_format> act,
                    activation_dtype input = activation_dtype::f32)
      : input_(input) {
    const std::optional<activation_quant> mode = kernel_activation_mode(act);
    if (!mode) lowbit::detail::fail("PackedLinear '" + q.name + "': no kernel takes E5M2 activations");
    if (act && input != activation_dtype::f32)
      lowbit::detail::fail("PackedLinear '" + q.name + "': 16-bit inputs are for weight-only schemes");
    PackOptions po;
    po.activations = *mode;
    try {
      packed_ = pack(q, po);
    } catch (const lowbit::error& e) {
      lowbit::detail::fail("layer " + q.name + ": " + e.what());
    }
    storage_bits_ = static_cast<double>(q.storage_bits());
  }
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override {
    GemmOptions o;
    o.num_threads = 1;  // the evaluation already runs one document per thread
    // Spelled dependent (deferred_t): the casts and the kernel call are checked where a layer is built.
    const deferred_t<Deferred, ConstRowMatrixRef>& in = x;
    if (input_ == activation_dtype::f16) {
      gemm(RowMatrixXh(in.template cast<Eigen::half>()), packed_, y, o);
    } else if (input_ == activation_dtype::bf16) {
      gemm(lowbit::detail::bf16_rows(in).view(), packed_, y, o);
    } else {
      gemm(in, packed_, y, o);
    }
  }
  std::int64_t in_features() const override { return packed_.cols(); }
  std::int64_t out_features() const override { return packed_.rows(); }
  double storage_bits() const override { return storage_bits_; }
  std::string describe() const override {
    return "packed kernel " + (input_ == activation_dtype::f32 ? std::string(packed_.kernel_name())
                                                               : selected_kernel(packed_, input_));
  }

 private:
  activation_dtype input_ = activation_dtype::f32;
  PackedWeights packed_;
  double storage_bits_ = 0.0;
};

using PackedLinear = BasicPackedLinear<void>;

}  // namespace lowbit::model
