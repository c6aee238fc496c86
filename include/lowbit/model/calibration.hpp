#pragma once
// Calibration from the model's own forward pass: CalibrationRecorder observes the input of
// every linear layer (LinearInputObserver) and streams it into one ActivationStats per layer
// (per-channel absmax/min/max/mean|x|, the GPTQ Hessian X^T X, and optionally a bounded
// sample of input rows). calibrate() runs a model over calibration documents with it.
//
// The statistics describe whatever the model's layers currently compute: an fp32 model (the
// usual case: `lowbit quantize --calib`, `lowbit eval --recipe`) gives the fp32 inputs.
// wq/wk/wv see the same input, as do w1/w3; each layer still gets its own entry so a recipe
// can look layers up by name.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/perplexity.hpp"

namespace lowbit::model {

// A class template only so that its members compile where they are used ("Compile time" in
// docs/design.md); CalibrationRecorder below is its one instantiation.
template <class Deferred = void>
class BasicCalibrationRecorder final : public LinearInputObserver {
 public:
  explicit BasicCalibrationRecorder(CalibrationOptions options = {}) : options_(options) {}

  void observe(const std::string& layer_name, ConstRowMatrixRef input) override {
    auto it = stats_.find(layer_name);
    if (it == stats_.end())
      it = stats_.emplace(layer_name, ActivationStats(input.cols(), options_, layer_name)).first;
    it->second.add(input);
    if (layer_name == first_name_ || first_name_.empty()) {
      first_name_ = layer_name;
      rows_ += input.rows();
    }
  }

  const std::map<std::string, ActivationStats>& stats() const { return stats_; }
  const ActivationStats* find(const std::string& layer_name) const {
    auto it = stats_.find(layer_name);
    return it == stats_.end() ? nullptr : &it->second;
  }
  const ActivationStats& at(const std::string& layer_name) const {
    const ActivationStats* s = find(layer_name);
    if (!s) lowbit::detail::fail("calibration: no statistics recorded for layer " + layer_name);
    return *s;
  }
  // Token positions seen (rows of every layer's input).
  std::int64_t tokens() const { return rows_; }

 private:
  CalibrationOptions options_;
  std::map<std::string, ActivationStats> stats_;
  std::string first_name_;
  std::int64_t rows_ = 0;
};
using CalibrationRecorder = BasicCalibrationRecorder<void>;

struct CalibrationRun {
  long max_docs = 64;           // documents taken from the start of the stream (< 0: all)
  std::int64_t max_tokens = -1; // stop once this many positions were run (< 0: no limit)
  int bos = 1;
};

// Runs `model` over the first documents of `tokens` (split at BOS, each cut at max_seq_len)
// and records every linear layer's input statistics.
template <class Deferred = void>  // see "Compile time" in docs/design.md
CalibrationRecorder calibrate(const LlamaModel& model, const std::vector<int>& tokens,
                                     const CalibrationOptions& options = {},
                                     const CalibrationRun& run = {}) {
  CalibrationRecorder rec(options);
  std::vector<DocumentSpan> docs = split_documents(tokens, run.bos);
  if (docs.empty()) lowbit::detail::fail("calibrate: no calibration tokens");
  if (run.max_docs >= 0 && static_cast<std::size_t>(run.max_docs) < docs.size())
    docs.resize(static_cast<std::size_t>(run.max_docs));
  KvCache cache(model.config());
  ForwardWorkspace ws;
  RowMatrixXf logits;
  for (const DocumentSpan& d : docs) {
    if (run.max_tokens >= 0 && rec.tokens() >= run.max_tokens) break;
    std::int64_t n = std::min<std::int64_t>(static_cast<std::int64_t>(d.length), model.config().max_seq_len);
    if (run.max_tokens >= 0) n = std::min(n, run.max_tokens - rec.tokens());
    cache.clear();
    model.forward(tokens.data() + d.begin, static_cast<int>(n), cache, logits, ws, &rec);
  }
  return rec;
}

}  // namespace lowbit::model
