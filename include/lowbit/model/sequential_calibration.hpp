#pragma once
// Sequential (layer-by-layer) calibration, as GPTQ and llm-compressor do it:
//
//   h = embed(samples)                                    one [len_i, dim] matrix per sample
//   for each decoder layer l:
//     1. read layer l's fp32 weights from the source (memory-mapped; nothing else is read)
//     2. run it on every sample, recording the inputs of its seven linears (statistics:
//        absmax, the GPTQ Hessian X^T X, kept rows; algo/calibration.hpp)
//     3. hand the weights and statistics to the caller, which smooths / quantizes /
//        compensates the linears (and usually writes them out) and returns the layers to run
//        in their place
//     4. quantized inputs (default): rerun layer l with those layers and feed its outputs to
//        layer l+1, so later layers are calibrated on what the quantized model computes;
//        fp32 inputs: feed the fp32 outputs of step 2 instead
//   then, optionally, the classifier's input (final norm of h).
//
// With fp32 inputs every linear sees exactly what the whole fp32 model's forward pass shows it
// (calibrate() in model/calibration.hpp): same inputs, added to the statistics in the same
// sample order, so the statistics, and the layers quantized from them, are bit-identical.
//
// Memory: one decoder layer in fp32 (its linears read the weights in place, no second copy),
// the hidden states of all samples (samples x len x dim floats), and one layer's statistics
// (a Hessian of in^2 floats per distinct linear input), which the caller may release as it
// quantizes, or hand to GPTQ as its working buffer (find_sole, quantize_linear_consuming).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/model/calibration.hpp"
#include "lowbit/model/decoder_layer.hpp"
#include "lowbit/model/rope.hpp"
#include "lowbit/model/source.hpp"

namespace lowbit::model {

struct SequentialCalibrationOptions {
  CalibrationOptions stats;       // what is recorded per linear (Hessian, kept rows)
  bool quantized_inputs = true;   // layer l+1 sees the quantized layer l's outputs (false: fp32)
  bool classifier_stats = false;  // also record the classifier's input
};

// The input statistics of one decoder layer's linears, by checkpoint name. Linears that read
// the same matrix (wq/wk/wv, and w1/w3) share one ActivationStats: recording it once saves
// two of every three Hessian products (in^2 * tokens flops each) and their memory. The first
// sample decides which names share; later samples must show the same pattern.
class LayerStats final : public LinearInputObserver {
 public:
  explicit LayerStats(CalibrationOptions options) : options_(options) {}

  void observe(const std::string& name, ConstRowMatrixRef input) override {
    const bool same_input = input.data() == last_data_ && input.rows() == last_rows_ && input.cols() == last_cols_;
    auto alias = alias_of_.find(name);
    if (alias == alias_of_.end()) {  // first sight of this name
      const std::string canonical = same_input && !last_name_.empty() ? alias_of_.at(last_name_) : name;
      alias = alias_of_.emplace(name, canonical).first;
      if (canonical == name) stats_.emplace(name, ActivationStats(input.cols(), options_, name));
    }
    if (alias->second == name) {
      stats_.at(name).add(input);
    } else if (!same_input || alias_of_.at(last_name_) != alias->second) {
      lowbit::detail::fail("sequential calibration: linear " + name + " no longer reads the same input as " + alias->second);
    }
    last_name_ = name;
    last_data_ = input.data();
    last_rows_ = input.rows();
    last_cols_ = input.cols();
  }

  // The statistics of `name`'s input, or nullptr (never observed, or released).
  const ActivationStats* find(const std::string& name) const {
    const auto a = alias_of_.find(name);
    if (a == alias_of_.end()) return nullptr;
    const auto it = stats_.find(a->second);
    return it == stats_.end() ? nullptr : &it->second;
  }
  const ActivationStats& at(const std::string& name) const {
    const ActivationStats* s = find(name);
    if (!s) lowbit::detail::fail("sequential calibration: no statistics recorded for layer " + name);
    return *s;
  }
  // The statistics of `name`'s input for a caller that may consume them (take their Hessian,
  // quantize_linear_consuming): only when no other unreleased linear shares them; else nullptr.
  ActivationStats* find_sole(const std::string& name) {
    const auto a = alias_of_.find(name);
    if (a == alias_of_.end()) return nullptr;
    for (const auto& [n, c] : alias_of_)
      if (c == a->second && n != name) return nullptr;
    const auto it = stats_.find(a->second);
    return it == stats_.end() ? nullptr : &it->second;
  }
  // Frees the statistics once no linear sharing them needs them any more.
  void release(const std::string& name) {
    const auto a = alias_of_.find(name);
    if (a == alias_of_.end()) return;
    const std::string canonical = a->second;
    alias_of_.erase(a);
    for (const auto& [n, c] : alias_of_)
      if (c == canonical) return;
    stats_.erase(canonical);
  }

 private:
  CalibrationOptions options_;
  std::map<std::string, ActivationStats> stats_;   // by canonical name
  std::map<std::string, std::string> alias_of_;    // name -> canonical name
  std::string last_name_;
  const float* last_data_ = nullptr;
  Eigen::Index last_rows_ = 0, last_cols_ = 0;
};

// Layer l as the caller sees it after step 2.
struct CalibratedLayer {
  int index = 0;
  // fp32. The caller may free (resize to 0 x 0) the matrix of a linear it returns a
  // replacement for: with quantized inputs only the replacements run again.
  LlamaLayerWeights& weights;
  LayerStats& stats;                 // inputs of its linears by checkpoint name (may be released)
};

// Quantizes one layer; returns the replacement linears by name (a linear not in the map stays
// fp32). Biases stay with the decoder layer: a replacement must not add its own.
using LayerQuantizer = std::function<std::map<std::string, std::unique_ptr<LinearLayer>>(CalibratedLayer&)>;
// Called at each stage ("calibrating", "quantizing", "propagating") of each layer.
using CalibrationProgress = std::function<void(int layer, const char* stage)>;

namespace detail {
// y = x W^T over a weight owned elsewhere (the layer's fp32 weights, alive for the layer's
// step): the fp32 layer used for recording needs no second copy of the weights.
class BorrowedLinear final : public LinearLayer {
 public:
  explicit BorrowedLinear(const RowMatrixXf& w) : w_(&w) {}
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override { y.noalias() = x * w_->transpose(); }
  std::int64_t in_features() const override { return w_->cols(); }
  std::int64_t out_features() const override { return w_->rows(); }
  double storage_bits() const override { return 32.0 * static_cast<double>(w_->size()); }
  std::string describe() const override { return "fp32 (borrowed)"; }

 private:
  const RowMatrixXf* w_;
};

inline LinearFactory borrowed_linear_factory() {
  return [](const std::string&, const RowMatrixXf& w) -> std::unique_ptr<LinearLayer> {
    return std::make_unique<BorrowedLinear>(w);
  };
}

// Runs `layer` on every sequence of h; in place when `update`, else only for the observer.
inline void run_layer_on_samples(const DecoderLayer& layer, std::vector<RowMatrixXf>& h, bool update,
                                 LinearInputObserver* observer) {
  ForwardWorkspace ws;
  RowMatrixXf x;
  KvCache cache(layer.config());  // fp32; only this layer's rows are used
  for (auto& seq : h) {
    const int n = static_cast<int>(seq.rows());
    rope_table(layer.config(), 0, n, ws.rope_cos, ws.rope_sin);
    if (update) {
      layer.forward(seq, 0, cache, ws, observer);
    } else {
      x = seq;
      layer.forward(x, 0, cache, ws, observer);
    }
  }
}
}  // namespace detail

// Returns the classifier's input statistics (empty unless options.classifier_stats).
inline CalibrationRecorder calibrate_sequentially(const ModelSource& src, const std::vector<std::vector<int>>& samples,
                                                  const SequentialCalibrationOptions& options,
                                                  const LayerQuantizer& quantize,
                                                  const CalibrationProgress& progress = {}) {
  const LlamaConfig& c = src.config();
  if (samples.empty()) lowbit::detail::fail("sequential calibration: no calibration samples");
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (static_cast<int>(samples[i].size()) > c.max_seq_len)
      lowbit::detail::fail("sequential calibration: sample " + std::to_string(i) + " has " +
                           std::to_string(samples[i].size()) + " tokens, more than the model's " +
                           std::to_string(c.max_seq_len) + " positions");
  std::vector<RowMatrixXf> h = embed_sequences(src, samples);
  for (int l = 0; l < c.n_layers; ++l) {
    if (progress) progress(l, "calibrating");
    LlamaLayerWeights w = src.layer(l);
    DecoderLayer layer(c, l, src.naming(), w, detail::borrowed_linear_factory());
    LayerStats rec(options.stats);
    // fp32 inputs: the recording pass's outputs are what layer l+1 sees.
    detail::run_layer_on_samples(layer, h, /*update=*/!options.quantized_inputs, &rec);
    if (progress) progress(l, "quantizing");
    CalibratedLayer cl{l, w, rec};
    auto replacements = quantize(cl);
    if (options.quantized_inputs) {
      if (progress) progress(l, "propagating");
      for (int s = 0; s < kLinearSlots; ++s) {
        const auto slot = static_cast<linear_slot>(s);
        auto it = replacements.find(layer.name(slot));
        if (it != replacements.end() && it->second) {
          layer.set_linear(slot, std::move(it->second));
        } else if (w.matrix(slot).size() == 0) {
          lowbit::detail::fail("sequential calibration: the weight of " + layer.name(slot) +
                               " was freed but no replacement was returned for it");
        }
      }
      detail::run_layer_on_samples(layer, h, /*update=*/true, nullptr);
    }
  }
  CalibrationRecorder classifier(options.stats);
  if (options.classifier_stats) {
    const Eigen::VectorXf norm = src.final_norm();
    RowMatrixXf xn;
    for (const auto& seq : h) {
      lowbit::model::detail::rmsnorm(seq, norm, c.norm_eps, xn);
      classifier.observe(src.classifier_name(), xn);
    }
  }
  return classifier;
}

}  // namespace lowbit::model
