#pragma once
// Loading a Llama model from a lowbit checkpoint (what `lowbit quantize` writes: one
// .safetensors file, or an output directory of shards with model.safetensors.index.json,
// config.json and tokenizer.json) WITHOUT re-quantizing:
//   - every stored QuantizedLinear (io/linear_checkpoint.hpp) becomes a RecipeLinear with
//     its smoothing vector, LoRC factors, bias and activation format exactly as stored,
//     packed once here for this CPU's kernels (the reference path where no kernel runs the
//     scheme, or an error with require_kernels);
//   - a linear layer stored as a plain tensor (excluded from quantization) runs in fp32;
//   - the non-quantized tensors (embedding table, norms, an unquantized classifier) are read
//     from their stored dtype (F32/F16/BF16) into fp32; the classifier is the embedding table
//     when the checkpoint has no output layer (tied).
// The shapes come from config.json beside the checkpoint (or in the directory), the
// embedding table and the layers' recorded shapes; a layer that disagrees with them, a
// missing or extra layer, or a tensor failing validation is an error naming the layer.
// Names are Meta's (layers.N.attention.wq, output), as `lowbit quantize` writes them for
// Meta/llama2.c inputs.
#include <sys/stat.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/model/config_hints.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

struct QuantizedLoadOptions {
  // Refuse a layer whose scheme no kernel of this CPU runs (instead of the slower reference
  // path that dequantizes it once and multiplies in fp32).
  bool require_kernels = false;
};

namespace detail {

inline bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// config.json in the checkpoint directory, or beside the file / index.
inline LlamaConfigHints checkpoint_hints(const std::string& path) {
  return is_directory(path) ? config_hints_beside(path + "/model.safetensors") : config_hints_beside(path);
}

}  // namespace detail

// Whether `path` (a .safetensors file, an index or a directory) holds a lowbit checkpoint.
inline bool is_lowbit_checkpoint_path(const std::string& path) {
  if (!detail::is_directory(path) && !detail::ends_with(path, ".safetensors") && !detail::ends_with(path, ".index.json"))
    return false;
  const SafetensorsModel m = open_safetensors_model(path);
  for (const auto& shard : m.shards())
    if (is_lowbit_checkpoint(*shard)) return true;
  return false;
}

inline LlamaModel load_quantized_llama(const std::string& path, const QuantizedLoadOptions& opt = {}) {
  const SafetensorsModel m = open_safetensors_model(path);
  const auto fail = [&](const std::string& what) { lowbit::detail::fail(path + ": " + what); };

  // Which shard holds each quantized layer (a layer's entry and tensors live in one shard).
  std::map<std::string, const SafetensorsFile*> layer_shard;
  for (const auto& shard : m.shards()) {
    if (!is_lowbit_checkpoint(*shard)) continue;
    for (const std::string& base : checkpoint_layers(*shard))
      if (!layer_shard.emplace(base, shard.get()).second) fail("layer " + base + " is stored twice");
  }
  if (layer_shard.empty()) fail("not a lowbit checkpoint (no quantized layers)");
  const auto recorded_shape = [&](const std::string& base) -> std::pair<std::int64_t, std::int64_t> {
    const nlohmann::json info = checkpoint_layer_info(*layer_shard.at(base), base);
    const auto it = info.find("shape");
    if (it == info.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() ||
        !(*it)[1].is_number_integer())
      fail("layer " + base + ": no valid \"shape\" in its metadata");
    return {(*it)[0].get<std::int64_t>(), (*it)[1].get<std::int64_t>()};
  };
  // Shape of a linear layer, quantized or plain; empty when the checkpoint has neither.
  const auto linear_shape = [&](const std::string& base) -> std::optional<std::pair<std::int64_t, std::int64_t>> {
    if (layer_shard.count(base)) return recorded_shape(base);
    if (const TensorView* t = m.find(base + ".weight")) {
      if (t->rank() != 2) fail("tensor " + base + ".weight is not 2-D");
      return std::make_pair(t->shape[0], t->shape[1]);
    }
    return std::nullopt;
  };

  // ---- the config: the file's shapes, checked against config.json -------------------------
  const LlamaConfigHints hints = detail::checkpoint_hints(path);
  const TensorView* emb = m.find("tok_embeddings.weight");
  if (emb == nullptr) {
    if (m.find("model.embed_tokens.weight") != nullptr)
      fail("Hugging Face tensor names are not supported by this loader yet (it reads Meta names: tok_embeddings.weight, "
           "layers.N.attention.wq)");
    fail("missing tensor tok_embeddings.weight (expected Meta-Llama names)");
  }
  if (emb->rank() != 2) fail("tok_embeddings.weight is not 2-D");
  LlamaConfig c;
  const auto as_int = [&](std::int64_t v, const std::string& what) {
    if (v <= 0 || v > (1 << 24)) fail(what + " " + std::to_string(v) + " out of range");
    return static_cast<int>(v);
  };
  c.vocab_size = as_int(emb->shape[0], "vocab_size");
  c.dim = as_int(emb->shape[1], "dim");
  while (linear_shape(linear_name(c.n_layers, linear_slot::wq))) ++c.n_layers;
  if (c.n_layers == 0) fail("no layer layers.0.attention.wq");
  const auto w1 = linear_shape(linear_name(0, linear_slot::w1));
  const auto wk = linear_shape(linear_name(0, linear_slot::wk));
  if (!w1 || !wk) fail("layer 0 lacks " + std::string(!w1 ? "feed_forward.w1" : "attention.wk"));
  c.hidden_dim = as_int(w1->first, "hidden_dim");
  const int kv_dim = as_int(wk->first, "kv_dim");
  const auto out_shape = linear_shape(kClassifierName);
  c.tied_classifier = !out_shape.has_value();
  if (!hints.n_heads && !hints.head_dim)
    fail("the head count is not in the checkpoint: put a config.json (n_heads or num_attention_heads) beside it");
  c.n_heads = hints.n_heads ? *hints.n_heads : c.dim / *hints.head_dim;
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    fail("n_heads " + std::to_string(c.n_heads) + " does not divide dim " + std::to_string(c.dim));
  if (kv_dim % c.head_dim() != 0)
    fail("layer layers.0.attention.wk has " + std::to_string(kv_dim) + " rows, not a multiple of head_dim " +
         std::to_string(c.head_dim()));
  c.n_kv_heads = kv_dim / c.head_dim();
  c.max_seq_len = hints.max_seq_len.value_or(2048);
  if (hints.norm_eps) c.norm_eps = *hints.norm_eps;
  if (hints.rope_theta) c.rope_theta = *hints.rope_theta;
  const auto agree = [&](const std::optional<int>& hint, int value, const std::string& what, const std::string& where) {
    if (hint && *hint != value)
      fail("config.json says " + what + " " + std::to_string(*hint) + " but " + where + " gives " + std::to_string(value));
  };
  agree(hints.dim, c.dim, "dim", "tok_embeddings.weight");
  agree(hints.vocab_size, c.vocab_size, "vocab_size", "tok_embeddings.weight");
  agree(hints.hidden_dim, c.hidden_dim, "hidden_dim", "layer layers.0.feed_forward.w1");
  agree(hints.n_layers, c.n_layers, "n_layers", "the checkpoint's layers");
  agree(hints.n_kv_heads, c.n_kv_heads, "n_kv_heads", "layer layers.0.attention.wk");
  if (hints.tied_classifier && *hints.tied_classifier != c.tied_classifier)
    fail(std::string("config.json says tie_word_embeddings ") + (*hints.tied_classifier ? "true" : "false") +
         " but the checkpoint " + (c.tied_classifier ? "has no" : "has an") + " output layer");
  c.validate(path);

  // ---- the non-quantized tensors ------------------------------------------------------------
  LlamaWeights w;
  w.config = c;
  const auto plain = [&](const std::string& name, std::vector<std::int64_t> shape) {
    const TensorView* t = m.find(name);
    if (t == nullptr) fail("missing tensor " + name);
    if (t->shape != shape) fail("tensor " + name + " has the wrong shape for the config");
    if (t->dtype != tensor_dtype::f32 && t->dtype != tensor_dtype::f16 && t->dtype != tensor_dtype::bf16)
      fail("tensor " + name + " is " + std::string(dtype_name(t->dtype)) + ", expected F32, F16 or BF16");
    return t;
  };
  const auto vec = [&](const std::string& name) {
    const std::vector<float> v = plain(name, {c.dim})->to_float_vector();
    return Eigen::VectorXf(Eigen::Map<const Eigen::VectorXf>(v.data(), c.dim));
  };
  w.tok_embeddings = plain("tok_embeddings.weight", {c.vocab_size, c.dim})->to_matrix();
  w.norm = vec("norm.weight");
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w.layers[static_cast<std::size_t>(l)].attention_norm = vec(p + "attention_norm.weight");
    w.layers[static_cast<std::size_t>(l)].ffn_norm = vec(p + "ffn_norm.weight");
  }
  w.validate(path, /*linear_matrices=*/false);  // shapes and NaN/Inf of what was read

  // ---- the linear layers --------------------------------------------------------------------
  const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim();
  const std::int64_t shapes[kLinearSlots][2] = {{D, D}, {KV, D}, {KV, D}, {D, D}, {H, D}, {D, H}, {H, D}};
  std::vector<std::unique_ptr<LinearLayer>> linears;
  std::map<std::string, bool> used;
  const auto build = [&](const std::string& name, std::int64_t rows, std::int64_t cols) -> std::unique_ptr<LinearLayer> {
    const auto shape = linear_shape(name);
    if (!shape) fail("missing layer " + name);
    if (shape->first != rows || shape->second != cols)
      fail("layer " + name + " has shape [" + std::to_string(shape->first) + ", " + std::to_string(shape->second) +
           "] but the config (config.json and the embedding table) needs [" + std::to_string(rows) + ", " +
           std::to_string(cols) + "]");
    used[name] = true;
    const auto it = layer_shard.find(name);
    if (it == layer_shard.end()) {
      RowMatrixXf weight = m.at(name + ".weight").to_matrix();
      if (!weight.allFinite()) fail("layer " + name + ": weight contains NaN or Inf");
      return std::make_unique<Fp32Linear>(std::move(weight));
    }
    std::unique_ptr<RecipeLinear> layer;
    try {
      layer = std::make_unique<RecipeLinear>(load_quantized_linear(*it->second, name), /*use_kernels=*/true);
    } catch (const lowbit::error& e) {
      fail("layer " + name + ": " + e.what());
    }
    if (opt.require_kernels && !layer->uses_kernels())
      fail("layer " + name + ": no kernel of this CPU runs its scheme (" + lowbit::to_string(layer->quantized().weight.spec) +
           (layer->quantized().activations
                ? ", activations " + std::string(lowbit::to_string(layer->quantized().activations->format))
                : std::string()) +
           ")");
    return layer;
  };
  for (int l = 0; l < c.n_layers; ++l)
    for (int s = 0; s < kLinearSlots; ++s)
      linears.push_back(build(linear_name(l, static_cast<linear_slot>(s)), shapes[s][0], shapes[s][1]));
  if (c.tied_classifier)
    linears.push_back(std::make_unique<Fp32Linear>(w.tok_embeddings));
  else
    linears.push_back(build(kClassifierName, c.vocab_size, D));
  for (const auto& [base, shard] : layer_shard)
    if (!used.count(base))
      fail("quantized layer " + base + " is not part of a Llama model with " + std::to_string(c.n_layers) + " layers");
  return LlamaModel(std::move(w), std::move(linears));
}

// Any model `lowbit` reads: a lowbit checkpoint (file or output directory) through
// load_quantized_llama(), otherwise fp32 weights through load_llama_weights().
inline LlamaModel load_llama_model(const std::string& path, const QuantizedLoadOptions& opt = {}) {
  if (is_lowbit_checkpoint_path(path)) return load_quantized_llama(path, opt);
  return LlamaModel(load_llama_weights(path));
}

}  // namespace lowbit::model
