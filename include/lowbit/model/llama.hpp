#pragma once
// LlamaModel: a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3; model/decoder_layer.hpp
// has the block's formula) evaluated over whole token sequences at once: every linear layer
// sees a [tokens, in] matrix, so a document costs a handful of matrix products per layer
// instead of one matrix-vector product per token.
//
//   x = embeddings[tokens]                   rows read from the source (memory map)
//   per layer l: x = DecoderLayer_l(x)
//   logits = classifier( rmsnorm(x) * norm )   classifier = embeddings (tied) or output/lm_head
//
// A classifier stored BF16/F16 that would run as plain fp32 runs as stored instead
// (Wide16Linear: widened in registers, never copied to fp32).
//
// The model is built layer by layer from a ModelSource (model/source.hpp): each layer's fp32
// weights are read, handed to the LinearFactory, and dropped. A quantized model therefore
// holds only its packed linears, norms and biases; the embedding table stays in the source
// (a memory-mapped file). set_linear_layers() re-reads the source to rebuild the linears.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/model/decoder_layer.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/linear_layer.hpp"
#include "lowbit/model/llama_config.hpp"
#include "lowbit/model/source.hpp"

namespace lowbit::model {

// How LlamaModel builds its classifier.
struct LlamaBuildOptions {
  // An fp32 classifier that the source holds as F32 in memory (ModelSource::
  // classifier_in_place: a memory-mapped checkpoint) runs in place, without an fp32 copy,
  // and the factory is not asked for it. For factories that keep the classifier fp32 anyway
  // (a lowbit checkpoint's plain layers run as stored).
  bool classifier_in_place = false;
};

// LlamaModel (the alias below) is a class template only so that the forward pass and the
// layer building are compiled where a model is built or run ("Compile time" in
// docs/design.md). Deferred is never named.
template <class Deferred>
class BasicLlamaModel {
  using Layer = BasicDecoderLayer<Deferred>;

 public:
  // The fp32 model of a source: its classifier runs in place where the source holds it in
  // memory (F32 uncopied, BF16/F16 as stored), never through an fp32 copy of the table.
  explicit BasicLlamaModel(std::shared_ptr<const ModelSource> source)
      : BasicLlamaModel(std::move(source), fp32_linear_factory(), in_place_classifier()) {}
  BasicLlamaModel(std::shared_ptr<const ModelSource> source, const LinearFactory& factory,
             const LlamaBuildOptions& options = {})
      : src_(std::move(source)) {
    if (!src_) lowbit::detail::fail("LlamaModel: no model source");
    src_->config().validate(src_->path());
    norm_ = src_->final_norm();
    detail::check_array(src_->path(), TensorNames::final_norm(naming()), 1, norm_.size(), 1, config().dim, norm_.data());
    build_linear_layers(factory, options.classifier_in_place);
  }
  // A model over weights in memory (validated).
  explicit BasicLlamaModel(LlamaWeights weights, const LinearFactory& factory = fp32_linear_factory())
      : BasicLlamaModel(model_source_from_weights(std::move(weights), "LlamaModel"), factory) {}

  static LlamaBuildOptions in_place_classifier() {
    LlamaBuildOptions o;
    o.classifier_in_place = true;
    return o;
  }
  // Rebuilds every decoder layer and the classifier through `factory`, reading one layer of
  // fp32 weights from the source at a time. A model loaded from a lowbit checkpoint has no
  // fp32 weights to rebuild from (and quantizing twice compounds the error): refused.
  void set_linear_layers(const LinearFactory& factory) {
    if (src_->has_stored_quantized_layers())
      lowbit::detail::fail(src_->path() + ": this model's linear layers were loaded already quantized; they cannot be rebuilt");
    build_linear_layers(factory);
  }

 private:
  // classifier_in_place: LlamaBuildOptions (set_linear_layers asks the factory for every layer).
  void build_linear_layers(const LinearFactory& factory, bool classifier_in_place = false) {
    std::vector<Layer> built;
    built.reserve(static_cast<std::size_t>(config().n_layers));
    for (int l = 0; l < config().n_layers; ++l) built.push_back(Layer::build(*src_, l, factory));
    std::unique_ptr<LinearLayer> c;
    // A classifier stored BF16/F16 runs as stored wherever it would otherwise run as a plain
    // fp32 copy of itself (the same products, half the bytes read per token, no copy).
    const Wide16View w16 = src_->classifier_16bit_in_place();
    const auto as_stored = [&] { return std::make_unique<Wide16Linear>(src_, w16); };  // src_ keeps it alive
    if (classifier_in_place) {
      if (const float* w = src_->classifier_in_place())
        c = std::make_unique<Fp32Linear>(src_, w, config().vocab_size, config().dim);  // src_ keeps w alive
      else if (w16.data != nullptr)
        c = as_stored();
    }
    if (!c) {
      c = factory(src_->classifier_name(), src_->classifier());
      if (w16.data != nullptr && dynamic_cast<const Fp32Linear*>(c.get()) != nullptr) c = as_stored();
    }
    if (!c || c->in_features() != config().dim || c->out_features() != config().vocab_size)
      lowbit::detail::fail("LlamaModel: the linear factory returned no layer or a wrong shape for " +
                           src_->classifier_name());
    layers_ = std::move(built);
    classifier_ = std::move(c);
  }

 public:
  const LlamaConfig& config() const { return src_->config(); }
  weight_naming naming() const { return src_->naming(); }
  const ModelSource& source() const { return *src_; }
  std::shared_ptr<const ModelSource> shared_source() const { return src_; }
  const Layer& layer(int l) const { return layers_.at(static_cast<std::size_t>(l)); }
  Layer& layer(int l) { return layers_.at(static_cast<std::size_t>(l)); }
  const LinearLayer& linear(int l, linear_slot s) const { return layer(l).linear(s); }
  const LinearLayer& classifier() const { return *classifier_; }
  const Eigen::VectorXf& final_norm() const { return norm_; }
  std::string linear_name(int l, linear_slot s) const { return src_->linear_name(l, s); }
  std::string classifier_name() const { return src_->classifier_name(); }

  // All linear layers with their names, blocks first, classifier last.
  std::vector<std::pair<std::string, const LinearLayer*>> linear_layers() const {
    std::vector<std::pair<std::string, const LinearLayer*>> out;
    for (const Layer& L : layers_)
      for (int s = 0; s < kLinearSlots; ++s)
        out.emplace_back(L.name(static_cast<linear_slot>(s)), &L.linear(static_cast<linear_slot>(s)));
    out.emplace_back(classifier_name(), classifier_.get());
    return out;
  }

  // Runs tokens[0..n) at positions cache.length .. cache.length+n-1 (appending their keys
  // and values to `cache`) and writes logits [n, vocab]. A fresh cache gives the causal
  // forward of a sequence from position 0; one token at a time gives incremental decoding.
  // last_only: logits of the last token only ([1, vocab]), as generation needs after a prompt.
  void forward(const int* tokens, int n, KvCache& cache, RowMatrixXf& logits, ForwardWorkspace& ws,
               LinearInputObserver* observer = nullptr, bool last_only = false) const {
    hidden_states(tokens, n, cache, ws, observer);
    const int rows = last_only ? 1 : n;
    detail::rmsnorm(ws.x.bottomRows(rows), norm_, config().norm_eps, ws.xn);
    if (observer) observer->observe(classifier_name(), ws.xn);
    logits.resize(rows, config().vocab_size);
    classifier_->forward(ws.xn, logits);
  }

  // Convenience: causal forward of a whole sequence from position 0.
  RowMatrixXf forward(const std::vector<int>& tokens, LinearInputObserver* observer = nullptr) const {
    KvCache cache(config());
    ForwardWorkspace ws;
    RowMatrixXf logits;
    forward(tokens.data(), static_cast<int>(tokens.size()), cache, logits, ws, observer);
    return logits;
  }

  // The last decoder layer's output for tokens[0..n) (before the final norm) in ws.x.
  void hidden_states(const int* tokens, int n, KvCache& cache, ForwardWorkspace& ws,
                     LinearInputObserver* observer = nullptr) const {
    const LlamaConfig& c = config();
    const int p0 = cache.length;
    if (n <= 0) lowbit::detail::fail("LlamaModel::forward: empty token sequence");
    if (p0 + n > c.max_seq_len)
      lowbit::detail::fail("LlamaModel::forward: positions " + std::to_string(p0) + ".." + std::to_string(p0 + n - 1) +
                           " exceed max_seq_len " + std::to_string(c.max_seq_len));
    for (int t = 0; t < n; ++t)
      if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
        lowbit::detail::fail("LlamaModel::forward: token id " + std::to_string(tokens[t]) + " at position " +
                             std::to_string(p0 + t) + " is outside the vocabulary [0, " +
                             std::to_string(c.vocab_size) + ")");
    if (!cache.fits(c))
      lowbit::detail::fail("LlamaModel::forward: the KV cache was made for another model");
    src_->embed(tokens, n, ws.x);
    rope_table(c, p0, n, ws.rope_cos, ws.rope_sin);
    for (int l = 0; l < c.n_layers; ++l)
      layers_[static_cast<std::size_t>(l)].forward(ws.x, p0, cache, ws, observer);
    cache.length = p0 + n;
  }

 private:
  std::shared_ptr<const ModelSource> src_;
  Eigen::VectorXf norm_;
  std::vector<Layer> layers_;
  std::unique_ptr<LinearLayer> classifier_;
};

using LlamaModel = BasicLlamaModel<void>;

}  // namespace lowbit::model
