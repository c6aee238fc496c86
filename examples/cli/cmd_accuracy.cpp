// `lowbit accuracy`: runs every named recipe (and the ablations that isolate smoothing, GPTQ,
// LoRC and the activation format) on two sets of layers and prints the output SQNR:
//   - the synthetic LLM-like block of `lowbit demo` (synthetic.hpp): heavy-tailed weights,
//     outlier activation channels;
//   - the real weights of stories260K (../shared/data/stories260k), all 35 linear layers,
//     fed with SYNTHETIC Gaussian activations with a few outlier channels (recorded
//     activations come once `lowbit eval` can record them).
// Calibration and evaluation use disjoint token sets. SQNR is over all layers of a set:
// 10 log10(sum ||Y||^2 / sum ||Y - Y_q||^2), Y = X W^T.
#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/algo.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/quant/metrics.hpp"
#include "registry.hpp"
#include "synthetic.hpp"

#ifndef LOWBIT_DEFAULT_DATA_DIR
#define LOWBIT_DEFAULT_DATA_DIR "../shared/data"
#endif

namespace {

using lowbit::RowMatrixXf;

struct eval_layer {
  std::string name;
  RowMatrixXf weight;
  RowMatrixXf calibration;  // [tokens, in]
  RowMatrixXf evaluation;   // [tokens, in], disjoint from calibration
};

// Minimal F32 safetensors reader: 8-byte little-endian header length, JSON header with
// dtype/shape/data_offsets, then the raw data.
std::vector<std::pair<std::string, RowMatrixXf>> read_linear_weights(const std::string& path) {
  lowbit::check_input_file(path, "--stories");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw lowbit::error("cannot open " + path);
  unsigned char len_bytes[8];
  if (!f.read(reinterpret_cast<char*>(len_bytes), 8)) throw lowbit::error(path + ": truncated header");
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  if (len > (std::uint64_t{1} << 26)) throw lowbit::error(path + ": header too large");
  std::string header(len, '\0');
  if (!f.read(header.data(), static_cast<std::streamsize>(len))) throw lowbit::error(path + ": truncated header");
  const nlohmann::json j = nlohmann::json::parse(header);
  const std::streamoff data_start = static_cast<std::streamoff>(8 + len);
  std::vector<std::pair<std::string, RowMatrixXf>> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const auto& shape = it.value().at("shape");
    // Linear layers only: attention.w* and feed_forward.w* (2-D, not the embedding).
    if (shape.size() != 2 || name.find("layers.") != 0) continue;
    if (it.value().at("dtype") != "F32") throw lowbit::error(path + ": " + name + " is not F32");
    const auto rows = shape[0].get<std::int64_t>(), cols = shape[1].get<std::int64_t>();
    const auto begin = it.value().at("data_offsets")[0].get<std::int64_t>();
    const auto end = it.value().at("data_offsets")[1].get<std::int64_t>();
    if (end - begin != rows * cols * 4) throw lowbit::error(path + ": " + name + " has inconsistent offsets");
    RowMatrixXf w(rows, cols);
    f.seekg(data_start + begin);
    if (!f.read(reinterpret_cast<char*>(w.data()), end - begin)) throw lowbit::error(path + ": " + name + " truncated");
    out.emplace_back(name, std::move(w));
  }
  if (out.empty()) throw lowbit::error(path + ": no linear layers found");
  return out;
}

// The stories260K weights when --stories is not given: under $LOWBIT_DATA_DIR, else under
// the shared data directory beside the checkout this program was built from (not relative
// to the working directory, so the command works from anywhere).
std::string default_stories_path() {
  const char* env = std::getenv("LOWBIT_DATA_DIR");
  const std::string dir = env && *env ? env : LOWBIT_DEFAULT_DATA_DIR;
  return dir + "/stories260k/stories260K.safetensors";
}

std::vector<eval_layer> synthetic_layers(int tokens) {
  lowbit_synthetic::SyntheticOptions o;
  o.tokens = 2 * tokens;
  std::vector<eval_layer> out;
  for (auto& l : lowbit_synthetic::make_synthetic_block(o))
    out.push_back({l.name, l.weight, l.activations.topRows(tokens), l.activations.bottomRows(tokens)});
  return out;
}

// Gaussian activations with 3 outlier channels (x20) per input dimension; deterministic.
RowMatrixXf gaussian_outlier_activations(lowbit_synthetic::SyntheticRng& rng, int tokens, int in) {
  RowMatrixXf x(tokens, in);
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < in; ++c) x(t, c) = static_cast<float>(rng.normal());
  for (int c : {1 % in, 17 % in, 42 % in}) x.col(c) *= 20.0f;
  return x;
}

std::vector<eval_layer> stories_layers(const std::string& path, int tokens) {
  lowbit_synthetic::SyntheticRng rng(260);
  std::vector<eval_layer> out;
  for (auto& [name, w] : read_linear_weights(path)) {
    const RowMatrixXf x = gaussian_outlier_activations(rng, 2 * tokens, static_cast<int>(w.cols()));
    out.push_back({name, std::move(w), x.topRows(tokens), x.bottomRows(tokens)});
  }
  return out;
}

struct variant {
  std::string label;
  std::string what;
  lowbit::LinearRecipe recipe;
  bool weights_fp32 = false;  // activation-only rows: the weights stay fp32
};

std::vector<variant> variants(const std::vector<std::string>& names) {
  using namespace lowbit;
  std::vector<variant> v;
  for (const std::string& n : names) {
    const LinearRecipe r = recipe_from_name(n);
    v.push_back({n, "recipe", r});
    if (n == "w4a16-int4") {
      LinearRecipe a = r;
      a.method = weight_method::round_to_nearest;
      v.push_back({n + " -gptq", "same, round-to-nearest", a});
    } else if (n == "w4a16-sqplus") {
      LinearRecipe a = r;
      a.smoothing = smoothing_mode::none;
      v.push_back({n + " -smooth", "same, no smoothing (plain RTN)", a});
      LinearRecipe b = r;
      b.method = weight_method::gptq;
      v.push_back({n + " +gptq", "SmoothQuant+ then GPTQ", b});
    } else if (n == "w4a8-fp") {
      LinearRecipe a = r;
      a.lorc_rank = 0;
      v.push_back({n + " -lorc", "same, no LoRC", a});
      LinearRecipe b = a;
      b.method = weight_method::round_to_nearest;
      v.push_back({n + " -lorc -gptq", "same, no LoRC, RTN", b});
    } else if (n == "w4a8-int") {
      LinearRecipe a = r;
      a.lorc_rank = 8;
      a.lorc.storage = lorc_storage::f16;
      v.push_back({n + " +lorc", "same, LoRC rank 8", a});
    } else if (n == "w8a8-int8") {
      LinearRecipe a = r;
      a.smoothing = smoothing_mode::none;
      a.method = weight_method::round_to_nearest;
      v.push_back({n + " -smooth -gptq", "int8 w + int8 acts, RTN", a});
      LinearRecipe c = a;
      c.activations = ActivationQuant{act_format::float8_e4m3fn, 0};
      v.push_back({n + " -smooth -gptq a:fp8", "int8 w + E4M3 acts, RTN", c});
      LinearRecipe b = r;
      b.smoothing = smoothing_mode::search;
      v.push_back({n + " sq+search", "alpha searched instead of 0.8", b});
    }
  }
  // Activation quantization alone (weights fp32): FP8 vs INT8 per token on outliers.
  LinearRecipe a8;
  a8.activations = ActivationQuant{act_format::int8, 0};
  v.push_back({"a8-int8 only", "int8 per-token acts, fp32 weights", a8, true});
  a8.activations = ActivationQuant{act_format::float8_e4m3fn, 0};
  v.push_back({"a8-fp8 only", "E4M3 per-token acts, fp32 weights", a8, true});
  return v;
}

struct outcome {
  double sqnr_db = 0.0;
  double bits_per_weight = 0.0;
  std::string warnings;
};

// `tick` is called after each layer (progress).
outcome evaluate(const variant& v, const std::vector<eval_layer>& layers, const std::function<void()>& tick) {
  double bits = 0.0, elems = 0.0;
  lowbit::SquaredErrorSums sums;  // in double
  outcome o;
  for (const eval_layer& l : layers) {
    const RowMatrixXf y = l.evaluation * l.weight.transpose();
    RowMatrixXf yq;
    if (v.weights_fp32) {
      const auto& a = *v.recipe.activations;
      yq = lowbit::dequantize(lowbit::quantize_activations(l.evaluation, a.format, a.group)) * l.weight.transpose();
      bits += 32.0 * double(l.weight.size());
    } else {
      lowbit::CalibrationOptions copt;
      copt.max_sample_rows = l.calibration.rows();
      const lowbit::ActivationStats stats = lowbit::collect_stats(l.calibration, copt, l.name);
      const lowbit::QuantizedLinear q = lowbit::quantize_linear(l.weight, nullptr, v.recipe, &stats, l.name);
      if (!q.warning.empty()) o.warnings += q.warning + "; ";
      yq = q(l.evaluation);
      bits += double(q.quantized_bits());  // QuantizedLinear::bits_per_weight()'s definition
    }
    elems += double(l.weight.size());
    sums.add(y, yq);
    tick();
  }
  o.sqnr_db = sums.sqnr_db();
  o.bits_per_weight = bits / elems;
  return o;
}

lowbit_cli::registration accuracy_registration{
    "accuracy", "Output SQNR of every recipe (SmoothQuant+, GPTQ, LoRC, FP8/INT8) on synthetic and stories260K layers",
    60, [](CLI::App& sub) {
      struct opts {
        std::vector<std::string> recipes;
        int tokens = 256;
        std::string stories;  // default: default_stories_path()
        bool no_stories = false;
        bool json = false;
        std::string json_out;
        bool quiet = false;
      };
      auto o = std::make_shared<opts>();
      sub.add_option("--recipe", o->recipes, "Recipes to run (default: all)");
      sub.add_option("--tokens", o->tokens, "Calibration tokens (and as many evaluation tokens)")->check(CLI::Range(16, 4096));
      sub.add_option("--stories", o->stories,
                     "stories260K safetensors file (default: stories260k/stories260K.safetensors under $LOWBIT_DATA_DIR, "
                     "else under the data directory of the checkout this program was built from)");
      sub.add_flag("--no-stories", o->no_stories, "Only the synthetic layers");
      // The one convention of every command: --json prints JSON to stdout instead of the
      // table, --json-out FILE also writes it to a file.
      sub.add_flag("--json", o->json, "Print the table as JSON to stdout instead of text");
      sub.add_option("--json-out", o->json_out, "Also write the table as JSON to FILE");
      sub.add_flag("-q,--quiet", o->quiet, "No progress bar");
      return [o]() -> int {
        const std::string stories_path = o->stories.empty() ? default_stories_path() : o->stories;
        // Before any work: the report must not replace an input, and its directory must accept it.
        lowbit::check_outputs({o->json_out}, {o->no_stories ? std::string() : stories_path});
        const std::vector<std::string> names = o->recipes.empty() ? lowbit::recipe_names() : o->recipes;
        const std::vector<variant> vs = variants(names);
        const std::vector<eval_layer> synth = synthetic_layers(o->tokens);
        std::vector<eval_layer> stories;
        if (!o->no_stories) stories = stories_layers(stories_path, o->tokens);
        lowbit_cli::progress_bar bar(vs.size() * (synth.size() + stories.size()), o->quiet);
        std::uint64_t done = 0;
        std::string current;
        const std::function<void()> tick = [&] { bar.update(++done, current); };
        const bool text = !o->json;
        if (text) {
          fmt::print("Output SQNR (dB, higher is better) over all layers; calibration and evaluation on "
                     "disjoint {} tokens each.\n", o->tokens);
          fmt::print("  synthetic: the 7-layer LLM-like block of `lowbit demo` (hidden 512, ffn 1376, outlier channels)\n");
          if (!o->no_stories)
            fmt::print("  stories260K: its 35 real linear weights, with SYNTHETIC Gaussian activations "
                       "(3 outlier channels x20), not recorded ones\n");
          fmt::print("\n{:<30} {:<36} {:>7} {:>10} {:>12}\n", "recipe", "what", "bits/w", "synthetic", "stories260K");
        }
        nlohmann::json rows = nlohmann::json::array();
        for (const variant& v : vs) {
          current = v.label;
          const outcome a = evaluate(v, synth, tick);
          outcome b;
          if (!o->no_stories) b = evaluate(v, stories, tick);
          bar.finish();
          if (text) {
            fmt::print("{:<30} {:<36} {:>7.2f} {:>10} {:>12}\n", v.label, v.what, a.bits_per_weight,
                       lowbit_cli::db_text(a.sqnr_db), o->no_stories ? std::string("-") : lowbit_cli::db_text(b.sqnr_db));
            for (const std::string& w : {a.warnings, b.warnings})
              if (!w.empty()) fmt::print("    warning: {}\n", w);
          }
          rows.push_back({{"recipe", v.label}, {"what", v.what}, {"bits_per_weight", a.bits_per_weight},
                          {"synthetic_sqnr_db", lowbit_cli::db_json(a.sqnr_db)},
                          {"stories260k_sqnr_db", o->no_stories ? nlohmann::json(nullptr) : lowbit_cli::db_json(b.sqnr_db)}});
          if (!a.warnings.empty() || !b.warnings.empty()) rows.back()["warnings"] = a.warnings + b.warnings;
          std::fflush(stdout);
        }
        if (o->json) lowbit_cli::write_json("-", rows);
        if (!o->json_out.empty()) lowbit_cli::write_json(o->json_out, rows);  // atomic
        return 0;
      };
    }};

}  // namespace
