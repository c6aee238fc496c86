#pragma once
// A Llama-family model in safetensors (one file, or shards listed by
// model.safetensors.index.json) as a memory-mapped ModelSource. F32, F16 and BF16 tensors are
// converted to fp32 one tensor at a time when asked for; their mapped pages are handed back
// to the kernel afterwards (SafetensorsModel::release), so reading a large model layer by
// layer keeps resident memory near one layer.
//
// Two namings (model/weights.hpp has the table):
//  - Hugging Face (model.embed_tokens.weight ...): the config comes from config.json
//    (model/hf_config.hpp); RoPE rotates half-split pairs.
//  - Meta (tok_embeddings.weight ...): shapes come from the tensors, the rest from hints
//    (a config.json beside the file: model/config_hints.hpp); RoPE on interleaved pairs.
// At open, every tensor the config implies is checked for presence, shape and dtype (a
// header-only check); values are checked for NaN/Inf when converted.
//
// A lowbit checkpoint (what `lowbit quantize` writes) is read through the same class: its
// quantized linear layers ("external" here, with the [out, in] shape their metadata records)
// have no fp32 weight tensor, so layer(l) leaves those matrices (and biases, which are part of
// the stored layer) empty and classifier() is empty for a stored classifier;
// model/quantized_model.hpp builds those layers from the checkpoint instead.
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/sharded.hpp"
#include "lowbit/model/config_hints.hpp"
#include "lowbit/model/source.hpp"

namespace lowbit::model {

template <class Deferred>  // see "Compile time" in docs/design.md; SafetensorsSource below
class BasicSafetensorsSource final : public ModelSource {
 public:
  // Hugging Face naming with its config.json already parsed.
  using external_map = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;

  BasicSafetensorsSource(SafetensorsModel st, const LlamaConfig& config, const std::string& architecture,
                         const std::string& path, const std::string& tokenizer_path, external_map external = {})
      : st_(std::move(st)), external_(std::move(external)) {
    config_ = config;
    naming_ = weight_naming::hf;
    path_ = path;
    architecture_ = architecture;
    tokenizer_path_ = tokenizer_path;
    check_tensors();
  }
  // Meta naming: the config from the tensor shapes and `hints`.
  BasicSafetensorsSource(SafetensorsModel st, const LlamaConfigHints& hints, const std::string& path, external_map external = {})
      : st_(std::move(st)), external_(std::move(external)) {
    naming_ = weight_naming::meta;
    path_ = path;
    architecture_ = "Meta-Llama safetensors";
    config_ = meta_config(hints);
    check_tensors();
  }

  LlamaLayerWeights layer(int l) const override {
    if (l < 0 || l >= config_.n_layers) lowbit::detail::fail(path_ + ": no layer " + std::to_string(l));
    LlamaLayerWeights w;
    w.attention_norm = vec(TensorNames::attention_norm(l, naming_));
    w.ffn_norm = vec(TensorNames::ffn_norm(l, naming_));
    for (int i = 0; i < kLinearSlots; ++i) {
      const auto s = static_cast<linear_slot>(i);
      const std::string base = linear_name(l, s);
      if (external_.count(base)) continue;  // a stored quantized layer
      w.matrix(s) = mat(base + ".weight");
      if (detail::slot_has_bias(config_, s)) w.bias(s) = vec(base + ".bias");
    }
    if (config_.qk_norm) {
      w.q_norm = vec(TensorNames::q_norm(l));
      w.k_norm = vec(TensorNames::k_norm(l));
    }
    validate_layer(config_, w, l, naming_, path_, !external_.empty());
    return w;
  }
  void embed(const int* tokens, int n, RowMatrixXf& out) const override {
    const TensorView& t = st_.at(TensorNames::embeddings(naming_));
    const std::size_t esz = dtype_size(t.dtype), D = static_cast<std::size_t>(config_.dim);
    out.resize(n, config_.dim);
    for (int r = 0; r < n; ++r) {
      float* row = out.row(r).data();
      if (!dtype_to_float(t.dtype, t.data + static_cast<std::size_t>(tokens[r]) * D * esz, row, D))
        lowbit::detail::fail(path_ + ": tensor " + t.name + " has a dtype that does not convert");
      for (std::size_t i = 0; i < D; ++i)
        if (!std::isfinite(row[i]))
          lowbit::detail::fail(path_ + ": tensor " + t.name + " has a non-finite value at row " +
                               std::to_string(tokens[r]) + ", column " + std::to_string(i));
    }
  }
  RowMatrixXf embeddings() const override { return mat(TensorNames::embeddings(naming_)); }
  Eigen::VectorXf final_norm() const override { return vec(TensorNames::final_norm(naming_)); }
  RowMatrixXf classifier() const override {
    if (!config_.tied_classifier && external_.count(classifier_name())) return RowMatrixXf();
    return mat(config_.tied_classifier ? TensorNames::embeddings(naming_) : TensorNames::classifier(naming_));
  }
  const float* classifier_in_place() const override {
    if (!config_.tied_classifier && external_.count(classifier_name())) return nullptr;
    const std::string name = config_.tied_classifier ? TensorNames::embeddings(naming_) : TensorNames::classifier(naming_);
    const TensorView& t = st_.at(name);
    const float* w = t.f32_data();
    if (w != nullptr) detail::check_array(path_, name, t.shape[0], t.shape[1], config_.vocab_size, config_.dim, w);
    return w;
  }
  Wide16View classifier_16bit_in_place() const override {
    if (!config_.tied_classifier && external_.count(classifier_name())) return {};
    const std::string name = config_.tied_classifier ? TensorNames::embeddings(naming_) : TensorNames::classifier(naming_);
    const TensorView& t = st_.at(name);
    if (t.dtype != tensor_dtype::bf16 && t.dtype != tensor_dtype::f16) return {};
    // Safetensors data offsets need not be even: an odd one is read through a copy instead.
    if (reinterpret_cast<std::uintptr_t>(t.data) % alignof(std::uint16_t) != 0) return {};
    if (t.rank() != 2 || t.shape[0] != config_.vocab_size || t.shape[1] != config_.dim)
      lowbit::detail::fail(path_ + ": tensor " + name + " is not [" + std::to_string(config_.vocab_size) + ", " +
                           std::to_string(config_.dim) + "]");
    Wide16View v;
    v.data = reinterpret_cast<const std::uint16_t*>(t.data);
    v.rows = config_.vocab_size;
    v.cols = config_.dim;
    v.type = t.dtype == tensor_dtype::bf16 ? wide16_type::bf16 : wide16_type::f16;
    std::int64_t bad = 0;
    if (!wide16_all_finite(v, &bad))
      lowbit::detail::fail(path_ + ": tensor " + name + " has a non-finite value at row " + std::to_string(bad / v.cols) +
                           ", column " + std::to_string(bad % v.cols));
    return v;
  }
  const SafetensorsModel& tensors() const { return st_; }
  // The linear layers stored quantized (a lowbit checkpoint), by base name; empty otherwise.
  const external_map& external_linears() const { return external_; }
  bool has_stored_quantized_layers() const override { return !external_.empty(); }

 private:
  // The [rows, cols] (cols 0: a vector) every tensor of the config must have.
  std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> expected() const {
    const LlamaConfig& c = config_;
    std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> e;
    e.push_back({TensorNames::embeddings(naming_), {c.vocab_size, c.dim}});
    e.push_back({TensorNames::final_norm(naming_), {c.dim, 0}});
    if (!c.tied_classifier && !external_.count(classifier_name()))
      e.push_back({TensorNames::classifier(naming_), {c.vocab_size, c.dim}});
    for (int l = 0; l < c.n_layers; ++l) {
      e.push_back({TensorNames::attention_norm(l, naming_), {c.dim, 0}});
      e.push_back({TensorNames::ffn_norm(l, naming_), {c.dim, 0}});
      for (int i = 0; i < kLinearSlots; ++i) {
        const auto s = static_cast<linear_slot>(i);
        if (external_.count(linear_name(l, s))) continue;
        e.push_back({linear_name(l, s) + ".weight", linear_shape(c, s)});
        if (detail::slot_has_bias(c, s)) e.push_back({linear_name(l, s) + ".bias", {linear_shape(c, s).first, 0}});
      }
      if (c.qk_norm) {
        e.push_back({TensorNames::q_norm(l), {c.head_dim(), 0}});
        e.push_back({TensorNames::k_norm(l), {c.head_dim(), 0}});
      }
    }
    return e;
  }

  std::string config_note() const {
    const LlamaConfig& c = config_;
    return " (config: hidden_size " + std::to_string(c.dim) + ", intermediate_size " + std::to_string(c.hidden_dim) +
           ", num_attention_heads " + std::to_string(c.n_heads) + ", num_key_value_heads " +
           std::to_string(c.n_kv_heads) + ", head_dim " + std::to_string(c.head_dim()) + ", vocab_size " +
           std::to_string(c.vocab_size) + ")";
  }

  // Header-only checks: every expected tensor present with its shape and a float dtype; no
  // bias the config does not expect; no layer beyond num_hidden_layers.
  void check_tensors() const {
    // Stored quantized layers: their recorded shapes, and nothing that is not a layer of this model.
    for (const auto& [base, shape] : external_) {
      std::pair<std::int64_t, std::int64_t> want{-1, -1};
      if (base == classifier_name() && !config_.tied_classifier) want = {config_.vocab_size, config_.dim};
      for (int l = 0; l < config_.n_layers && want.first < 0; ++l)
        for (int i = 0; i < kLinearSlots; ++i)
          if (base == linear_name(l, static_cast<linear_slot>(i))) want = linear_shape(config_, static_cast<linear_slot>(i));
      if (want.first < 0)
        lowbit::detail::fail(path_ + ": quantized layer " + base + " is not a linear layer of this model" + config_note());
      if (shape != want)
        lowbit::detail::fail(path_ + ": quantized layer " + base + " has shape [" + std::to_string(shape.first) + ", " +
                             std::to_string(shape.second) + "], the config needs [" + std::to_string(want.first) +
                             ", " + std::to_string(want.second) + "]" + config_note());
    }
    for (const auto& [name, shape] : expected()) {
      const TensorView* t = st_.find(name);
      if (t == nullptr) lowbit::detail::fail(path_ + ": missing tensor " + name + config_note());
      const bool is_vec = shape.second == 0;
      const bool ok = is_vec ? (t->rank() == 1 && t->shape[0] == shape.first)
                             : (t->rank() == 2 && t->shape[0] == shape.first && t->shape[1] == shape.second);
      if (!ok) {
        std::string got = "[";
        for (std::size_t i = 0; i < t->shape.size(); ++i) got += (i ? ", " : "") + std::to_string(t->shape[i]);
        got += "]";
        const std::string want = is_vec ? "[" + std::to_string(shape.first) + "]"
                                        : "[" + std::to_string(shape.first) + ", " + std::to_string(shape.second) + "]";
        lowbit::detail::fail(path_ + ": tensor " + name + " has shape " + got + ", expected " + want + config_note());
      }
      if (t->dtype != tensor_dtype::f32 && t->dtype != tensor_dtype::f16 && t->dtype != tensor_dtype::bf16)
        lowbit::detail::fail(path_ + ": tensor " + name + " has dtype " + std::string(dtype_name(t->dtype)) +
                             "; model weights must be F32, F16 or BF16");
    }
    const std::string layer_prefix = naming_ == weight_naming::hf ? "model.layers." : "layers.";
    for (const TensorView* t : st_.tensors()) {
      const std::string& n = t->name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0 && st_.find(n) != nullptr &&
          !external_.count(n.substr(0, n.size() - 5))) {
        bool wanted = false;
        for (int l = 0; l < config_.n_layers && !wanted; ++l)
          for (int i = 0; i < kLinearSlots && !wanted; ++i)
            wanted = detail::slot_has_bias(config_, static_cast<linear_slot>(i)) &&
                     n == linear_name(l, static_cast<linear_slot>(i)) + ".bias";
        if (!wanted)
          lowbit::detail::fail(path_ + ": tensor " + n + " is a bias the config does not have (attention_bias / mlp_bias)");
      }
      if (n.compare(0, layer_prefix.size(), layer_prefix) == 0) {
        const int l = std::atoi(n.c_str() + layer_prefix.size());
        if (l >= config_.n_layers)
          lowbit::detail::fail(path_ + ": tensor " + n + " belongs to layer " + std::to_string(l) +
                               " but num_hidden_layers is " + std::to_string(config_.n_layers));
      }
    }
  }

  LlamaConfig meta_config(const LlamaConfigHints& hints) const {
    auto fail = [&](const std::string& what) { lowbit::detail::fail(path_ + ": " + what); };
    auto dim2 = [&](const std::string& name) -> std::vector<std::int64_t> {
      const std::string base = name.size() > 7 ? name.substr(0, name.size() - 7) : name;  // without ".weight"
      if (const auto it = external_.find(base); it != external_.end()) return {it->second.first, it->second.second};
      const TensorView* t = st_.find(name);
      if (t == nullptr)
        fail("missing tensor " + name + " (expected Meta-Llama names such as tok_embeddings.weight, " +
             "layers.0.attention.wq.weight)");
      if (t->rank() != 2)
        fail("tensor " + name + " must be 2-D, it has " + std::to_string(t->rank()) + " dimensions");
      return t->shape;
    };
    auto as_int = [&](std::int64_t v, const std::string& what) {
      if (v <= 0 || v > (1 << 24)) fail(what + " " + std::to_string(v) + " out of range");
      return static_cast<int>(v);
    };
    LlamaConfig c;
    c.rope = rope_style::interleaved;
    const auto emb = dim2("tok_embeddings.weight");
    c.vocab_size = as_int(emb[0], "vocab_size");
    c.dim = as_int(emb[1], "dim");
    while (st_.find("layers." + std::to_string(c.n_layers) + ".attention.wq.weight") != nullptr ||
           external_.count("layers." + std::to_string(c.n_layers) + ".attention.wq"))
      ++c.n_layers;
    if (c.n_layers == 0) fail("no layers.0.attention.wq.weight: not a Meta-Llama checkpoint");
    c.hidden_dim = as_int(dim2("layers.0.feed_forward.w1.weight")[0], "hidden_dim");
    const int kv_dim = as_int(dim2("layers.0.attention.wk.weight")[0], "kv_dim");
    c.tied_classifier = st_.find("output.weight") == nullptr && !external_.count("output");
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
    // A config.json beside the file must agree with what the tensors say.
    const auto agree = [&](const std::optional<int>& hint, int value, const char* what) {
      if (hint && *hint != value)
        fail(std::string("config.json says ") + what + " " + std::to_string(*hint) + " but the tensors give " +
             std::to_string(value));
    };
    agree(hints.dim, c.dim, "dim");
    agree(hints.hidden_dim, c.hidden_dim, "hidden_dim");
    agree(hints.n_layers, c.n_layers, "n_layers");
    agree(hints.vocab_size, c.vocab_size, "vocab_size");
    if (hints.tied_classifier && *hints.tied_classifier != c.tied_classifier)
      fail(std::string("config.json says tie_word_embeddings ") + (*hints.tied_classifier ? "true" : "false") +
           " but the file " + (c.tied_classifier ? "has no" : "has an") + " output layer");
    c.max_seq_len = hints.max_seq_len.value_or(2048);
    if (hints.norm_eps) c.norm_eps = *hints.norm_eps;
    if (hints.rope_theta) c.rope_theta = *hints.rope_theta;
    c.validate(path_);
    return c;
  }

  // The named tensor converted to fp32 (shape checked at open), finite values checked.
  RowMatrixXf mat(const std::string& name) const {
    const TensorView& t = st_.at(name);
    RowMatrixXf m = t.to_matrix();
    st_.release(t);
    detail::check_array(path_, name, m.rows(), m.cols(), m.rows(), m.cols(), m.data());
    return m;
  }
  Eigen::VectorXf vec(const std::string& name) const {
    const TensorView& t = st_.at(name);
    Eigen::VectorXf v(t.numel());
    t.to_float(v.data());
    st_.release(t);
    detail::check_array(path_, name, 1, v.size(), 1, v.size(), v.data());
    return v;
  }

  SafetensorsModel st_;
  external_map external_;
};
using SafetensorsSource = BasicSafetensorsSource<void>;

}  // namespace lowbit::model
