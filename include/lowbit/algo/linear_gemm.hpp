#pragma once
// Runs a QuantizedLinear through lowbit::gemm: packs its weight once for this CPU and sets
// the layer's `kernel`, so layer(x) uses the SIMD kernels (smoothing prologue, per-token
// activation quantization, bias and LoRC epilogue included). Kept out of linear.hpp so the
// algorithms do not depend on the kernels; the umbrella lowbit/algo.hpp includes it.
#include <cstdint>
#include <memory>
#include <optional>

#include "lowbit/algo/linear.hpp"
#include "lowbit/gemm.hpp"

namespace lowbit {

// Returns true when a kernel runs this layer's scheme (and sets layer.kernel); false leaves
// the layer on the reference path (e.g. MX/NVFP4 weights, E5M2 or group-wise activations).
// `codes`: the weight's codes when they are not in layer.weight.codes (a checkpoint's memory
// map, rows * row_stride bytes checked by the caller); packing reads them in place.
template <class Deferred = void>  // see "Compile time" in docs/design.md
bool attach_kernels(QuantizedLinear& layer, const std::uint8_t* codes = nullptr) {
  PackOptions po;
  if (!layer.activations) {
    po.activations = activation_quant::none;
  } else if (layer.activations->group != 0) {
    return false;
  } else if (layer.activations->format == act_format::int8) {
    po.activations = activation_quant::int8;
  } else if (layer.activations->format == act_format::float8_e4m3fn) {
    po.activations = activation_quant::float8_e4m3fn;
  } else {
    return false;
  }
  // The parts the epilogue reads live with the packed weights, so the kernel stays valid
  // when the layer is copied or moved.
  struct bound {
    PackedWeights packed;
    std::optional<Eigen::VectorXf> bias, smoothing;
    std::optional<RowMatrixXf> u, v;
  };
  auto b = std::make_shared<bound>();
  try {
    b->packed = detail::pack_codes(layer.weight, codes, po);
  } catch (const error&) {
    return false;  // no kernel for these weights and activations
  }
  b->bias = layer.bias;
  b->smoothing = layer.smoothing;
  if (layer.lorc) {
    b->u = layer.lorc->u;
    b->v = layer.lorc->v;
  }
  // A weight-only layer with a 16-bit input (QuantizedLinear::input) rounds x / s here and
  // prepares gemm's 16-bit overload, which reads the rounded rows as they are where a kernel
  // takes them (and feeds the LoRC term the same rounded operand). The prepared call holds
  // what it read of x (the rounded rows and x / s die here); it keeps `b` alive itself.
  struct bound_call final : SplitWork {
    std::shared_ptr<const bound> keep;
    GemmCall call;
    std::int64_t tasks() const override { return call.tasks(); }
    void run(std::int64_t task) const override { call.run(task); }
  };
  const activation_dtype input = layer.effective_input();
  layer.kernel = [b, input, name = layer.weight.name](ConstRowMatrixRef x, RowMatrixRef y) -> std::unique_ptr<SplitWork> {
    auto c = std::make_unique<bound_call>();
    c->keep = b;
    GemmOptions o;
    if (b->bias) o.bias = &*b->bias;
    if (b->u) {
      o.lorc_u = &*b->u;
      o.lorc_v = &*b->v;
    }
    if (input == activation_dtype::f32) {
      if (b->smoothing) o.smoothing = &*b->smoothing;
      c->call = prepare_gemm(x, b->packed, y, o);
      return c;
    }
    RowMatrixXf smoothed;
    if (b->smoothing) smoothed = smoothed_activations(x, *b->smoothing);
    const ConstRowMatrixRef xs = b->smoothing ? ConstRowMatrixRef(smoothed) : x;
    try {
      if (input == activation_dtype::bf16) {
        c->call = prepare_gemm(detail::bf16_rows(xs).view(), b->packed, y, o);
      } else {
        c->call = prepare_gemm(RowMatrixXh(xs.template cast<Eigen::half>()), b->packed, y, o);
      }
    } catch (const error& e) {
      detail::fail("linear '" + name + "' (" + std::string(to_string(input)) + " activations): " + e.what());
    }
    return c;
  };
  return true;
}

}  // namespace lowbit
