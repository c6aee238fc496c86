#pragma once
// A compressed-tensors checkpoint (a Hugging Face directory whose config.json has a
// `quantization_config` with quant_method "compressed-tensors", as llm-compressor writes it
// for vLLM) as a ModelSource. open_model() (model/load.hpp) returns one for such a directory.
//
// The float tensors (embeddings, norms, unquantized linears) are read by the Hugging Face
// SafetensorsSource this wraps (its tensor lookup, embedding rows, classifier and final norm
// rules are not repeated here); the quantized linears are "external" to it, and
// quantized_linear() builds each as a lowbit QuantizedLinear from its compressed-tensors
// tensors (model/ct_format.hpp: float-quantized, int-quantized, pack-quantized,
// nvfp4-pack-quantized, mxfp4-pack-quantized), which ct_linear_factory() runs on lowbit's kernels (not as an fp32
// copy). Which module has which scheme comes from config_groups (targets "Linear", module
// names, or "re:" patterns) less `ignore`; every quantized module must be in the file.
// quantization_status must be "compressed" (a "frozen" model keeps fake-quantized floats).
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <utility>

#include "lowbit/model/ct_format.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/model/safetensors_source.hpp"

namespace lowbit::model {

// One quantized module's scheme, from its config group.
struct CtModuleScheme {
  std::string format;
  nlohmann::json weights, input_activations;
  std::int64_t rows = 0, cols = 0;
};
using CtPlan = std::map<std::string, CtModuleScheme>;  // HF module name -> scheme

namespace detail {

// Whether compressed-tensors target `t` names module `m`: "Linear" (every linear layer),
// "re:<pattern>" (matched from the module name's start, as Python's re.match does), or the name.
template <class Deferred = void>  // see "Compile time" in docs/design.md
bool ct_target_matches(const std::string& t, const std::string& m) {
  if (t == "Linear") return true;
  if (t.compare(0, 3, "re:") == 0) {
    try {
      return std::regex_search(m, deferred_t<Deferred, std::regex>(t.substr(3)), std::regex_constants::match_continuous);
    } catch (const deferred_t<Deferred, std::regex_error>& e) {
      lowbit::detail::fail("target pattern '" + t + "' is not a valid regular expression: " + e.what());
    }
  }
  return t == m;
}

// The quantized modules of a model with config `c` and config.json's `quantization_config`.
template <class Deferred = void>  // see "Compile time" in docs/design.md
CtPlan ct_plan(const deferred_t<Deferred, nlohmann::json>& qc, const LlamaConfig& c, const std::string& source) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const std::string who = source + ": quantization_config: ";
  auto bad = [&](const std::string& what) -> void { lowbit::detail::fail(who + what); };
  CtPlan plan;
  try {
    if (!qc.is_object()) bad("not an object");
    if (qc.value("quant_method", std::string()) != "compressed-tensors")
      bad("quant_method '" + (qc.contains("quant_method") ? qc["quant_method"].dump() : std::string("(none)")) +
          "' is not supported (lowbit reads compressed-tensors)");
    const std::string status = qc.value("quantization_status", std::string("compressed"));
    if (status != "compressed")
      bad("quantization_status '" + status + "' (only \"compressed\" checkpoints hold quantized codes)");
    if (qc.contains("sparsity_config") && !qc["sparsity_config"].is_null() && !qc["sparsity_config"].empty())
      bad("sparsity_config is not supported");
    if (qc.contains("kv_cache_scheme") && !qc["kv_cache_scheme"].is_null()) bad("kv_cache_scheme is not supported");
    const std::string top = qc.value("format", std::string());
    if (!qc.contains("config_groups") || !qc["config_groups"].is_object() || qc["config_groups"].empty())
      bad("config_groups is missing or empty");
    std::vector<std::string> ignore;
    if (qc.contains("ignore") && !qc["ignore"].is_null()) {
      if (!qc["ignore"].is_array()) bad("ignore is not a list");
      for (const auto& i : qc["ignore"]) {
        if (!i.is_string()) bad("ignore holds a non-string");
        ignore.push_back(i.template get<std::string>());
      }
    }
    // Every linear module of the model, with its [out, in] shape.
    std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> modules;
    for (int l = 0; l < c.n_layers; ++l)
      for (int i = 0; i < kLinearSlots; ++i)
        modules.push_back({linear_name(l, static_cast<linear_slot>(i), weight_naming::hf), linear_shape(c, static_cast<linear_slot>(i))});
    if (!c.tied_classifier) modules.push_back({"lm_head", {c.vocab_size, c.dim}});
    for (const auto& [gname, g] : qc["config_groups"].items()) {
      if (!g.is_object()) bad("config group '" + gname + "' is not an object");
      if (!g.contains("targets") || !g["targets"].is_array()) bad("config group '" + gname + "' has no targets list");
      if (g.contains("output_activations") && !g["output_activations"].is_null())
        bad("config group '" + gname + "': output_activations are not supported");
      std::string format = g.contains("format") && g["format"].is_string() ? g["format"].template get<std::string>() : top;
      if (format.empty() || format == "mixed-precision") bad("config group '" + gname + "' has no format");
      if (!g.contains("weights") || !g["weights"].is_object()) bad("config group '" + gname + "' has no weights args");
      for (const auto& [m, shape] : modules) {
        bool hit = false;
        for (const auto& t : g["targets"]) {
          if (!t.is_string()) bad("config group '" + gname + "' has a non-string target");
          hit = hit || ct_target_matches(t.template get<std::string>(), m);
        }
        if (!hit) continue;
        bool ignored = false;
        for (const std::string& i : ignore) ignored = ignored || ct_target_matches(i, m);
        if (ignored) continue;
        CtModuleScheme s{format, g["weights"], g.value("input_activations", json_t()), shape.first, shape.second};
        if (!plan.emplace(m, std::move(s)).second) bad("module " + m + " is targeted by two config groups");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("malformed: ") + e.what());
  }
  if (plan.empty()) lowbit::detail::fail(who + "no linear layer of the model is quantized (targets / ignore)");
  return plan;
}

}  // namespace detail

template <class Deferred>  // see "Compile time" in docs/design.md; CompressedTensorsSource below
class BasicCompressedTensorsSource final : public ModelSource {
 public:
  BasicCompressedTensorsSource(std::shared_ptr<const SafetensorsSource> inner, CtPlan plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {
    config_ = inner_->config();
    naming_ = inner_->naming();
    path_ = inner_->path();
    tokenizer_path_ = inner_->tokenizer_path();
    architecture_ = inner_->architecture() + " (compressed-tensors)";
    // Every quantized module's tensors are checked now (shapes, dtypes, config), so a bad
    // file fails at open, not half-way through building a model.
    for (const auto& [m, s] : plan_) (void)quantized_linear(m);
  }

  const CtPlan& quantized_linears() const { return plan_; }
  const SafetensorsSource& tensors_source() const { return *inner_; }
  bool has_stored_quantized_layers() const override { return true; }
  LlamaLayerWeights layer(int l) const override { return inner_->layer(l); }
  void embed(const int* tokens, int n, RowMatrixXf& out) const override { inner_->embed(tokens, n, out); }
  RowMatrixXf embeddings() const override { return inner_->embeddings(); }
  Eigen::VectorXf final_norm() const override { return inner_->final_norm(); }
  RowMatrixXf classifier() const override { return inner_->classifier(); }
  const float* classifier_in_place() const override { return inner_->classifier_in_place(); }

  // Module `m` (a key of quantized_linears()) as a lowbit layer, with its bias if any.
  QuantizedLinear quantized_linear(const std::string& m) const {
    const auto it = plan_.find(m);
    if (it == plan_.end()) lowbit::detail::fail(path_ + ": " + m + " is not a quantized layer");
    const CtModuleScheme& s = it->second;
    QuantizedLinear q;
    try {
      q = detail::ct_decode_layer(inner_->tensors(), m, s.rows, s.cols, s.format, s.weights, s.input_activations,
                                  path_ + ": ");
    } catch (const nlohmann::json::exception& e) {
      lowbit::detail::fail(path_ + ": layer " + m + ": malformed quantization args: " + e.what());
    }
    if (const TensorView* b = inner_->tensors().find(m + ".bias")) {
      Eigen::VectorXf v(b->numel());
      if (b->rank() != 1 || b->shape[0] != s.rows) lowbit::detail::fail(path_ + ": tensor " + b->name + " has the wrong shape");
      b->to_float(v.data());
      q.bias = v;
    }
    return q;
  }

 private:
  std::shared_ptr<const SafetensorsSource> inner_;
  CtPlan plan_;
};
using CompressedTensorsSource = BasicCompressedTensorsSource<void>;

// The layers of a compressed-tensors source: quantized modules as RecipeLinear on lowbit's
// kernels (require_kernels refuses the reference path), the rest in fp32.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LinearFactory ct_linear_factory(const CompressedTensorsSource& src, const QuantizedLoadOptions& opt = {}) {
  return [&src, opt](const std::string& name, const RowMatrixXf& weight) -> std::unique_ptr<LinearLayer> {
    if (!src.quantized_linears().count(name)) return std::make_unique<Fp32Linear>(weight);
    return stored_linear(src.quantized_linear(name), nullptr, opt, src.path(), name);
  };
}

}  // namespace lowbit::model
