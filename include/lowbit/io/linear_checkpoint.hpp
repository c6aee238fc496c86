#pragma once
// Whole QuantizedLinear layers (algo/linear.hpp) in a lowbit checkpoint (format version 2,
// docs/checkpoint-format.md). A layer with base name B is
//   - its QuantizedMatrix as B.qweight, B.scales, ... (io/checkpoint.hpp),
//   - LoRC factors as B.lorc_u / B.lorc_v (io/lorc_checkpoint.hpp),
//   - the bias as B.bias (F32 [out]) and the smoothing vector s as B.smooth (F32 [in]),
//   - in its metadata entry "lowbit.layer.B": "linear": true (the entry describes the whole
//     layer, so a missing part means the layer has none), "recipe", "activations" (format
//     name or absent for weight-only layers), "activation_group", "smoothing_alpha" (when
//     smoothed), "warning" (when quantization left one, e.g. a GPTQ fallback).
// Every part is stored exactly, so a loaded layer computes the same y = layer(x) bit for bit
// (the fast-kernel hook QuantizedLinear::kernel is not stored: attach it again after loading).
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/algo/quantized_linear.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/detail/scheme_json.hpp"
#include "lowbit/io/lorc_checkpoint.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/safetensors_writer.hpp"

namespace lowbit {

// The metadata fragment describing a QuantizedLinear's extras (merged into the layer entry
// by write_quantized_linear; callers may add informative keys such as "sqnr_db" through
// `extra` there).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json quantized_linear_metadata(const QuantizedLinear& layer) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  json_t j = json_t::object();
  j["linear"] = true;
  j["recipe"] = layer.recipe;
  if (layer.activations) {
    j["activations"] = detail::act_format_names().name(layer.activations->format);
    j["activation_group"] = layer.activations->group;
  }
  j["bias"] = layer.bias.has_value();
  if (layer.smoothing) j["smoothing_alpha"] = layer.smoothing_alpha;
  if (layer.lorc && layer.lorc->rank() > 0) j["lorc"] = lorc_metadata(*layer.lorc);
  if (!layer.warning.empty()) j["warning"] = layer.warning;
  return j;
}

// Appends one layer (streaming: its tensors go to the writer's file at once). `name` is the
// layer's weight name ("a.b.weight") or base name ("a.b"); the base names the tensors.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void write_quantized_linear(SafetensorsWriter& w, const std::string& name, const QuantizedLinear& layer,
                                   const deferred_t<Deferred, nlohmann::json>& extra = nlohmann::json::object()) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const std::string base = checkpoint_base_name(name);
  const auto bad = [&](const std::string& what) { detail::fail("checkpoint layer '" + name + "': " + what); };
  if (layer.bias && layer.bias->size() != layer.out_features())
    bad("bias has " + std::to_string(layer.bias->size()) + " values, the weight has " +
        std::to_string(layer.out_features()) + " outputs");
  if (layer.smoothing && layer.smoothing->size() != layer.in_features())
    bad("smoothing vector has " + std::to_string(layer.smoothing->size()) + " values, the weight has " +
        std::to_string(layer.in_features()) + " inputs");
  if (layer.lorc && layer.lorc->rank() > 0 &&
      (layer.lorc->u.rows() != layer.out_features() || layer.lorc->v.cols() != layer.in_features() ||
       layer.lorc->v.rows() != layer.lorc->rank()))
    bad("LoRC factors do not match the weight's shape");
  // The reader's rules for the vectors, applied before anything is written.
  if (layer.bias) detail::check_layer_vector(layer.bias->data(), layer.bias->size(), false, base + ".bias", bad);
  if (layer.smoothing) detail::check_layer_vector(layer.smoothing->data(), layer.smoothing->size(), true, base + ".smooth", bad);

  json_t meta = extra.is_object() ? extra : json_t::object();
  meta.update(quantized_linear_metadata(layer));
  // The tensors are named by `base`; the matrix's own name (what its errors quote) is kept.
  meta["matrix_name"] = layer.weight.name;
  meta["bits_per_weight"] = layer.bits_per_weight();  // the layer's, not only the matrix's
  write_quantized_matrix(w, base + ".weight", layer.weight, meta);
  if (layer.lorc && layer.lorc->rank() > 0) write_lorc(w, base + ".weight", *layer.lorc);
  if (layer.bias)
    w.add(base + ".bias", tensor_dtype::f32, {layer.bias->size()}, layer.bias->data(),
          static_cast<std::size_t>(layer.bias->size()) * sizeof(float));
  if (layer.smoothing)
    w.add(base + ".smooth", tensor_dtype::f32, {layer.smoothing->size()}, layer.smoothing->data(),
          static_cast<std::size_t>(layer.smoothing->size()) * sizeof(float));
}

// Writes a whole checkpoint of layers atomically: `metadata` adds file-level keys (e.g.
// "lowbit.producer"); the format keys are set by begin_checkpoint().
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void save_quantized_linears(const std::string& path,
                                   const std::vector<std::pair<std::string, QuantizedLinear>>& layers,
                                   const std::map<std::string, std::string>& metadata = {}) {
  SafetensorsWriter out(path);
  for (const auto& [k, v] : metadata) out.set_metadata(k, v);
  begin_checkpoint(out);
  for (const auto& [name, layer] : layers) write_quantized_linear(out, name, layer);
  out.finish();
}

// Whether layer `base` was stored as a whole QuantizedLinear (not a bare QuantizedMatrix).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline bool is_quantized_linear(const SafetensorsFile& f, const std::string& base) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const json_t info = checkpoint_layer_info(f, checkpoint_base_name(base));
  const auto it = info.find("linear");
  return it != info.end() && it->is_boolean() && it->template get<bool>();
}

// Rebuilds layer `name` (weight or base name). A bare QuantizedMatrix layer (format version 1,
// or written by write_quantized_matrix) loads as a layer with no bias, smoothing or recipe,
// with its LoRC factors and recorded activation format when the entry has them.
namespace detail {
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedLinear load_quantized_linear_impl(const SafetensorsFile& f, const std::string& name,
                                                  const std::uint8_t** codes_in_file) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  if (!is_lowbit_checkpoint(f)) detail::fail(f.source() + ": not a lowbit checkpoint (no " +
                                             std::string(checkpoint_format_key) + " in __metadata__)");
  const std::string base = checkpoint_base_name(name);
  const json_t info = checkpoint_layer_info(f, base);
  const auto bad = [&](const std::string& what) { detail::fail(f.source() + ": layer '" + base + "': " + what); };
  QuantizedLinear layer;
  layer.weight = load_quantized_matrix_impl(f, base, codes_in_file);
  if (const auto it = info.find("matrix_name"); it != info.end() && it->is_string()) layer.weight.name = it->template get<std::string>();
  const LowRank lr = load_lorc(f, base);
  if (lr.rank() > 0) {
    if (lr.u.rows() != layer.out_features() || lr.v.cols() != layer.in_features())
      bad("LoRC factors do not match the weight's shape");
    layer.lorc = lr;
  }
  if (const auto it = info.find("activations"); it != info.end() && !it->is_null()) {
    if (!it->is_string()) bad("\"activations\" is not a string");
    ActivationQuant aq;
    aq.format = detail::act_format_names().parse(it->template get<std::string>(), "activation format", base);
    if (info.contains("activation_group")) {
      const std::int64_t g = detail::json_int(info, "activation_group", base);
      if (g < 0 || g > (1 << 30)) bad("activation_group out of range");
      aq.group = static_cast<int>(g);
    }
    layer.activations = aq;
  }
  if (const auto it = info.find("recipe"); it != info.end()) {
    if (!it->is_string()) bad("\"recipe\" is not a string");
    layer.recipe = it->template get<std::string>();
  }
  if (const auto it = info.find("warning"); it != info.end() && it->is_string()) layer.warning = it->template get<std::string>();

  const detail::layer_parts parts = detail::declared_layer_parts(f, base, info);
  const auto vector = [&](const char* suffix, std::int64_t n, bool positive) {
    const std::vector<float> v = detail::read_layer_vector(f, base, suffix, n, positive);
    return Eigen::VectorXf(Eigen::Map<const Eigen::VectorXf>(v.data(), n));
  };
  if (parts.bias) layer.bias = vector(".bias", layer.out_features(), false);
  if (parts.smooth) {
    const auto& a = info["smoothing_alpha"];
    if (!a.is_number()) bad("\"smoothing_alpha\" is not a number");
    layer.smoothing_alpha = a.template get<float>();
    layer.smoothing = vector(".smooth", layer.in_features(), true);
  }
  return layer;
}
}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedLinear load_quantized_linear(const SafetensorsFile& f, const std::string& name) {
  return detail::load_quantized_linear_impl(f, name, nullptr);
}
// The same, validated alike, with the weight's codes left in f's memory map: layer.weight.codes
// is empty and `codes` points at its rows * row_stride bytes (valid while f is). A loader
// packs them from there (RecipeLinear) without copying them first.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedLinear load_quantized_linear_mapped(const SafetensorsFile& f, const std::string& name,
                                                    const std::uint8_t*& codes) {
  return detail::load_quantized_linear_impl(f, name, &codes);
}

// Every layer of a checkpoint, in metadata order.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<std::pair<std::string, QuantizedLinear>> load_quantized_linears(const SafetensorsFile& f) {
  std::vector<std::pair<std::string, QuantizedLinear>> out;
  for (const std::string& base : checkpoint_layers(f)) out.emplace_back(base, load_quantized_linear(f, base));
  return out;
}

}  // namespace lowbit
