#pragma once
// ModelSource: a model's weights as a checkpoint holds them, read lazily.
//
// open_model(path) (model/load.hpp) returns one for a Hugging Face model directory, a
// Meta-name .safetensors file or a llama2.c .bin. It knows the LlamaConfig and the naming,
// and hands out fp32 copies one piece at a time: layer(l) converts one decoder layer (from
// F32, F16 or BF16, through the memory map) and validates it; nothing is kept. Building a
// quantized LlamaModel therefore holds one layer in fp32 at a time, plus what the model keeps.
//
// Sources are immutable after construction and safe to read from several threads.
#include <memory>
#include <string>
#include <utility>

#include "lowbit/kernels/wide16.hpp"
#include "lowbit/model/weights.hpp"

namespace lowbit::model {

class ModelSource {
 public:
  virtual ~ModelSource() = default;

  const LlamaConfig& config() const { return config_; }
  weight_naming naming() const { return naming_; }
  // The path the model was opened from (error messages, reports).
  const std::string& path() const { return path_; }
  // tokenizer.json of a Hugging Face directory; empty when there is none.
  const std::string& tokenizer_path() const { return tokenizer_path_; }
  // config.json's "architectures"[0] for Hugging Face directories, else a description.
  const std::string& architecture() const { return architecture_; }

  std::string linear_name(int layer, linear_slot s) const { return model::linear_name(layer, s, naming_); }
  std::string classifier_name() const { return model::classifier_name(naming_); }

  // Whether some linear layers are stored quantized (a lowbit checkpoint): layer() and
  // classifier() leave those matrices empty (model/quantized_model.hpp builds them).
  virtual bool has_stored_quantized_layers() const { return false; }
  // Decoder layer l in fp32, validated against the config (shapes, finite values).
  virtual LlamaLayerWeights layer(int l) const = 0;
  // Rows `tokens[0..n)` of the embedding table into out [n, dim] (ids already range-checked).
  virtual void embed(const int* tokens, int n, RowMatrixXf& out) const = 0;
  // The whole embedding table [vocab, dim] in fp32.
  virtual RowMatrixXf embeddings() const = 0;
  virtual Eigen::VectorXf final_norm() const = 0;
  // The classifier matrix [vocab, dim]: the embedding table when tied.
  virtual RowMatrixXf classifier() const = 0;
  // The classifier's fp32 values in place, valid as long as this source: a stored F32 tensor
  // in memory (a memory map), checked finite; nullptr where the source would have to convert
  // or copy it (other dtypes, unaligned data, a quantized classifier), so classifier() it is.
  virtual const float* classifier_in_place() const { return nullptr; }
  // The classifier as stored, when that is a BF16 or F16 tensor in memory (a memory map),
  // valid as long as this source and checked finite: the model multiplies it as it is
  // (kernels/wide16.hpp) instead of an fp32 copy twice its size. data == nullptr otherwise.
  virtual Wide16View classifier_16bit_in_place() const { return {}; }

 protected:
  LlamaConfig config_;
  weight_naming naming_ = weight_naming::meta;
  std::string path_, tokenizer_path_, architecture_;
};

// A source over weights already in memory (tests, generated models). Validates them.
// A class template only so that its members compile where they are used ("Compile time" in
// docs/design.md); WeightsSource below is its one instantiation.
template <class Deferred = void>
class BasicWeightsSource final : public ModelSource {
 public:
  explicit BasicWeightsSource(LlamaWeights w, std::string name = "<memory>") : w_(std::move(w)) {
    w_.validate(name);
    config_ = w_.config;
    naming_ = w_.naming;
    path_ = std::move(name);
    architecture_ = "in-memory weights";
  }
  LlamaLayerWeights layer(int l) const override {
    if (l < 0 || l >= config_.n_layers) lowbit::detail::fail(path_ + ": no layer " + std::to_string(l));
    return w_.layers[static_cast<std::size_t>(l)];
  }
  void embed(const int* tokens, int n, RowMatrixXf& out) const override {
    out.resize(n, config_.dim);
    for (int t = 0; t < n; ++t) out.row(t) = w_.tok_embeddings.row(tokens[t]);
  }
  RowMatrixXf embeddings() const override { return w_.tok_embeddings; }
  Eigen::VectorXf final_norm() const override { return w_.norm; }
  RowMatrixXf classifier() const override { return w_.classifier(); }
  const LlamaWeights& weights() const { return w_; }

 private:
  LlamaWeights w_;
};
using WeightsSource = BasicWeightsSource<void>;

template <class Deferred = void>  // see "Compile time" in docs/design.md
std::shared_ptr<const ModelSource> model_source_from_weights(LlamaWeights w, std::string name = "<memory>") {
  return std::make_shared<WeightsSource>(std::move(w), std::move(name));
}

// Reads a whole model into memory (every layer in fp32): for small models and tests.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LlamaWeights read_all_weights(const ModelSource& s) {
  LlamaWeights w;
  w.config = s.config();
  w.naming = s.naming();
  w.tok_embeddings = s.embeddings();
  w.norm = s.final_norm();
  if (!w.config.tied_classifier) w.output = s.classifier();
  for (int l = 0; l < w.config.n_layers; ++l) w.layers.push_back(s.layer(l));
  return w;
}

}  // namespace lowbit::model
