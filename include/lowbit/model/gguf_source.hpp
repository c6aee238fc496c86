#pragma once
// A llama.cpp GGUF file (architectures `llama` and `qwen2`) as a ModelSource, read in place
// from the memory map (io/gguf.hpp).
//
// Config from the metadata (`<arch>.embedding_length`, `.block_count`, `.feed_forward_length`,
// `.attention.head_count[_kv]`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`,
// `.rope.dimension_count`, `.context_length`, `.rope.scaling.*`, `tokenizer.ggml.bos/eos`),
// checked against the tensor shapes; a `rope_freqs` tensor (llama.cpp's form of llama3 rope
// scaling) becomes the config's rope frequency divisors. Any integer type is accepted for
// the counts (gguf-py writes UINT32, other writers INT32 or UINT64). The tokenizer in the
// metadata is read by model/gguf_tokenizer.hpp (TextTokenizer takes it for a .gguf model).
//
// Tensors (docs/interop.md has the table): token_embd, output_norm, output (absent: tied),
// blk.N.attn_norm / attn_q / attn_k / attn_v / attn_output / ffn_norm / ffn_gate / ffn_up /
// ffn_down, and q/k/v biases (qwen2; optional in llama). The source uses Meta names for the
// layers it hands out (layers.N.attention.wq ...), whatever the file calls them.
//
// q/k row order: llama.cpp's `llama` rope type (NORM) rotates interleaved pairs (2i, 2i+1),
// which is lowbit's Meta order; `qwen2` (NEOX) rotates halves (i, i + d/2), lowbit's Hugging
// Face order. So the rows are taken as stored and the config's rope style follows the
// architecture: no permutation on import.
//
// Weight types:
//   Q8_0, Q4_0, MXFP4, Q6_K, Q4_K (and Q4_1 where every block's min is -z * d) -> stored
//       quantized: gguf_linear_factory() builds a RecipeLinear over gguf_to_quantized(), which
//       runs on lowbit's kernels (Q8_0 and Q6_K, int8 groups of 32 / 16, on the weight-only
//       int8 kernel w8a16_int8; the 4-bit ones on W4A16, Q4_K with float offsets per group);
//       layer() leaves those matrices empty.
//   F32, F16, BF16 (and Q4_1 otherwise)                                   -> decoded to fp32.
// The embedding table may be of any decodable type: embed() decodes the rows it is asked for.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/model/source.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

namespace detail {

// The GGUF tensor base name (without ".weight"/".bias") of a slot of block l.
inline std::string gguf_linear_name(int l, linear_slot s) {
  static const char* const names[kLinearSlots] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                  "ffn_gate", "ffn_down", "ffn_up"};
  return "blk." + std::to_string(l) + "." + names[static_cast<int>(s)];
}

// Whether gguf_to_quantized() may take a tensor of this type.
inline bool gguf_is_quantized_form(gguf_type t) {
  return t == gguf_type::q8_0 || t == gguf_type::q4_0 || t == gguf_type::q4_1 || t == gguf_type::mxfp4 ||
         t == gguf_type::q6_k || t == gguf_type::q4_k;
}

// gguf_meta_int / gguf_meta_float live in io/gguf.hpp (the tokenizer reads them too).
using lowbit::detail::gguf_meta_float;
using lowbit::detail::gguf_meta_int;

}  // namespace detail

template <class Deferred>  // see "Compile time" in docs/design.md; GgufSource below
class BasicGgufSource final : public ModelSource {
 public:
  explicit BasicGgufSource(const std::string& path) : f_(open_gguf(path)) {
    path_ = path;
    naming_ = weight_naming::meta;
    read_config();
    check_tensors();
  }

  const GgufFile& file() const { return f_; }
  // "llama" or "qwen2".
  const std::string& gguf_architecture() const { return arch_; }
  // The GGUF tensor of a Meta-named tensor ("layers.0.attention.wq.weight" -> blk.0.attn_q.weight).
  const GgufTensor* gguf_tensor(const std::string& meta_name) const {
    const auto it = names_.find(meta_name);
    return it == names_.end() ? nullptr : f_.find(it->second);
  }
  // Linear layers (Meta base names) stored in a form lowbit runs quantized.
  const std::set<std::string>& quantized_linears() const { return quantized_; }
  bool has_stored_quantized_layers() const override { return !quantized_.empty(); }

  LlamaLayerWeights layer(int l) const override {
    if (l < 0 || l >= config_.n_layers) lowbit::detail::fail(path_ + ": no layer " + std::to_string(l));
    LlamaLayerWeights w;
    w.attention_norm = vec(TensorNames::attention_norm(l, naming_));
    w.ffn_norm = vec(TensorNames::ffn_norm(l, naming_));
    for (int i = 0; i < kLinearSlots; ++i) {
      const auto s = static_cast<linear_slot>(i);
      const std::string base = linear_name(l, s);
      if (quantized_.count(base)) continue;  // built by gguf_linear_factory()
      w.matrix(s) = mat(base + ".weight");
      if (lowbit::model::detail::slot_has_bias(config_, s)) w.bias(s) = vec(base + ".bias");
    }
    validate_layer(config_, w, l, naming_, path_, !quantized_.empty());
    return w;
  }
  void embed(const int* tokens, int n, RowMatrixXf& out) const override {
    const GgufTensor& t = *gguf_tensor(TensorNames::embeddings(naming_));
    const std::size_t row_bytes = t.nbytes / static_cast<std::size_t>(t.rows());
    out.resize(n, config_.dim);
    for (int r = 0; r < n; ++r) {
      float* row = out.row(r).data();
      gguf_decode(t.ggml_type(), t.data + static_cast<std::size_t>(tokens[r]) * row_bytes, config_.dim, row);
      for (int i = 0; i < config_.dim; ++i)
        if (!std::isfinite(row[i]))
          lowbit::detail::fail(path_ + ": tensor " + t.name + " has a non-finite value at row " +
                               std::to_string(tokens[r]) + ", column " + std::to_string(i));
    }
  }
  RowMatrixXf embeddings() const override { return mat(TensorNames::embeddings(naming_)); }
  Eigen::VectorXf final_norm() const override { return vec(TensorNames::final_norm(naming_)); }
  RowMatrixXf classifier() const override {
    if (!config_.tied_classifier && quantized_.count(classifier_name())) return RowMatrixXf();
    return mat(config_.tied_classifier ? TensorNames::embeddings(naming_) : TensorNames::classifier(naming_));
  }

  // The stored quantized layer `base` (a Meta base name in quantized_linears()) with its bias.
  QuantizedLinear quantized_linear(const std::string& base) const {
    const GgufTensor* t = gguf_tensor(base + ".weight");
    if (t == nullptr || !quantized_.count(base)) lowbit::detail::fail(path_ + ": " + base + " is not a quantized layer");
    QuantizedLinear q;
    try {
      q.weight = gguf_to_quantized(*t);
    } catch (const lowbit::error& e) {
      lowbit::detail::fail(path_ + ": " + e.what());
    }
    f_.release(*t);
    q.weight.name = base;
    q.recipe = "gguf " + gguf_type_name(t->type);
    if (names_.count(base + ".bias")) q.bias = vec(base + ".bias");
    return q;
  }

 private:
  void fail(const std::string& what) const { lowbit::detail::fail(path_ + ": " + what); }

  void read_config() {
    const GgufValue* a = f_.find_value("general.architecture");
    if (a == nullptr || a->is_array() || a->type != gguf_value_type::string)
      fail("key 'general.architecture' is missing or not a string");
    arch_ = a->strings[0];
    if (arch_ != "llama" && arch_ != "qwen2")
      fail("architecture '" + arch_ + "' is not supported (lowbit reads GGUF architectures llama and qwen2)");
    architecture_ = "GGUF " + arch_;
    const std::string p = arch_ + ".";
    auto need_int = [&](const std::string& key) -> int {
      const auto v = detail::gguf_meta_int(f_, p + key);
      if (!v) fail("missing key '" + p + key + "'");
      if (*v <= 0 || *v > (1 << 24)) fail("key '" + p + key + "' value " + std::to_string(*v) + " out of range");
      return static_cast<int>(*v);
    };
    LlamaConfig& c = config_;
    c.dim = need_int("embedding_length");
    c.hidden_dim = need_int("feed_forward_length");
    c.n_layers = need_int("block_count");
    c.n_heads = need_int("attention.head_count");
    c.n_kv_heads = detail::gguf_meta_int(f_, p + "attention.head_count_kv") ? need_int("attention.head_count_kv") : c.n_heads;
    c.max_seq_len = detail::gguf_meta_int(f_, p + "context_length") ? need_int("context_length") : 2048;
    c.max_position_embeddings = c.max_seq_len;
    if (const auto k = detail::gguf_meta_int(f_, p + "attention.key_length")) {
      if (*k != c.dim / std::max(c.n_heads, 1)) c.explicit_head_dim = need_int("attention.key_length");
      if (const auto vl = detail::gguf_meta_int(f_, p + "attention.value_length"); vl && *vl != *k)
        fail("attention.value_length " + std::to_string(*vl) + " differs from attention.key_length " + std::to_string(*k) +
             " (not supported)");
    }
    if (const auto e = detail::gguf_meta_float(f_, p + "attention.layer_norm_rms_epsilon")) c.norm_eps = static_cast<float>(*e);
    else fail("missing key '" + p + "attention.layer_norm_rms_epsilon'");
    if (const auto t = detail::gguf_meta_float(f_, p + "rope.freq_base")) c.rope_theta = static_cast<float>(*t);
    if (const auto rd = detail::gguf_meta_int(f_, p + "rope.dimension_count")) {
      const int hd = c.explicit_head_dim > 0 ? c.explicit_head_dim : c.dim / std::max(c.n_heads, 1);
      if (*rd != hd)
        fail("rope.dimension_count " + std::to_string(*rd) + " differs from the head size " + std::to_string(hd) +
             " (partial RoPE is not supported)");
    }
    read_rope_scaling();
    c.arch = arch_ == "qwen2" ? model_arch::qwen2 : model_arch::llama;
    c.rope = arch_ == "qwen2" ? rope_style::half : rope_style::interleaved;
    // qwen2 always has q/k/v biases; llama.cpp's llama graph takes them (and o / ffn ones) when present.
    c.qkv_bias = arch_ == "qwen2" || f_.find("blk.0.attn_q.bias") != nullptr;
    c.o_bias = f_.find("blk.0.attn_output.bias") != nullptr;
    c.mlp_bias = f_.find("blk.0.ffn_up.bias") != nullptr;
    c.tied_classifier = f_.find("output.weight") == nullptr;
    const GgufTensor* emb = f_.find("token_embd.weight");
    if (emb == nullptr) fail("missing tensor token_embd.weight");
    if (emb->ne.size() != 2) fail("tensor token_embd.weight must have 2 dimensions");
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 22)) fail("tensor token_embd.weight has an out-of-range vocabulary size");
    c.vocab_size = static_cast<int>(emb->ne[1]);
    if (const auto v = detail::gguf_meta_int(f_, p + "vocab_size"); v && *v != c.vocab_size)
      fail(p + "vocab_size " + std::to_string(*v) + " disagrees with token_embd.weight's " + std::to_string(c.vocab_size) +
           " rows");
    read_rope_freqs();
    for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
      if (const auto id = detail::gguf_meta_int(f_, k)) {
        if (*id < 0 || *id >= c.vocab_size) fail(std::string("key '") + k + "' " + std::to_string(*id) + " is outside the vocabulary");
        (k[15] == 'b' ? c.bos_ids : c.eos_ids).push_back(static_cast<int>(*id));
      }
    c.validate(path_);
  }

  void read_rope_scaling() {
    const std::string p = arch_ + ".rope.scaling.";
    const GgufValue* t = f_.find_value(p + "type");
    RopeScaling& r = config_.rope_scaling;
    if (t == nullptr) {
      // Older files: only a linear factor.
      if (const auto lin = detail::gguf_meta_float(f_, arch_ + ".rope.scale_linear"); lin && *lin != 1.0) {
        r.type = rope_scaling_type::linear;
        r.factor = *lin;
      }
      return;
    }
    if (t->is_array() || t->type != gguf_value_type::string) fail("key '" + p + "type' must be a string");
    const std::string& ty = t->strings[0];
    if (ty == "none") return;
    if (ty == "linear") r.type = rope_scaling_type::linear;
    else if (ty == "yarn") r.type = rope_scaling_type::yarn;
    else fail("rope scaling type '" + ty + "' is not supported (none, linear, yarn)");
    const auto factor = detail::gguf_meta_float(f_, p + "factor");
    if (!factor) fail("missing key '" + p + "factor'");
    r.factor = *factor;
    if (const auto o = detail::gguf_meta_float(f_, p + "original_context_length")) r.original_max_position_embeddings = *o;
  }

  // rope_freqs.weight: llama.cpp's per-pair frequency divisors (how its converter stores a
  // Llama 3.1 / 3.2 config's llama3 rope scaling); llama.cpp's llama graph divides each
  // pair's frequency by its factor, after linear scaling. Yarn with factors is refused
  // (llama.cpp would apply them inside yarn's ramp, which lowbit's yarn does not model).
  void read_rope_freqs() {
    const GgufTensor* t = f_.find("rope_freqs.weight");
    if (t == nullptr) return;
    LlamaConfig& c = config_;
    const std::uint64_t half = static_cast<std::uint64_t>(c.head_dim() / 2);
    if (t->ne.size() != 1 || t->ne[0] != half)
      fail("tensor rope_freqs.weight must have shape (ne) {" + std::to_string(half) + "} (head size / 2)" + config_note());
    if (t->ggml_type() != gguf_type::f32 && t->ggml_type() != gguf_type::f16 && t->ggml_type() != gguf_type::bf16)
      fail("tensor rope_freqs.weight has type " + gguf_type_name(t->type) + " (must be F32, F16 or BF16)");
    if (c.rope_scaling.type == rope_scaling_type::yarn)
      fail("tensor rope_freqs.weight together with yarn rope scaling is not supported");
    std::vector<float> ff(static_cast<std::size_t>(half));
    gguf_decode(t->ggml_type(), t->data, static_cast<std::int64_t>(half), ff.data());
    for (std::size_t i = 0; i < ff.size(); ++i)
      if (!(ff[i] > 0.0f) || !std::isfinite(ff[i]))
        fail("tensor rope_freqs.weight: factor " + std::to_string(i) + " is " + std::to_string(ff[i]) +
             " (must be finite and > 0)");
    c.rope_scaling.freq_factors = std::move(ff);
  }

  // Meta name -> GGUF name of every tensor the config implies, with its expected ne.
  void check_tensors() {
    const LlamaConfig& c = config_;
    struct want { std::string meta, gguf; std::vector<std::uint64_t> ne; bool linear; };
    std::vector<want> all;
    auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
    all.push_back({TensorNames::embeddings(naming_), "token_embd.weight", {u(c.dim), u(c.vocab_size)}, false});
    all.push_back({TensorNames::final_norm(naming_), "output_norm.weight", {u(c.dim)}, false});
    if (!c.tied_classifier) all.push_back({"output.weight", "output.weight", {u(c.dim), u(c.vocab_size)}, true});
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      all.push_back({TensorNames::attention_norm(l, naming_), b + "attn_norm.weight", {u(c.dim)}, false});
      all.push_back({TensorNames::ffn_norm(l, naming_), b + "ffn_norm.weight", {u(c.dim)}, false});
      for (int i = 0; i < kLinearSlots; ++i) {
        const auto s = static_cast<linear_slot>(i);
        const auto [rows, cols] = linear_shape(c, s);
        all.push_back({linear_name(l, s) + ".weight", detail::gguf_linear_name(l, s) + ".weight", {u(cols), u(rows)}, true});
        if (lowbit::model::detail::slot_has_bias(c, s))
          all.push_back({linear_name(l, s) + ".bias", detail::gguf_linear_name(l, s) + ".bias", {u(rows)}, false});
      }
    }
    std::set<std::string> known;
    if (!c.rope_scaling.freq_factors.empty()) known.insert("rope_freqs.weight");  // read_rope_freqs()
    for (const want& w : all) {
      const GgufTensor* t = f_.find(w.gguf);
      if (t == nullptr) fail("missing tensor " + w.gguf + config_note());
      if (t->ne != w.ne) {
        auto show = [](const std::vector<std::uint64_t>& ne) {
          std::string s = "{";
          for (std::size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
          return s + "}";
        };
        fail("tensor " + w.gguf + " has shape (ne) " + show(t->ne) + ", the metadata implies " + show(w.ne) + config_note());
      }
      const gguf_type ty = t->ggml_type();
      const bool is_float = ty == gguf_type::f32 || ty == gguf_type::f16 || ty == gguf_type::bf16;
      const bool vector = w.ne.size() == 1;
      if (vector ? !is_float : !gguf_decodes(ty))
        fail("tensor " + w.gguf + " has type " + gguf_type_name(t->type) + ", which lowbit does not read" +
             (vector ? " (norms and biases must be F32, F16 or BF16)" : ""));
      names_[w.meta] = w.gguf;
      known.insert(w.gguf);
      if (w.linear && detail::gguf_is_quantized_form(ty)) {
        const std::string base = w.meta.substr(0, w.meta.size() - 7);
        // Q4_1 maps onto lowbit's integer zero points only when every min is -z * d; other
        // Q4_1 tensors are decoded to float (mapping them onto the float-offset form is not done yet).
        bool ok = true;
        if (ty == gguf_type::q4_1) {
          try {
            (void)gguf_to_quantized(*t);
          } catch (const lowbit::error&) {
            ok = false;
          }
        }
        if (ok) quantized_.insert(base);
      }
    }
    for (const GgufTensor& t : f_.tensors())
      if (!known.count(t.name))
        fail("tensor " + t.name + " is not part of a " + arch_ + " model with this metadata" + config_note());
  }

  std::string config_note() const {
    const LlamaConfig& c = config_;
    return " (metadata: " + arch_ + ", embedding_length " + std::to_string(c.dim) + ", feed_forward_length " +
           std::to_string(c.hidden_dim) + ", block_count " + std::to_string(c.n_layers) + ", head_count " +
           std::to_string(c.n_heads) + ", head_count_kv " + std::to_string(c.n_kv_heads) + ", vocab " +
           std::to_string(c.vocab_size) + ")";
  }

  const GgufTensor& tensor(const std::string& meta_name) const {
    const GgufTensor* t = gguf_tensor(meta_name);
    if (t == nullptr) fail("no tensor for " + meta_name);
    return *t;
  }
  RowMatrixXf mat(const std::string& meta_name) const {
    const GgufTensor& t = tensor(meta_name);
    RowMatrixXf m = gguf_to_matrix(t);
    f_.release(t);
    lowbit::model::detail::check_array(path_, t.name, m.rows(), m.cols(), m.rows(), m.cols(), m.data());
    return m;
  }
  Eigen::VectorXf vec(const std::string& meta_name) const {
    const GgufTensor& t = tensor(meta_name);
    Eigen::VectorXf v(static_cast<Eigen::Index>(t.numel()));
    gguf_decode(t.ggml_type(), t.data, v.size(), v.data());
    lowbit::model::detail::check_array(path_, t.name, 1, v.size(), 1, v.size(), v.data());
    return v;
  }

  GgufFile f_;
  std::string arch_;
  std::map<std::string, std::string> names_;  // Meta name -> GGUF name
  std::set<std::string> quantized_;           // Meta base names of stored quantized linears
};
using GgufSource = BasicGgufSource<void>;

// The layers of a GGUF source: its quantized tensors as RecipeLinear (lowbit's kernels where
// one runs the scheme; require_kernels refuses the reference path), the rest in fp32.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LinearFactory gguf_linear_factory(const GgufSource& src, const QuantizedLoadOptions& opt = {}) {
  return [&src, opt](const std::string& name, const RowMatrixXf& weight) -> std::unique_ptr<LinearLayer> {
    if (!src.quantized_linears().count(name)) return std::make_unique<Fp32Linear>(weight);
    return stored_linear(src.quantized_linear(name), nullptr, opt, src.path(), name);
  };
}

}  // namespace lowbit::model
