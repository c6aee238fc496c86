// `lowbit compare IN --recipes a,b,c`: quantizes every eligible weight of a checkpoint with
// each scheme and prints them side by side: bits/weight, weight SQNR, output SQNR, and time.
// Schemes are named recipes (w8a8-fp8, w4a8-fp, ... of algo/recipes.hpp, run through
// quantize_linear: smoothing, GPTQ, LoRC, activation quantization) or spec texts (int4:g128,
// float4_e2m1fn:g32:m2, mxfp4, nvfp4, int8:channel, ...; quant/spec_text.hpp; round-to-nearest,
// fp32 activations). Where a name is both (mxfp4, nvfp4), the recipe is meant.
// Output SQNR needs activations, from one of:
//  - --calib TOKENS (Llama-architecture inputs): rows recorded from the fp32 model's own
//    forward pass (each layer's real input), which also calibrate GPTQ / smoothing;
//  - --probe-tokens N: N deterministic Gaussian rows with a few outlier channels
//    (synthetic; they also serve as calibration data for recipes that need it).
// Tensors are read one at a time, so memory stays near one tensor's working set (--calib
// loads the model once first to record the statistics).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "registry.hpp"

namespace {

struct compare_options {
  std::string input, recipes = "int8:channel,int4:g128,float4_e2m1fn:g32:m2,mxfp4,nvfp4";
  lowbit_cli::tensor_filter filter;
  lowbit_cli::calibration_flags calib;
  int probe_tokens = 0;
  bool json = false, quiet = false;
};

struct totals {
  std::string name;
  lowbit::LinearRecipe recipe;
  std::int64_t bits = 0, weights = 0;
  lowbit::SquaredErrorSums w_err, y_err;  // in double (float sums lose digits)
  double seconds = 0;
};

int run_compare(const compare_options& o) {
  std::vector<totals> rows;
  std::stringstream list(o.recipes);
  const auto& names = lowbit::recipe_names();
  for (std::string item; std::getline(list, item, ',');) {
    if (item.empty()) continue;
    totals t;
    t.name = item;
    if (std::find(names.begin(), names.end(), item) != names.end()) {
      t.recipe = lowbit::recipe_from_name(item);
      t.recipe.weight = lowbit::normalized_spec(t.recipe.weight, item);
    } else {
      try {
        t.recipe.weight = lowbit::parse_quant_spec(item);
      } catch (const lowbit::error& e) {
        lowbit_cli::fail("--recipes: '" + item + "' is neither a recipe nor spec text: " + e.what());
      }
      t.name = t.recipe.name = lowbit::to_string(t.recipe.weight);  // the canonical label, as quantize writes it
    }
    rows.push_back(t);
  }
  if (rows.empty()) lowbit_cli::fail("--recipes: no scheme given");
  if (o.probe_tokens < 0) lowbit_cli::fail("--probe-tokens must be >= 0");
  if (o.calib.enabled() && o.probe_tokens > 0)
    lowbit_cli::fail("--calib and --probe-tokens are alternatives (recorded or synthetic activations); give one");
  for (const auto& r : rows)
    if (r.recipe.needs_calibration() && !o.calib.enabled() && o.probe_tokens == 0)
      lowbit_cli::fail("recipe " + r.name + " needs calibration (GPTQ or smoothing): give --calib FILE "
                           "(.txt, .jsonl or .u16; Llama-architecture input) or --probe-tokens N (synthetic activations)");
  const auto model = lowbit_cli::open_safetensors_input(o.input, "compare");
  // A lowbit checkpoint's layers are codes and scales, not *.weight matrices: comparing
  // schemes on it would quantize already-quantized weights (or silently find none).
  for (const auto& shard : model.shards())
    if (lowbit::is_lowbit_checkpoint(*shard))
      lowbit_cli::fail(o.input + " is a lowbit checkpoint (already quantized): compare schemes on the source model; "
                           "run the checkpoint with eval, generate or bench");
  std::uint64_t total = 0, done = 0;
  for (const auto* t : model.tensors())
    if (o.filter.selects(*t)) total += t->nbytes;
  if (total == 0) lowbit_cli::fail(o.input + ": no tensor is eligible for quantization (2-D *.weight, see --help)");
  std::optional<lowbit_cli::calibration_data> calib;
  if (o.calib.enabled()) calib = lowbit_cli::record_calibration(o.input, o.calib, 512);
  lowbit_cli::progress_bar bar(total, o.quiet);
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::int64_t activation_rows = 0, tensors_with_activations = 0, tensors = 0;
  for (const auto* t : model.tensors()) {
    if (!o.filter.selects(*t)) continue;
    ++tensors;
    const std::string base = lowbit::checkpoint_base_name(t->name);
    const lowbit::RowMatrixXf w = t->to_matrix();
    const lowbit::ActivationStats* stats = nullptr;
    std::optional<lowbit::ActivationStats> probe_stats;
    lowbit::RowMatrixXf x;
    if (calib) {
      stats = calib->recorder.find(base);
      if (stats) x = stats->sample();
    } else if (o.probe_tokens > 0) {
      x.resize(o.probe_tokens, w.cols());
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
      for (Eigen::Index c = 7; c < x.cols(); c += 61) x.col(c) *= 20.0f;  // outlier channels
      lowbit::CalibrationOptions co;
      co.max_sample_rows = o.probe_tokens;
      probe_stats = lowbit::collect_stats(x, co, base);
      stats = &*probe_stats;
    }
    const bool have_x = x.rows() > 0;
    lowbit::RowMatrixXf y;
    if (have_x) {
      y = x * w.transpose();
      activation_rows += x.rows();
      ++tensors_with_activations;
    }
    for (auto& r : rows) {
      if (r.recipe.needs_calibration() && !stats)
        lowbit_cli::fail("tensor '" + t->name + "': recipe " + r.name + " needs calibration, but the model's forward "
                             "pass does not use this tensor as a linear layer; leave it out with --exclude");
      const auto t0 = std::chrono::steady_clock::now();
      const lowbit::QuantizedLinear layer = lowbit::quantize_linear(w, nullptr, r.recipe, stats, base);
      r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const lowbit::RowMatrixXf w_eff = lowbit_cli::effective_weight(layer);
      r.bits += layer.quantized_bits();
      r.weights += w.size();
      r.w_err.add(w, w_eff);
      if (have_x) r.y_err.add(y, layer(x));
    }
    model.release(*t);
    done += t->nbytes;
    bar.update(done, t->name);
  }
  bar.finish();
  const bool output_sqnr = tensors_with_activations > 0;
  // What the output SQNR column was measured on.
  std::string source = "none", note;
  if (calib) {
    source = "recorded";
    note = fmt::format("output SQNR on activations recorded from the model's forward pass ({}; {} rows over {} of {} "
                       "tensors), activations quantized as each recipe says",
                       calib->note, activation_rows, tensors_with_activations, tensors);
  } else if (o.probe_tokens > 0) {
    source = "synthetic";
    note = fmt::format("output SQNR on {} synthetic probe tokens (Gaussian + outlier channels, not the model's activations), "
                       "activations quantized as each recipe says",
                       o.probe_tokens);
  } else {
    note = "--calib TOKENS (recorded) or --probe-tokens N (synthetic) adds output SQNR";
  }
  if (o.json) {
    nlohmann::json j = {{"input", o.input}, {"probe_tokens", o.probe_tokens}, {"activations_source", source}};
    if (calib) j["calibration"] = calib->note;
    auto& arr = j["schemes"] = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json e = {{"scheme", r.name},
                          {"spec", lowbit::to_string(r.recipe.weight)},
                          {"bits_per_weight", double(r.bits) / double(r.weights)},
                          {"weight_sqnr_db", lowbit_cli::db_json(r.w_err.sqnr_db())},
                          {"quantize_seconds", r.seconds}};
      if (r.recipe.activations) e["activations"] = std::string(lowbit::to_string(r.recipe.activations->format));
      if (output_sqnr) e["output_sqnr_db"] = lowbit_cli::db_json(r.y_err.sqnr_db());
      arr.push_back(std::move(e));
    }
    lowbit_cli::write_json("-", j);
    return 0;
  }
  const char* out_header = calib ? "out SQNR rec" : o.probe_tokens > 0 ? "out SQNR syn" : "output SQNR";
  fmt::print("{:<28} {:>8} {:>12} {:>12} {:>10}\n", "scheme", "bits/w", "weight SQNR", out_header, "time s");
  for (const auto& r : rows)
    fmt::print("{:<28} {:>8.3f} {:>12} {:>12} {:>10.3f}\n", r.name, double(r.bits) / double(r.weights),
               lowbit_cli::db_text(r.w_err.sqnr_db()),
               output_sqnr ? lowbit_cli::db_text(r.y_err.sqnr_db()) : std::string("-"), r.seconds);
  fmt::print("(SQNR in dB over all eligible tensors; bits/w counts codes, scales, zero points, LoRC factors and smoothing vectors; {})\n", note);
  return 0;
}

lowbit_cli::registration compare_registration{
    "compare", "Compare quantization schemes side by side on a checkpoint's weights", 40,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<compare_options>();
      sub.add_option("IN", o->input, "A .safetensors file, index or directory")->required();
      sub.add_option("--recipes", o->recipes,
                     "Comma-separated named recipes (w8a8-fp8, w8a8-int8, w4a16-int4, w4a16-sqplus, w4a8-int, w4a8-fp, "
                     "mxfp4, nvfp4) or spec texts (int4:g128, float4_e2m1fn:g32:m2, int8:channel, ...)")
          ->capture_default_str();
      o->filter.add_to(sub);
      o->calib.add_to(sub, "Calibration tokens (u16 ids): output SQNR on activations recorded from the model's forward "
                           "pass (Llama architecture), and calibration for GPTQ/smoothing recipes");
      sub.add_option("--probe-tokens", o->probe_tokens, "Synthetic activation rows for an output-SQNR column (0 = off)");
      sub.add_flag("--json", o->json, "Print JSON instead of a table");
      sub.add_flag("-q,--quiet", o->quiet, "No progress bar");
      return [o] { return run_compare(*o); };
    }};

}  // namespace
