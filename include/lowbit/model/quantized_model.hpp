#pragma once
// Loading a Llama-family model from a lowbit checkpoint (what `lowbit quantize` writes: one
// .safetensors file, or an output directory of shards with model.safetensors.index.json,
// config.json and tokenizer.json) WITHOUT re-quantizing:
//   - open_model() (model/load.hpp) reads it like any checkpoint: config.json (Hugging Face
//     names) or the tensors' shapes plus a config.json beside the file (Meta names), the
//     non-quantized tensors (embedding table, norms, an unquantized classifier) from their
//     stored dtype (F32/F16/BF16); the quantized layers are "external" to that source, with
//     the shapes their metadata records, checked against the config;
//   - every stored QuantizedLinear (io/linear_checkpoint.hpp) becomes a RecipeLinear with
//     its smoothing vector, LoRC factors, bias and activation format exactly as stored,
//     packed once here for this CPU's kernels straight from the memory-mapped codes (one
//     validating pass over them, no copy, no dequantized fp32 copy; the reference path
//     where no kernel runs the scheme, or an error with require_kernels); weight-only
//     layers may run on 16-bit activations (QuantizedLoadOptions::input);
//   - a linear layer stored as a plain tensor (excluded from quantization) runs in fp32; an
//     F32 classifier (or tied embedding table) runs in place in the memory map, uncopied.
// Errors name the checkpoint and the layer.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

// Whether a source (open_model) is a lowbit checkpoint, a GGUF file or a compressed-tensors
// directory: it has stored quantized layers.
inline bool is_lowbit_checkpoint(const ModelSource& src) { return src.has_stored_quantized_layers(); }

// Whether `path` (a .safetensors file, an index or a directory) holds a lowbit checkpoint.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline bool is_lowbit_checkpoint_path(const std::string& path) {
  if (!detail::is_directory(path) && !detail::ends_with(path, ".safetensors") && !detail::ends_with(path, ".index.json"))
    return false;
  const SafetensorsModel m = open_safetensors_model(path);
  for (const auto& shard : m.shards())
    if (lowbit::is_lowbit_checkpoint(*shard)) return true;
  return false;
}

// The model of a lowbit checkpoint opened by open_model().
template <class Deferred = void>  // see "Compile time" in docs/design.md
LlamaModel load_quantized_llama(std::shared_ptr<const ModelSource> src, const QuantizedLoadOptions& opt = {}) {
  // A GGUF file's quantized tensors (model/gguf_source.hpp).
  if (const auto* gg = dynamic_cast<const GgufSource*>(src.get()); gg != nullptr && gg->has_stored_quantized_layers()) {
    const LinearFactory factory = gguf_linear_factory(*gg, opt);
    return LlamaModel(std::move(src), factory);
  }
  // A compressed-tensors directory's quantized modules (model/ct_source.hpp).
  if (const auto* ct = dynamic_cast<const CompressedTensorsSource*>(src.get()); ct != nullptr) {
    const LinearFactory factory = ct_linear_factory(*ct, opt);
    LlamaBuildOptions build;
    build.classifier_in_place = true;  // an unquantized classifier runs from the map
    return LlamaModel(std::move(src), factory, build);
  }
  const auto* st = dynamic_cast<const SafetensorsSource*>(src.get());
  if (st == nullptr || st->external_linears().empty())
    lowbit::detail::fail(src->path() + ": not a lowbit checkpoint (no quantized layers)");
  const std::string path = src->path();
  // Which shard holds each quantized layer (a layer's entry and tensors live in one shard).
  std::map<std::string, const SafetensorsFile*> layer_shard;
  for (const auto& shard : st->tensors().shards()) {
    if (!lowbit::is_lowbit_checkpoint(*shard)) continue;
    for (const std::string& base : checkpoint_layers(*shard)) layer_shard.emplace(base, shard.get());
  }
  const LinearFactory factory = [&](const std::string& name, const RowMatrixXf& weight) -> std::unique_ptr<LinearLayer> {
    const auto it = layer_shard.find(name);
    if (it == layer_shard.end()) return std::make_unique<Fp32Linear>(weight);  // kept in its input dtype
    // Validated in place and packed straight from the memory map: the codes are read once
    // and never copied.
    const std::uint8_t* codes = nullptr;
    QuantizedLinear stored;
    try {
      stored = load_quantized_linear_mapped(*it->second, name, codes);
    } catch (const lowbit::error& e) {
      lowbit::detail::fail(path + ": layer " + name + ": " + e.what());
    }
    return stored_linear(std::move(stored), codes, opt, path, name);
  };
  LlamaBuildOptions build;
  build.classifier_in_place = true;  // the factory keeps a plain classifier fp32 as stored
  return LlamaModel(std::move(src), factory, build);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
LlamaModel load_quantized_llama(const std::string& path, const QuantizedLoadOptions& opt = {}) {
  return load_quantized_llama(open_model(path), opt);
}

// Any model `lowbit` reads: a lowbit checkpoint (file or output directory) with its layers as
// stored, otherwise an fp32 model.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LlamaModel load_llama_model(const std::string& path, const QuantizedLoadOptions& opt = {}) {
  auto src = open_model(path);
  if (is_lowbit_checkpoint(*src)) return load_quantized_llama(std::move(src), opt);
  if (opt.input != activation_dtype::f32)
    lowbit::detail::fail(path + ": " + std::string(to_string(opt.input)) +
                         " activations are for a quantized model's weight-only layers, and this model has no "
                         "quantized layers");
  return LlamaModel(std::move(src));
}

}  // namespace lowbit::model
