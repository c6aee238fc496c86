#pragma once
// Loader for Llama weights stored as safetensors (F32, F16 or BF16; read through
// io/safetensors.hpp, converted to fp32) with Meta (llama / llama2.c) names:
//
//   tok_embeddings.weight [vocab, dim]     norm.weight [dim]     output.weight [vocab, dim]
//   layers.N.attention_norm.weight [dim]   layers.N.ffn_norm.weight [dim]
//   layers.N.attention.{wq,wk,wv,wo}.weight   layers.N.feed_forward.{w1,w2,w3}.weight
//
// Linear weights are [out, in] row-major; q/k use RoPE on interleaved pairs (Meta's
// convention). output.weight is optional: without it the classifier is tied to the
// embedding. Shapes give dim, hidden_dim, n_layers, vocab and kv_dim; the head count comes
// from the hints (config.json: n_heads, or head_dim). Hugging Face names
// (model.layers.N.self_attn.q_proj...) are not accepted: their q/k rows are permuted for
// rotate-half RoPE, and reading them as interleaved pairs would silently give a wrong model.
#include <string>
#include <vector>

#include "lowbit/model/config_hints.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/model/llama.hpp"

namespace lowbit::model {

inline LlamaWeights load_llama_safetensors(const SafetensorsFile& st,
                                           const LlamaConfigHints& hints) {
  const std::string& src = st.source();
  auto fail = [&](const std::string& what) { lowbit::detail::fail(src + ": " + what); };
  auto shape_of = [&](const std::string& name) -> const std::vector<std::int64_t>& {
    if (st.find(name) == nullptr)
      fail("missing tensor " + name + " (expected Meta-Llama names such as " +
           "tok_embeddings.weight, layers.0.attention.wq.weight)");
    return st.at(name).shape;
  };
  auto dim2 = [&](const std::string& name) {
    const auto& s = shape_of(name);
    if (s.size() != 2) fail("tensor " + name + " must be 2-D, it has " + std::to_string(s.size()) + " dimensions");
    return s;
  };
  auto as_int = [&](std::int64_t v, const std::string& what) {
    if (v <= 0 || v > (1 << 24)) fail(what + " " + std::to_string(v) + " out of range");
    return static_cast<int>(v);
  };

  LlamaConfig c;
  const auto emb = dim2("tok_embeddings.weight");
  c.vocab_size = as_int(emb[0], "vocab_size");
  c.dim = as_int(emb[1], "dim");
  while (st.find("layers." + std::to_string(c.n_layers) + ".attention.wq.weight") != nullptr) ++c.n_layers;
  if (c.n_layers == 0) fail("no layers.0.attention.wq.weight: not a Meta-Llama checkpoint");
  c.hidden_dim = as_int(dim2("layers.0.feed_forward.w1.weight")[0], "hidden_dim");
  const int kv_dim = as_int(dim2("layers.0.attention.wk.weight")[0], "kv_dim");
  c.tied_classifier = st.find("output.weight") == nullptr;

  if (hints.n_heads) {
    c.n_heads = *hints.n_heads;
  } else if (hints.head_dim && *hints.head_dim > 0) {
    c.n_heads = c.dim / *hints.head_dim;
  } else {
    fail("the head count is not in the file: put n_heads (or head_dim) in a config.json beside it");
  }
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    fail("n_heads " + std::to_string(c.n_heads) + " does not divide dim " + std::to_string(c.dim));
  const int hd = c.dim / c.n_heads;
  if (kv_dim % hd != 0)
    fail("wk has " + std::to_string(kv_dim) + " rows, not a multiple of head_dim " + std::to_string(hd));
  c.n_kv_heads = kv_dim / hd;
  if (hints.n_kv_heads && *hints.n_kv_heads != c.n_kv_heads)
    fail("config says n_kv_heads " + std::to_string(*hints.n_kv_heads) + " but wk implies " +
         std::to_string(c.n_kv_heads));
  c.max_seq_len = hints.max_seq_len.value_or(2048);
  if (hints.norm_eps) c.norm_eps = *hints.norm_eps;
  if (hints.rope_theta) c.rope_theta = *hints.rope_theta;
  c.validate(src);

  LlamaWeights w;
  w.config = c;
  auto read_mat = [&](const std::string& name, std::int64_t rows, std::int64_t cols) {
    const auto s = dim2(name);
    if (s[0] != rows || s[1] != cols)
      fail("tensor " + name + " has shape [" + std::to_string(s[0]) + ", " + std::to_string(s[1]) +
           "], expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    return st.at(name).to_matrix();
  };
  auto read_vec = [&](const std::string& name) {
    const auto& s = shape_of(name);
    if (s.size() != 1 || s[0] != c.dim)
      fail("tensor " + name + " must have shape [" + std::to_string(c.dim) + "]");
    const std::vector<float> v = st.at(name).to_float_vector();
    return Eigen::VectorXf(Eigen::Map<const Eigen::VectorXf>(v.data(), c.dim));
  };
  const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size;
  w.tok_embeddings = read_mat("tok_embeddings.weight", V, D);
  w.norm = read_vec("norm.weight");
  if (!c.tied_classifier) w.output = read_mat("output.weight", V, D);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    auto& L = w.layers[static_cast<std::size_t>(l)];
    const std::string p = "layers." + std::to_string(l) + ".";
    L.attention_norm = read_vec(p + "attention_norm.weight");
    L.ffn_norm = read_vec(p + "ffn_norm.weight");
    L.wq = read_mat(p + "attention.wq.weight", D, D);
    L.wk = read_mat(p + "attention.wk.weight", KV, D);
    L.wv = read_mat(p + "attention.wv.weight", KV, D);
    L.wo = read_mat(p + "attention.wo.weight", D, D);
    L.w1 = read_mat(p + "feed_forward.w1.weight", H, D);
    L.w2 = read_mat(p + "feed_forward.w2.weight", D, H);
    L.w3 = read_mat(p + "feed_forward.w3.weight", H, D);
  }
  return w;
}

inline LlamaWeights load_llama_safetensors(const std::string& path, const LlamaConfigHints& hints) {
  return load_llama_safetensors(open_safetensors(path), hints);
}

}  // namespace lowbit::model
