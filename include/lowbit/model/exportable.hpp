#pragma once
// exportable(format, ...): whether the GGUF or compressed-tensors exporter
// (model/gguf_export.hpp, model/ct_export.hpp) can write a layer or a model exactly, and if
// not, why, in the words the exporter's refusal uses. The exporters refuse through these same
// functions, so the answer here and the exporter's never disagree; a program can ask before it
// spends the time quantizing (`lowbit quantize --format` does):
//
//   ExportLayer L = export_layer("layers.0.attention.wq", recipe, rows, cols);
//   if (const Exportable e = exportable(export_format::gguf, L); !e) fail(e.reason);
//
// What this can know before quantizing: the weight scheme (element format, scales, group size
// against the row length), LoRC factors, a smoothing vector, a bias, the activation format,
// and the model's architecture. What only the quantized data decides, refused by the exporter
// afterwards: GGUF scales that are not fp16 values (f32 scale storage), non-finite scales, and
// compressed-tensors' folding of smoothing vectors into a norm (q/k/v, or gate/up, must carry
// the same vector bit for bit).
#include <cstdint>
#include <optional>
#include <string>

#include "lowbit/algo/linear.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/model/ct_format.hpp"
#include "lowbit/model/llama_config.hpp"
#include "lowbit/model/norm_smoothing.hpp"
#include "lowbit/model/weights.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

enum class export_format { gguf, compressed_tensors };

// What the export rules read of one quantized linear layer.
struct ExportLayer {
  std::string name;                 // the source's layer name, e.g. "layers.0.attention.wq"
  QuantSpec weight;                 // the weight scheme
  std::int64_t rows = 0, cols = 0;  // [out_features, in_features]
  bool lorc = false;                // LoRC factors
  bool smoothing = false;           // a smoothing vector that is not all ones
  bool bias = false;                // a bias stored with the quantized layer
  std::optional<ActivationQuant> activations;
  // Where the layer sits in a decoder layer, when known: compressed-tensors folds smoothing of
  // q/k/v and gate/up into the norm they read, and refuses it on o_proj and down_proj.
  std::optional<linear_slot> slot;

  // The effective group length along a row (cols unless per group), as quantize() sets it.
  std::int64_t group_size() const noexcept {
    return weight.gran == granularity::per_group ? static_cast<std::int64_t>(weight.group_size) : cols;
  }
};

// A stored (or just quantized) layer.
inline ExportLayer export_layer(const std::string& name, const QuantizedLinear& q, std::optional<linear_slot> slot = {}) {
  ExportLayer L;
  L.name = name;
  L.weight = q.weight.spec;
  L.rows = q.weight.rows;
  L.cols = q.weight.cols;
  L.lorc = q.lorc.has_value();
  L.smoothing = q.smoothing && !(q.smoothing->array() == 1.0f).all();
  L.bias = q.bias.has_value();
  L.activations = q.activations;
  L.slot = slot;
  return L;
}

// A layer of shape [rows, cols] as `recipe` will quantize it (`bias`: the source has one for
// it), known before quantizing.
inline ExportLayer export_layer(const std::string& name, const LinearRecipe& recipe, std::int64_t rows, std::int64_t cols,
                                bool bias = false, std::optional<linear_slot> slot = {}) {
  ExportLayer L;
  L.name = name;
  L.weight = recipe.weight;
  L.rows = rows;
  L.cols = cols;
  L.lorc = recipe.lorc_rank > 0;
  L.smoothing = recipe_smooths(recipe, slot);  // per_norm recipes leave o_proj / down_proj unsmoothed
  L.bias = bias;
  L.activations = recipe.activations;
  L.slot = slot;
  return L;
}

// The answer: true, or false with `reason` as the exporter words it after "<in>: GGUF export: "
// or "<in>: compressed-tensors export: " (the layer named first, then the missing feature).
struct Exportable {
  std::string reason;  // empty: exportable
  explicit operator bool() const noexcept { return reason.empty(); }
};

namespace detail {

// Model-level GGUF rules (the architecture lowbit writes as llama / qwen2).
inline std::string gguf_config_refusal(const LlamaConfig& c) {
  if (c.arch == model_arch::qwen3 || c.qk_norm) return "architecture qwen3 (q/k norms) is not exported (llama and qwen2 only)";
  if (c.sliding_window != 0) return "sliding_window " + std::to_string(c.sliding_window) + " has no llama-architecture GGUF form";
  if (c.explicit_head_dim > 0 && c.explicit_head_dim * c.n_heads != c.dim && c.arch == model_arch::qwen2)
    return "a head_dim other than hidden_size / num_attention_heads is not exported for qwen2";
  const bool qwen2 = c.arch == model_arch::qwen2;
  if (qwen2 && (c.o_bias || c.mlp_bias)) return "qwen2 with o_proj / MLP biases has no GGUF form";
  if (qwen2 && !c.qkv_bias) return "qwen2 without q/k/v biases has no GGUF form";
  // Rope scaling: linear and default yarn are metadata keys; llama3 is a rope_freqs tensor,
  // which llama.cpp's llama graph reads (its qwen2 graph does not).
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == rope_scaling_type::dynamic) return "rope scaling 'dynamic' has no llama.cpp form";
  if (rs.type == rope_scaling_type::llama3 && qwen2)
    return "llama3 rope scaling is exported for the llama architecture only (llama.cpp's qwen2 reads no rope_freqs)";
  if (rs.type == rope_scaling_type::yarn && (rs.beta_fast != 32.0 || rs.beta_slow != 1.0 || rs.mscale != 0.0 ||
                                             rs.mscale_all_dim != 0.0 || rs.attention_factor != 0.0))
    return "yarn rope scaling with non-default beta_fast / beta_slow / mscale / attention_factor is not exported";
  if (!rs.freq_factors.empty()) return "rope frequency factors (a GGUF file's rope_freqs) are not exported";
  return {};
}

// Model-level compressed-tensors rules.
inline std::string ct_config_refusal(const LlamaConfig& c) {
  if (c.qk_norm) return "q/k norms (qwen3) are not exported";
  return {};
}

inline const char* ct_module_of(linear_slot s) {
  return s == linear_slot::wo ? "o_proj (its input, the attention output," : "down_proj (its input, the SwiGLU product,";
}

}  // namespace detail

// Whether `layer` has an exact form in `format`.
inline Exportable exportable(export_format format, const ExportLayer& layer) {
  const std::string with_spec = "layer " + layer.name + " (" + lowbit::to_string(layer.weight) + "): ";
  if (format == export_format::gguf) {
    if (layer.lorc) return {"layer " + layer.name + ": LoRC factors (GGUF has no low-rank correction term)"};
    if (layer.smoothing)
      return {"layer " + layer.name + ": a SmoothQuant smoothing vector (GGUF has none; folding it into the preceding "
              "norm is not implemented)"};
    std::string why = lowbit::detail::gguf_spec_refusal(layer.weight, nullptr);
    if (why.empty()) why = lowbit::detail::gguf_layout_refusal(layer.cols, layer.group_size());
    if (!why.empty()) return {with_spec + "GGUF export of '" + layer.name + "': " + why};
    return {};
  }
  bool smoothing = layer.smoothing;
  if (smoothing && layer.slot) {
    if (!norm_read_by(*layer.slot))
      return {"layer " + layer.name + ": a SmoothQuant smoothing vector on " + detail::ct_module_of(*layer.slot) +
              " has no norm to fold it into; compressed-tensors has no smoothing tensor)"};
    smoothing = false;  // q/k/v, gate/up: folded into the norm they read (the exporter checks they agree)
  }
  const std::string why = detail::ct_layer_refusal(layer.weight, layer.cols, layer.group_size(), layer.lorc, smoothing,
                                                   layer.bias, layer.activations);
  if (!why.empty()) return {with_spec + why};
  return {};
}

// Whether a model of configuration `c` can be exported to `format` (its architecture; each
// quantized layer is asked separately). The reason has no layer: the model is refused.
inline Exportable exportable(export_format format, const LlamaConfig& c) {
  return {format == export_format::gguf ? detail::gguf_config_refusal(c) : detail::ct_config_refusal(c)};
}

inline const char* to_string(export_format f) noexcept {
  return f == export_format::gguf ? "GGUF" : "compressed-tensors";
}

}  // namespace lowbit::model
