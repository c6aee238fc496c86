#pragma once
// `lowbit quantize` helpers: the calibration flags and run (--calib FILE as a calibration set
// of --calib-samples documents of at most --calib-seq-len tokens, model/calibration_set.hpp),
// --requantize's dequantized view of a lowbit checkpoint, and progress lines on stderr.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/calibration_set.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/sequential_calibration.hpp"
#if __has_include("lowbit/model/hf_tokenizer.hpp")
#include "lowbit/model/hf_tokenizer.hpp"
#define LOWBIT_CLI_HAS_HF_TOKENIZER 1
#endif

namespace lowbit_cli {

struct quantize_calib_flags {
  std::string file;
  long samples = 128;
  int seq_len = 512;
  std::string inputs = "quantized";  // what layer l+1 sees in sequential calibration

  void add_to(CLI::App& sub) {
    sub.add_option("--calib", file,
                   "Calibration data: .txt (documents separated by blank lines), .jsonl (a \"text\" field per line; "
                   "both tokenized with the model's tokenizer.json) or .u16 token ids");
    sub.add_option("--calib-samples", samples, "Calibration documents, in file order")->capture_default_str();
    sub.add_option("--calib-seq-len", seq_len, "Tokens kept of each calibration document")->capture_default_str();
    sub.add_option("--calib-inputs", inputs,
                   "What layer l+1 is calibrated on: the outputs of the quantized layer l (quantized, as GPTQ does) "
                   "or of the fp32 layer l (fp32)")
        ->capture_default_str();
  }
  bool enabled() const { return !file.empty(); }
};

// The tokenizer.json of a model: inside a model directory, or beside a model file.
inline std::string tokenizer_json_of(const std::string& model_path) {
  struct stat st {};
  const bool dir = ::stat(model_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  return (dir ? model_path : lowbit_cli::parent_directory(model_path)) + "/tokenizer.json";
}

inline lowbit::model::TextEncoder text_encoder_for(const std::string& tok, const std::string& calib_file) {
  const bool text = calib_file.size() > 4 && calib_file.substr(calib_file.size() - 4) != ".u16";
  if (!text) return {};
  struct stat st {};
  if (::stat(tok.c_str(), &st) != 0)
    lowbit_cli::fail("--calib " + calib_file + " is text and needs the model's tokenizer, but there is no " + tok +
                         " (give a .u16 token file instead)");
#ifdef LOWBIT_CLI_HAS_HF_TOKENIZER
  auto t = std::make_shared<lowbit::model::HfTokenizer>(lowbit::model::HfTokenizer::load(tok));
  return [t](const std::string& s) { return t->encode(s, /*add_special_tokens=*/true); };
#else
  lowbit_cli::fail("--calib " + calib_file + ": this build cannot read tokenizer.json files; give a .u16 token file");
#endif
}

// The calibration of `lowbit quantize --calib`: the model source (read layer by layer) and
// the calibration set; the statistics themselves are recorded layer by layer during the
// quantization (model/sequential_calibration.hpp), `layer` pointing at the current layer's.
struct quantize_calibration {
  std::shared_ptr<const lowbit::model::ModelSource> source;
  lowbit::model::CalibrationSet set;
  bool quantized_inputs = true;
  std::string note;       // what the table prints
  nlohmann::json record;  // the checkpoint's calibration record
  lowbit::model::LayerStats* layer = nullptr;     // the decoder layer being quantized
  lowbit::model::CalibrationRecorder classifier;  // the classifier's input, when it is quantized
  const lowbit::ActivationStats* find(const std::string& base) const {
    if (layer)
      if (const auto* s = layer->find(base)) return s;
    return classifier.find(base);
  }
  // The current decoder layer's statistics of `base`'s input when no other linear still needs
  // them: quantizing may then consume them (GPTQ works in their Hessian's buffer).
  lowbit::ActivationStats* find_consumable(const std::string& base) const {
    return layer ? layer->find_sole(base) : nullptr;
  }
};

inline quantize_calibration prepare_quantize_calibration(const std::string& model_path, const quantize_calib_flags& f) {
  if (f.inputs != "quantized" && f.inputs != "fp32")
    lowbit_cli::fail("--calib-inputs: expected quantized or fp32, got '" + f.inputs + "'");
  quantize_calibration d;
  try {
    d.source = lowbit::model::open_model(model_path);
  } catch (const lowbit::error& e) {
    lowbit_cli::fail(std::string("--calib runs the model layer by layer and supports Llama-family models only: ") + e.what());
  }
  lowbit::model::CalibrationSetOptions so;
  so.samples = f.samples;
  so.seq_len = std::min(f.seq_len, d.source->config().max_seq_len);
  so.u16_bos = d.source->config().bos();
  const std::string tok = !d.source->tokenizer_path().empty() ? d.source->tokenizer_path() : tokenizer_json_of(model_path);
  d.set = lowbit::model::read_calibration_set(f.file, so, text_encoder_for(tok, f.file));
  d.quantized_inputs = f.inputs == "quantized";
  const std::int64_t tokens = d.set.tokens();
  d.note = fmt::format("{} tokens in {} samples of {} (--calib-samples {}, --calib-seq-len {}, sequential, {} inputs)", tokens,
                       d.set.samples.size(), f.file, f.samples, so.seq_len, f.inputs);
  d.record = {{"file", lowbit_cli::base_name(f.file)}, {"kind", d.set.kind},         {"samples", d.set.samples.size()},
              {"seq_len", so.seq_len},                     {"tokens", tokens},            {"truncated", d.set.truncated},
              {"method", "sequential"},                    {"inputs", f.inputs}};
  return d;
}

// --requantize: every quantized layer of a lowbit checkpoint as an F32 weight (its effective
// weight (W_hat + U V) diag(1/s)) and bias; the other tensors as they are.
struct dequantized_input {
  std::vector<std::unique_ptr<std::vector<float>>> buffers;
  std::vector<std::unique_ptr<lowbit::TensorView>> views;
  std::vector<const lowbit::TensorView*> order;
  std::map<std::string, const lowbit::TensorView*> by_name;
  int layers = 0;
  const lowbit::TensorView* find(const std::string& n) const {
    const auto it = by_name.find(n);
    return it == by_name.end() ? nullptr : it->second;
  }
  void add(const std::string& name, std::vector<float> v, std::vector<std::int64_t> shape) {
    buffers.push_back(std::make_unique<std::vector<float>>(std::move(v)));
    auto t = std::make_unique<lowbit::TensorView>();
    t->name = name;
    t->dtype = lowbit::tensor_dtype::f32;
    t->shape = std::move(shape);
    t->data = reinterpret_cast<const std::byte*>(buffers.back()->data());
    t->nbytes = buffers.back()->size() * sizeof(float);
    order.push_back(t.get());
    by_name[name] = t.get();
    views.push_back(std::move(t));
  }
};

inline dequantized_input dequantize_checkpoint(const lowbit::SafetensorsModel& model) {
  dequantized_input d;
  std::map<std::string, std::string> part_of;  // tensor -> layer base
  std::map<std::string, const lowbit::SafetensorsFile*> shard_of_layer;
  for (const auto& shard : model.shards()) {
    if (!lowbit::is_lowbit_checkpoint(*shard)) continue;
    for (const auto& base : lowbit::checkpoint_layers(*shard)) {
      shard_of_layer[base] = shard.get();
      for (const auto& t : shard->tensors())
        if (t.name.compare(0, base.size() + 1, base + ".") == 0 && t.name.find('.', base.size() + 1) == std::string::npos)
          part_of[t.name] = base;
    }
  }
  for (const auto* t : model.tensors()) {
    const auto p = part_of.find(t->name);
    if (p == part_of.end()) {
      d.order.push_back(t);
      d.by_name[t->name] = t;
      continue;
    }
    if (t->name != p->second + ".qweight") continue;  // the layer is emitted once, at its codes
    const lowbit::QuantizedLinear layer = lowbit::load_quantized_linear(*shard_of_layer[p->second], p->second);
    const lowbit::RowMatrixXf w = effective_weight(layer);
    d.add(p->second + ".weight", std::vector<float>(w.data(), w.data() + w.size()), {w.rows(), w.cols()});
    if (layer.bias) d.add(p->second + ".bias", std::vector<float>(layer.bias->data(), layer.bias->data() + layer.bias->size()),
                          {layer.bias->size()});
    ++d.layers;
  }
  return d;
}

// Progress on stderr (unless --quiet): a line whenever the decoder layer or the stage changes,
// "layer i of n: stage", with the elapsed time and an ETA from the bytes done so far.
class layer_progress {
 public:
  layer_progress(std::uint64_t total_bytes, bool quiet, int n_layers = 0)
      : total_(total_bytes), quiet_(quiet), n_layers_(n_layers), t0_(std::chrono::steady_clock::now()) {}
  void set_layers(int n) { n_layers_ = n; }
  // `tensor`: a tensor name (its "layers.N." gives the layer) or empty.
  void stage(const std::string& tensor, const std::string& what, std::uint64_t done_bytes) {
    const int layer = layer_index(tensor);
    if (layer == layer_ && what == what_) return;
    layer_ = layer;
    what_ = what;
    print(what, done_bytes);
  }
  void layer_stage(int layer, const std::string& what, double fraction_done) {
    layer_ = layer;
    what_ = what;
    print(what, static_cast<std::uint64_t>(fraction_done * static_cast<double>(total_)));
  }
  void update(std::uint64_t, const std::string&) {}
  // The decoder layer a tensor belongs to ("...layers.N."), or -1.
  static int layer_index(const std::string& tensor) {
    static const std::regex layer_re("(^|\\.)layers\\.([0-9]+)\\.");
    std::smatch m;
    return std::regex_search(tensor, m, layer_re) ? std::stoi(m[2].str()) : -1;
  }
  void finish() {}

 private:
  void print(const std::string& what, std::uint64_t done) {
    if (quiet_) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
    const std::string eta = frac > 0.02 && frac < 1 ? fmt::format(", ETA {:.0f} s", el * (1 - frac) / frac) : "";
    const std::string where = layer_ >= 0 ? (n_layers_ > 0 ? fmt::format("layer {} of {}", layer_ + 1, n_layers_)
                                                           : fmt::format("layer {}", layer_ + 1))
                                          : std::string("model");
    std::fprintf(stderr, "[quantize] %s: %s (%.0f%%, %.1f s%s)\n", where.c_str(), what.c_str(), 100 * frac, el, eta.c_str());
  }
  std::uint64_t total_;
  bool quiet_;
  int n_layers_;
  int layer_ = -2;
  std::string what_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace lowbit_cli
