#pragma once
// Helpers shared by the quantize / inspect / compare subcommands: the scheme flags, which
// tensors get quantized, a progress bar on stderr, byte/number formatting and JSON output.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/error.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/quant/scheme.hpp"
#include "lowbit/quant/spec_text.hpp"
#include "registry.hpp"  // lowbit_cli::fail
#include "spec_flags.hpp"

namespace lowbit_cli {

// ---- paths (the program's, plain string operations) ------------------------------------

// "dir/x" -> "dir", "x" -> ".", "/x" -> "/".
inline std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
// "dir/x" -> "x".
inline std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---- scheme flags ---------------------------------------------------------------------



// Calibration: the fp32 model's own forward pass over the first documents of a token file.
struct calibration_flags {
  std::string file;           // u16 token ids (llama2.c pretokenized layout)
  long docs = 64;             // documents from the start of the file (< 0: all)
  std::int64_t tokens = -1;   // stop after this many token positions (< 0: no bound)

  void add_to(CLI::App& sub, const char* what) {
    sub.add_option("--calib", file, what);
    sub.add_option("--calib-docs", docs, "Calibration documents from the start of --calib (-1 = all)")->capture_default_str();
    sub.add_option("--calib-tokens", tokens, "Stop calibration after this many token positions (-1 = no bound)");
  }
  bool enabled() const { return !file.empty(); }
};

// Statistics of every linear layer's input, recorded by running the fp32 model (any input
// open_model() reads: a Hugging Face directory, safetensors, llama2.c .bin). The model's
// linears are fp32 copies while it runs; it is freed before returning: only the per-layer
// statistics are kept.
struct calibration_data {
  lowbit::model::CalibrationRecorder recorder;
  std::string note;  // what the tables print
};

inline calibration_data record_calibration(const std::string& model_path, const calibration_flags& f,
                                           std::int64_t sample_rows) {
  if (f.docs == 0 || f.tokens == 0) lowbit_cli::fail("--calib-docs / --calib-tokens: need at least one document and token");
  lowbit::check_input_file(f.file, "--calib");
  std::shared_ptr<const lowbit::model::ModelSource> source;
  try {
    source = lowbit::model::open_model(model_path);
  } catch (const lowbit::error& e) {
    lowbit_cli::fail(std::string("--calib supports Llama-architecture checkpoints only: ") + e.what());
  }
  const lowbit::model::LlamaModel model(source);
  const std::vector<int> tokens = lowbit::model::read_u16_tokens(f.file);
  lowbit::CalibrationOptions co;
  co.max_sample_rows = sample_rows;  // recorded rows: output SQNR, activation-aware smoothing
  lowbit::model::CalibrationRun run;
  run.max_docs = f.docs;
  run.max_tokens = f.tokens;
  run.bos = model.config().bos();
  calibration_data d{lowbit::model::calibrate(model, tokens, co, run), {}};
  d.note = fmt::format("{} tokens of {} (fp32 forward pass, --calib-docs {}{})", d.recorder.tokens(), f.file, f.docs,
                       f.tokens >= 0 ? fmt::format(", --calib-tokens {}", f.tokens) : std::string());
  return d;
}

// The safetensors model at `path` for `lowbit <command>` (quantize, compare and inspect read
// safetensors only). A llama2.c .bin or a GGUF given to them would otherwise be parsed as
// safetensors and fail on a meaningless header length.
inline lowbit::SafetensorsModel open_safetensors_input(const std::string& path, const std::string& command) {
  const std::string reads = "; `lowbit " + command +
                            "` reads safetensors (a .safetensors file, a model.safetensors.index.json or a Hugging "
                            "Face model directory), while eval, generate and bench read ";
  if (ends_with(path, ".bin")) lowbit_cli::fail(path + ": a llama2.c checkpoint" + reads + ".bin files as they are");
  if (ends_with(path, ".gguf")) lowbit_cli::fail(path + ": a GGUF file" + reads + "GGUF files as they are");
  return lowbit::open_safetensors_model(path);
}

// Every file a command reads for `model` opened from `model_path` (index, shards, the
// config.json beside them, which --calib reads) plus `extra` (e.g. the --calib file): what
// lowbit::check_outputs() compares the outputs against, before any work starts.
inline std::vector<std::string> model_input_files(const lowbit::SafetensorsModel& model, std::vector<std::string> extra = {}) {
  std::vector<std::string> in = model.files();
  for (const std::string& f : model.files()) in.push_back(lowbit_cli::parent_directory(f) + "/config.json");
  in.insert(in.end(), extra.begin(), extra.end());
  return in;
}

// The explicit scheme flags (same meaning as in `lowbit eval`).
struct scheme_flags {
  std::string recipe;
  std::string weights;           // element format; empty = int4
  int group = 128;               // > 0 group size; 0 per channel; -1 per tensor
  std::string scale = "fp32";    // fp32 | m1 | m2 | mx | nvfp4
  bool asymmetric = false;
  std::string activations;       // per-token activation format of the layers
  std::string smooth;            // auto | ALPHA (needs calibration)
  std::string smooth_scope;      // norm | layer (empty: the recipe's; --smooth: norm)
  int lorc = 0;                  // LoRC rank
  bool gptq = false;             // needs calibration
  CLI::Option* group_option = nullptr;  // to tell an explicit --group / --scale from the default
  CLI::Option* scale_option = nullptr;

  void add_to(CLI::App& sub) {
    sub.add_option("--recipe", recipe, "Named recipe (w8a8-fp8, w8a8-int8, w4a16-int4, w4a16-sqplus, w4a8-int, w4a8-fp, mxfp4, nvfp4)");
    sub.add_option("--weights", weights, "Weight format: int8, int4, fp8/e4m3, e5m2, fp6/e3m2, e2m3, fp4/e2m1");
    group_option = sub.add_option("--group", group, "Group size along K (0 = per channel, -1 = per tensor)")->capture_default_str();
    scale_option = sub.add_option("--scale", scale, "Scale rule: fp32, m1, m2, mx, nvfp4")->capture_default_str();
    sub.add_flag("--asymmetric", asymmetric, "Integer weights with zero points");
    sub.add_option("--activations", activations, "Per-token activation format of the layers: int8, fp8/e4m3, e5m2");
    sub.add_option("--smooth", smooth, "SmoothQuant smoothing: auto (SmoothQuant+ alpha search) or a fixed alpha in [0, 1] (needs --calib)");
    sub.add_option("--smooth-scope", smooth_scope,
                   "Smoothing vectors: norm (one per norm, shared by q/k/v and by gate/up, none on o_proj/down_proj; folds "
                   "into the norms, so compressed-tensors export works) or layer (one per linear; not exportable). Default: "
                   "the recipe's (w8a8-int8 and --smooth: norm; w4a16-sqplus: layer, norm with --format compressed-tensors)");
    sub.add_option("--lorc", lorc, "LoRC low-rank error compensation of this rank (0 = off / the recipe's)");
    sub.add_flag("--gptq", gptq, "GPTQ weight rounding (needs --calib)");
  }
  // --weights / --group / --scale / --asymmetric, the ones given (spec_flags.hpp).
  weight_spec_flags spec_flags() const {
    weight_spec_flags w;
    if (!weights.empty()) w.weights = weights;
    if (group_option && group_option->count() > 0) w.group = group;
    if (scale_option && scale_option->count() > 0) w.scale = scale;
    w.asymmetric = asymmetric;
    return w;
  }
};

struct resolved_scheme {
  lowbit::LinearRecipe recipe;  // what quantize_linear() runs on every layer
  std::string label;            // what tables and metadata call it
};

// The recipe of the flags: a named recipe (algo/recipes.hpp) or one built from the explicit
// flags, with --gptq / --smooth / --lorc applied on top. Recipes that need calibration (GPTQ,
// smoothing) are refused unless `calibrated`.
inline resolved_scheme resolve(const scheme_flags& f, bool calibrated) {
  const weight_spec_flags spec_flags = f.spec_flags();
  if (!f.recipe.empty() && (spec_flags.weights || spec_flags.group || spec_flags.scale || spec_flags.asymmetric ||
                            !f.activations.empty()))
    lowbit_cli::fail("--recipe and --weights/--group/--scale/--asymmetric/--activations are alternatives; give one");
  if (f.lorc < 0) lowbit_cli::fail("--lorc: rank must be >= 0, got " + std::to_string(f.lorc));
  resolved_scheme r;
  lowbit::LinearRecipe& rec = r.recipe;
  if (!f.recipe.empty()) {
    rec = lowbit::recipe_from_name(f.recipe);
    rec.weight = lowbit::normalized_spec(rec.weight, f.recipe);
    r.label = f.recipe + " (" + lowbit::to_string(rec.weight) + ")";
  } else {
    rec.name = "custom";
    // The flags compose spec text, which the library's parser validates (an explicit --group
    // that mx / nvfp4 would replace is refused there, not silently changed).
    lowbit::QuantSpec& q = rec.weight;
    q = spec_of(spec_flags);
    if (!f.activations.empty())
      rec.activations = lowbit::ActivationQuant{parse_flag("--activations", f.activations, lowbit::parse_act_format), 0};
    r.label = lowbit::to_string(q);
    if (rec.activations) r.label += " a:" + std::string(lowbit::to_string(rec.activations->format));
  }
  if (f.lorc > 0) rec.lorc_rank = f.lorc;
  if (f.gptq) rec.method = lowbit::weight_method::gptq;
  if (f.smooth == "auto") {
    rec.smoothing = lowbit::smoothing_mode::search;
  } else if (!f.smooth.empty()) {
    char* end = nullptr;
    const float a = std::strtof(f.smooth.c_str(), &end);
    if (end == f.smooth.c_str() || *end != '\0' || !(a >= 0.0f && a <= 1.0f))
      lowbit_cli::fail("--smooth: expected auto or an alpha in [0, 1], got '" + f.smooth + "'");
    rec.smoothing = lowbit::smoothing_mode::fixed;
    rec.alpha = a;
  }
  if (!f.smooth.empty()) rec.scope = lowbit::smoothing_scope::per_norm;
  if (f.smooth_scope == "layer") {
    rec.scope = lowbit::smoothing_scope::per_layer;
  } else if (f.smooth_scope == "norm") {
    rec.scope = lowbit::smoothing_scope::per_norm;
  } else if (!f.smooth_scope.empty()) {
    lowbit_cli::fail("--smooth-scope: expected norm or layer, got '" + f.smooth_scope + "'");
  }
  if (!f.smooth_scope.empty() && rec.smoothing == lowbit::smoothing_mode::none)
    lowbit_cli::fail("--smooth-scope " + f.smooth_scope + ": the scheme has no smoothing (a recipe with it, or --smooth)");
  const bool scope_changed = !f.recipe.empty() && !f.smooth_scope.empty() && f.smooth.empty() &&
                             rec.scope != lowbit::recipe_from_name(f.recipe).scope;
  if (!f.recipe.empty() && (f.gptq || !f.smooth.empty() || f.lorc > 0 || scope_changed)) rec.name += "+";  // modified recipe
  if (f.gptq) r.label += " gptq";
  if (!f.smooth.empty()) r.label += " smooth=" + f.smooth;
  if (scope_changed || (!f.smooth.empty() && !f.smooth_scope.empty())) r.label += " smooth-scope=" + f.smooth_scope;
  if (f.lorc > 0 || (f.recipe.empty() && rec.lorc_rank > 0)) r.label += " lorc" + std::to_string(rec.lorc_rank);
  if (rec.needs_calibration() && !calibrated) {
    const std::string what = !f.recipe.empty() && lowbit::recipe_from_name(f.recipe).needs_calibration()
                                 ? "--recipe " + f.recipe
                                 : std::string(f.gptq ? "--gptq" : "--smooth");
    lowbit_cli::fail(what + " needs calibration (GPTQ or smoothing): give --calib FILE (.txt or .jsonl "
                                "text, or .u16 token ids) with a Llama-architecture input, or use a round-to-nearest scheme "
                                "(w8a8-fp8, mxfp4, nvfp4, or --weights/--group/--scale)");
  }
  return r;
}

// The weight a QuantizedLinear effectively applies to x (activation quantization aside):
// (W_hat + U V) diag(1/s), to compare with the original weight.
inline lowbit::RowMatrixXf effective_weight(const lowbit::QuantizedLinear& layer) { return layer.effective_weight(); }

// ---- which tensors are quantized --------------------------------------------------------

// Default rule: rank-2 tensors named *.weight whose name does not mark an embedding, a norm
// or the classifier (contains "embed", "norm", "lm_head", or is "output.weight"), stored in a
// float dtype. --include keeps only names matching the regex; --exclude drops matches.
struct tensor_filter {
  std::string include, exclude;

  void add_to(CLI::App& sub) {
    sub.add_option("--include", include, "Quantize only eligible tensors whose name matches this regex");
    sub.add_option("--exclude", exclude, "Do not quantize tensors whose name matches this regex");
  }
  bool selects(const lowbit::TensorView& t) const {
    const std::string& n = t.name;
    const auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
    const bool floaty = t.dtype == lowbit::tensor_dtype::f32 || t.dtype == lowbit::tensor_dtype::f16 ||
                        t.dtype == lowbit::tensor_dtype::bf16 || t.dtype == lowbit::tensor_dtype::f64;
    if (t.rank() != 2 || !floaty || t.shape[0] == 0 || t.shape[1] == 0) return false;
    if (n.size() < 7 || n.compare(n.size() - 7, 7, ".weight") != 0) return false;
    if (has("embed") || has("norm") || has("lm_head") || n == "output.weight") return false;
    if (!include.empty() && !std::regex_search(n, regex(include, "--include"))) return false;
    if (!exclude.empty() && std::regex_search(n, regex(exclude, "--exclude"))) return false;
    return true;
  }

 private:
  static std::regex regex(const std::string& text, const char* flag) {
    try {
      return std::regex(text);
    } catch (const std::regex_error& e) {
      lowbit_cli::fail(std::string(flag) + ": invalid regex '" + text + "': " + e.what());
    }
  }
};

// ---- output ------------------------------------------------------------------------------

inline std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

// Text from a file (tensor names, metadata) made safe for a terminal: control characters
// (C0, DEL, and the C1 range's UTF-8 encodings) and backslashes are escaped, so a hostile name
// cannot move the cursor, clear the screen or fake other lines.
inline std::string printable(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(s[i + 1]) <= 0x9F;
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
    else if (c1) out += fmt::format("\\u{:04x}", static_cast<unsigned char>(s[++i]));
    else out += static_cast<char>(c);
  }
  return out;
}

inline std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// SQNR in dB as JSON: a number, null when +inf (an exact result), else "nan" / "-inf" (a
// NaN in the result, or a zero reference): never mistaken for exact.
inline nlohmann::json db_json(double v) {
  if (std::isfinite(v)) return v;
  if (v > 0) return nullptr;
  return std::isnan(v) ? "nan" : "-inf";
}
inline std::string db_text(double v) {
  if (std::isfinite(v)) return fmt::format("{:.2f}", v);
  return v > 0 ? "exact" : std::isnan(v) ? "nan" : "-inf";
}

// Writes a JSON report atomically ("-" = stdout).
inline void write_json(const std::string& path, const nlohmann::json& j) {
  const std::string text = j.dump(2) + "\n";
  if (path == "-") {
    std::fputs(text.c_str(), stdout);
    return;
  }
  lowbit::write_file_atomically(path, text);
}

// A one-line progress bar on stderr, drawn only when stderr is a terminal and not --quiet.
class progress_bar {
 public:
  progress_bar(std::uint64_t total, bool quiet) : total_(total), enabled_(!quiet && ::isatty(2) == 1) {}
  ~progress_bar() { finish(); }
  void update(std::uint64_t done, const std::string& what) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;  // keep the terminal calm
    last_ = now;
    const int width = 30;
    const double frac = total_ == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total_);
    const int filled = static_cast<int>(frac * width);
    std::string label = what.size() > 40 ? "..." + what.substr(what.size() - 37) : what;
    std::fprintf(stderr, "\r[%s%s] %3d%% %-40s", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<int>(frac * 100), label.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\r%*s\r", 80, "");
    drawn_ = false;
  }

 private:
  std::uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace lowbit_cli
