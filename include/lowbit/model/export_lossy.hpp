#pragma once
// `--allow-lossy` export (ExportOptions::allow_lossy of the GGUF and compressed-tensors
// exporters): a layer the target refuses (no exact form: LoRC factors, a smoothing vector that
// cannot fold, an M2 / non-fp16 scale, FP8 in GGUF, ...) is written requantized instead of
// refusing the export:
//
//   W_eff = (W_hat + U V) diag(1/s)      the layer's effective weight (QuantizedLinear::effective_weight)
//   Q     = quantize(W_eff, target spec)  the closest scheme the target writes exactly
//
// and the added error is measured against W_eff (what lowbit's layer computes, activation
// quantization aside): SQNR in dB and the relative Frobenius error ||W_eff - deq(Q)|| / ||W_eff||.
// The exporter reports every such layer (LossyLayer) and never approximates without the flag.
#include <string>
#include <vector>

#include "lowbit/algo/quantized_linear.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

// One layer written requantized.
struct LossyLayer {
  std::string layer;    // the source's layer name
  std::string refusal;  // why the exact export refused it (the exporter's words)
  std::string target;   // what it was written as, e.g. "Q8_0 (int8:g32:f16)"
  double sqnr_db = 0.0;     // of the exported weight against the layer's effective weight
  double rel_error = 0.0;   // ||W_eff - W_exported||_F / ||W_eff||_F
};

// The layer requantized to `target`: its effective weight quantized by `target`, with the
// layer's bias and activation format kept (no smoothing, no LoRC: both are in W_eff). `error`
// receives the added error.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedLinear requantize_for_export(const QuantizedLinear& layer, const QuantSpec& target, const std::string& name,
                                      ErrorStats& error) {
  const RowMatrixXf w = layer.effective_weight();
  QuantizedLinear out;
  out.recipe = layer.recipe;
  out.activations = layer.activations;
  out.bias = layer.bias;
  out.weight = quantize(w, target, name);
  error = error_stats(w, dequantize(out.weight));
  return out;
}

// A lossy layer's report entry.
inline LossyLayer lossy_layer(const std::string& name, const std::string& refusal, const std::string& target,
                              const ErrorStats& e) {
  return {name, refusal, target, e.sqnr_db, e.rel_fro};
}

}  // namespace lowbit::model
