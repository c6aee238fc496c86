#pragma once
// Fake quantization (quantize then dequantize, in fp32) of weights and activations: what the
// accuracy objectives of the algorithms compare against the full-precision product.
//
// The algorithms take a FakeQuantizer so that a caller can plug in any quantizer; the
// defaults below go through the library's quantizers (quant/quantizer.hpp and
// quant/activation.hpp), so the objective sees exactly what deployment will run.
#include <functional>
#include <string>
#include <optional>

#include "lowbit/config.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {

// Maps a matrix to its fake-quantized copy (same shape).
using FakeQuantizer = std::function<RowMatrixXf(ConstRowMatrixRef)>;

// Activation quantization used by a recipe: a dynamic format, per token (group = 0) or per
// group of `group` channels inside each token.
struct ActivationQuant {
  act_format format = act_format::int8;
  int group = 0;
};

// Q(W) through quantize/dequantize with `spec`.
template <class Deferred = void>  // see "Compile time" in docs/design.md
FakeQuantizer weight_fake_quantizer(const QuantSpec& spec, std::string name = "weight") {
  return [spec, name](ConstRowMatrixRef w) { return dequantize(quantize(w, spec, name)); };
}

}  // namespace lowbit
