#pragma once
// The fp32 arrays of a Llama-family model and their names in a checkpoint.
//
// LlamaLayerWeights is one decoder layer, as a ModelSource hands it out (model/source.hpp)
// and as DecoderLayer is built from (model/decoder_layer.hpp); LlamaWeights is a whole model
// in memory (tests, small models, model_source_from_weights()).
//
// Names (without ".weight"/".bias"), by the checkpoint's naming:
//   slot   Meta / llama2.c            Hugging Face
//   wq     layers.N.attention.wq      model.layers.N.self_attn.q_proj
//   wk     layers.N.attention.wk      model.layers.N.self_attn.k_proj
//   wv     layers.N.attention.wv      model.layers.N.self_attn.v_proj
//   wo     layers.N.attention.wo      model.layers.N.self_attn.o_proj
//   w1     layers.N.feed_forward.w1   model.layers.N.mlp.gate_proj
//   w2     layers.N.feed_forward.w2   model.layers.N.mlp.down_proj
//   w3     layers.N.feed_forward.w3   model.layers.N.mlp.up_proj
//   norms  layers.N.attention_norm, layers.N.ffn_norm  |  model.layers.N.input_layernorm,
//          model.layers.N.post_attention_layernorm, model.layers.N.self_attn.{q,k}_norm
//   other  tok_embeddings, norm, output  |  model.embed_tokens, model.norm, lm_head
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/model/llama_config.hpp"

namespace lowbit::model {

enum class weight_naming { meta, hf };

// The seven linear layers of a block, in the order the forward pass runs them.
enum class linear_slot : int { wq, wk, wv, wo, w1, w2, w3 };
inline constexpr int kLinearSlots = 7;

// Name of a linear layer without ".weight", e.g. "layers.3.feed_forward.w2" (Meta) or
// "model.layers.3.mlp.down_proj" (Hugging Face).
inline std::string linear_name(int layer, linear_slot s, weight_naming naming = weight_naming::meta) {
  static const char* const meta[kLinearSlots] = {"attention.wq", "attention.wk", "attention.wv", "attention.wo",
                                                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"};
  static const char* const hf[kLinearSlots] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj",    "mlp.down_proj",
                                               "mlp.up_proj"};
  const int i = static_cast<int>(s);
  return naming == weight_naming::meta ? "layers." + std::to_string(layer) + "." + meta[i]
                                       : "model.layers." + std::to_string(layer) + "." + hf[i];
}
// The classifier's linear name: "output" (Meta) or "lm_head" (Hugging Face).
inline const char* classifier_name(weight_naming naming) { return naming == weight_naming::meta ? "output" : "lm_head"; }
inline const char* const kClassifierName = "output";  // Meta naming (llama2.c, Meta safetensors)
inline bool is_classifier_name(const std::string& name) { return name == "output" || name == "lm_head"; }

// Tensor names of the non-linear arrays.
struct TensorNames {
  static std::string embeddings(weight_naming n) {
    return n == weight_naming::meta ? "tok_embeddings.weight" : "model.embed_tokens.weight";
  }
  static std::string final_norm(weight_naming n) { return n == weight_naming::meta ? "norm.weight" : "model.norm.weight"; }
  static std::string classifier(weight_naming n) { return std::string(classifier_name(n)) + ".weight"; }
  static std::string attention_norm(int l, weight_naming n) {
    return n == weight_naming::meta ? "layers." + std::to_string(l) + ".attention_norm.weight"
                                    : "model.layers." + std::to_string(l) + ".input_layernorm.weight";
  }
  static std::string ffn_norm(int l, weight_naming n) {
    return n == weight_naming::meta ? "layers." + std::to_string(l) + ".ffn_norm.weight"
                                    : "model.layers." + std::to_string(l) + ".post_attention_layernorm.weight";
  }
  static std::string q_norm(int l) { return "model.layers." + std::to_string(l) + ".self_attn.q_norm.weight"; }
  static std::string k_norm(int l) { return "model.layers." + std::to_string(l) + ".self_attn.k_norm.weight"; }
};

struct LlamaLayerWeights {
  Eigen::VectorXf attention_norm, ffn_norm;  // [dim]
  RowMatrixXf wq, wk, wv, wo;                // [q_dim, dim], [kv_dim, dim] x2, [dim, q_dim]
  RowMatrixXf w1, w2, w3;                    // [hidden, dim], [dim, hidden], [hidden, dim]
  // Optional (empty when the config says the model has none):
  Eigen::VectorXf bq, bk, bv, bo, b1, b2, b3;  // biases, [out] of their linear
  Eigen::VectorXf q_norm, k_norm;              // [head_dim] (qwen3)

  const RowMatrixXf& matrix(linear_slot s) const {
    const RowMatrixXf* m[kLinearSlots] = {&wq, &wk, &wv, &wo, &w1, &w2, &w3};
    return *m[static_cast<int>(s)];
  }
  RowMatrixXf& matrix(linear_slot s) { return const_cast<RowMatrixXf&>(static_cast<const LlamaLayerWeights&>(*this).matrix(s)); }
  const Eigen::VectorXf& bias(linear_slot s) const {
    const Eigen::VectorXf* b[kLinearSlots] = {&bq, &bk, &bv, &bo, &b1, &b2, &b3};
    return *b[static_cast<int>(s)];
  }
  Eigen::VectorXf& bias(linear_slot s) { return const_cast<Eigen::VectorXf&>(static_cast<const LlamaLayerWeights&>(*this).bias(s)); }
};

namespace detail {

// Rejects a wrong shape or a NaN/Inf, naming the tensor and the first bad element.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void check_array(const std::string& source, const std::string& name, std::int64_t rows, std::int64_t cols,
                        std::int64_t want_rows, std::int64_t want_cols, const float* data) {
  if (rows != want_rows || cols != want_cols)
    lowbit::detail::fail(source + ": tensor " + name + " has shape [" + std::to_string(rows) + ", " +
                         std::to_string(cols) + "], expected [" + std::to_string(want_rows) + ", " +
                         std::to_string(want_cols) + "]");
  // Branch-free over chunks (an exponent of all ones is NaN or Inf; this vectorizes, so a
  // large table is checked at memory speed); the position only where a chunk has one.
  const std::int64_t n = rows * cols;
  constexpr std::int64_t chunk = 1024;
  for (std::int64_t c0 = 0; c0 < n; c0 += chunk) {
    const std::int64_t c1 = std::min(n, c0 + chunk);
    std::uint32_t any = 0;
    for (std::int64_t i = c0; i < c1; ++i) {
      std::uint32_t u;
      std::memcpy(&u, data + i, 4);
      any |= static_cast<std::uint32_t>((u & 0x7f800000u) == 0x7f800000u);
    }
    if (any == 0) continue;
    for (std::int64_t i = c0; i < c1; ++i)
      if (!std::isfinite(data[i]))
        lowbit::detail::fail(source + ": tensor " + name + " has a non-finite value at row " +
                             std::to_string(i / cols) + ", column " + std::to_string(i % cols));
  }
}

inline bool slot_has_bias(const LlamaConfig& c, linear_slot s) {
  switch (s) {
    case linear_slot::wq: case linear_slot::wk: case linear_slot::wv: return c.qkv_bias;
    case linear_slot::wo: return c.o_bias;
    default: return c.mlp_bias;
  }
}

}  // namespace detail

// The [rows, cols] a slot's matrix must have under `c`.
inline std::pair<std::int64_t, std::int64_t> linear_shape(const LlamaConfig& c, linear_slot s) {
  const std::int64_t D = c.dim, H = c.hidden_dim, Q = c.q_dim(), KV = c.kv_dim();
  switch (s) {
    case linear_slot::wq: return {Q, D};
    case linear_slot::wk: case linear_slot::wv: return {KV, D};
    case linear_slot::wo: return {D, Q};
    case linear_slot::w1: case linear_slot::w3: return {H, D};
    case linear_slot::w2: return {D, H};
  }
  return {0, 0};
}

// Checks every array of layer `l` against the config (shapes, presence of biases and q/k
// norms, finite values); names use `naming`, errors start with `source`.
// external_linears: an empty matrix (and its bias) is a linear stored in another form (a lowbit
// checkpoint's quantized layer, model/quantized_model.hpp) rather than an error; the layer
// built from it is checked against the config's shape instead.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void validate_layer(const LlamaConfig& c, const LlamaLayerWeights& L, int l, weight_naming naming,
                           const std::string& source, bool external_linears = false) {
  auto vec = [&](const std::string& name, const Eigen::VectorXf& v, std::int64_t n) {
    detail::check_array(source, name, 1, v.size(), 1, n, v.data());
  };
  vec(TensorNames::attention_norm(l, naming), L.attention_norm, c.dim);
  vec(TensorNames::ffn_norm(l, naming), L.ffn_norm, c.dim);
  for (int i = 0; i < kLinearSlots; ++i) {
    const auto s = static_cast<linear_slot>(i);
    const auto [r, k] = linear_shape(c, s);
    const RowMatrixXf& m = L.matrix(s);
    const std::string base = linear_name(l, s, naming);
    if (external_linears && m.size() == 0 && L.bias(s).size() == 0) continue;
    detail::check_array(source, base + ".weight", m.rows(), m.cols(), r, k, m.data());
    const Eigen::VectorXf& b = L.bias(s);
    if (detail::slot_has_bias(c, s))
      vec(base + ".bias", b, r);
    else if (b.size() != 0)
      lowbit::detail::fail(source + ": tensor " + base + ".bias is present but the config says this layer has no bias");
  }
  if (c.qk_norm) {
    vec(TensorNames::q_norm(l), L.q_norm, c.head_dim());
    vec(TensorNames::k_norm(l), L.k_norm, c.head_dim());
  } else if (L.q_norm.size() != 0 || L.k_norm.size() != 0) {
    lowbit::detail::fail(source + ": layer " + std::to_string(l) + " has q_norm/k_norm but the config has none");
  }
}

struct LlamaWeights {
  LlamaConfig config;
  weight_naming naming = weight_naming::meta;
  RowMatrixXf tok_embeddings;  // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  Eigen::VectorXf norm;        // [dim]
  RowMatrixXf output;          // [vocab, dim]; empty when config.tied_classifier

  const RowMatrixXf& classifier() const { return config.tied_classifier ? tok_embeddings : output; }

  // Checks every array against the config and rejects NaN/Inf; `source` names the file.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  void validate(const std::string& source) const {
    config.validate(source);
    const LlamaConfig& c = config;
    detail::check_array(source, TensorNames::embeddings(naming), tok_embeddings.rows(), tok_embeddings.cols(),
                        c.vocab_size, c.dim, tok_embeddings.data());
    detail::check_array(source, TensorNames::final_norm(naming), 1, norm.size(), 1, c.dim, norm.data());
    if (!c.tied_classifier)
      detail::check_array(source, TensorNames::classifier(naming), output.rows(), output.cols(), c.vocab_size, c.dim,
                          output.data());
    if (static_cast<int>(layers.size()) != c.n_layers)
      lowbit::detail::fail(source + ": " + std::to_string(layers.size()) + " layers, config says " +
                           std::to_string(c.n_layers));
    for (int l = 0; l < c.n_layers; ++l) validate_layer(c, layers[static_cast<std::size_t>(l)], l, naming, source);
  }
};

}  // namespace lowbit::model
