#pragma once
// The export step shared by `lowbit export` and `lowbit quantize --format`: a lowbit
// checkpoint (or an unquantized model) written as GGUF or compressed-tensors through the
// library's exporters, with the one summary line both commands print. Exact or refused: a
// refusal throws with the layer named, and the exporter writes nothing (its output is atomic:
// a GGUF file, or a compressed-tensors directory built beside OUT and renamed into place).
// The rules are the library's (lowbit::model::exportable), which `quantize --format` asks
// before quantizing.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/ct_export.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "registry.hpp"  // lowbit_cli::fail

namespace lowbit_cli {

struct export_request {
  std::string input, output, format, float_type = "keep", name;
  bool allow_lossy = false;  // requantize what has no exact form, reporting the added error
  // The input as the summary line, warnings and errors name it (empty: `input`), e.g. when
  // `input` is a temporary the user never named.
  std::string shown_input;
  std::string shown_output;     // likewise for the output (empty: `output`)
  std::FILE* summary = stdout;  // where the summary line goes
  std::string* summary_line = nullptr;  // set: the summary line is stored here, not printed
};

// Fails unless `format` is one the exporters write; `cmd` prefixes the message.
inline void check_export_format(const std::string& format, const std::string& cmd) {
  if (format != "gguf" && format != "compressed-tensors")
    fail(cmd + ": unknown --format '" + format + "' (gguf, compressed-tensors)");
}

// `text` with every `input` replaced by `shown`.
inline std::string export_shown(std::string text, const std::string& input, const std::string& shown) {
  if (input.empty() || shown.empty() || input == shown) return text;
  for (std::size_t at = text.find(input); at != std::string::npos; at = text.find(input, at + shown.size()))
    text.replace(at, input.size(), shown);
  return text;
}

inline int run_export_named(const export_request& o, const std::string& shown);

// --allow-lossy's report on stderr: one line per requantized layer (what it became, the
// added error against the layer's effective weight, why the exact form was refused), then a
// summary; the summary line's suffix is returned.
inline std::string report_lossy(const std::vector<lowbit::model::LossyLayer>& lossy, const export_request& o,
                                const std::string& shown) {
  if (lossy.empty()) return "";
  double worst = INFINITY, worst_rel = 0.0;
  for (const auto& l : lossy) {
    fmt::print(stderr, "lossy: layer {} -> {}: SQNR {:.2f} dB, relative error {:.6f} (exact export refused: {})\n", l.layer,
               l.target, l.sqnr_db, l.rel_error, export_shown(export_shown(l.refusal, o.input, shown), o.output, o.shown_output));
    worst = std::min(worst, l.sqnr_db);
    worst_rel = std::max(worst_rel, l.rel_error);
  }
  fmt::print(stderr, "lossy: {} layer{} requantized (--allow-lossy); lowest SQNR {:.2f} dB, largest relative error {:.6f}\n",
             lossy.size(), lossy.size() == 1 ? "" : "s", worst, worst_rel);
  return fmt::format("; {} layer{} requantized (--allow-lossy, lowest SQNR {:.2f} dB)", lossy.size(), lossy.size() == 1 ? "" : "s",
                     worst);
}

inline void print_summary(const export_request& o, const std::string& line) {
  if (o.summary_line)
    *o.summary_line = line;
  else
    fmt::print(o.summary, "{}", line);
}

inline int run_export(const export_request& o) {
  check_export_format(o.format, "export");
  const std::string& shown = o.shown_input.empty() ? o.input : o.shown_input;
  try {
    return run_export_named(o, shown);
  } catch (const lowbit::error& e) {
    if (shown == o.input && o.shown_output.empty()) throw;
    throw lowbit::error(export_shown(export_shown(e.what(), o.input, shown), o.output, o.shown_output));
  }
}

inline int run_export_named(const export_request& o, const std::string& shown) {
  if (o.format == "compressed-tensors") {
    if (o.float_type != "keep" || !o.name.empty())
      fail("export: --float-type and --name apply to --format gguf only");
    lowbit::model::CtExportOptions copt;
    copt.allow_lossy = o.allow_lossy;
    const lowbit::model::CtExportReport rep = lowbit::model::export_compressed_tensors(o.input, o.output, copt);
    for (const std::string& w : rep.warnings) fmt::print(stderr, "warning: {}\n", export_shown(export_shown(w, o.input, shown), o.output, o.shown_output));
    std::string formats;
    for (const auto& [f, n] : rep.layers_by_format) formats += (formats.empty() ? "" : ", ") + fmt::format("{} {}", n, f);
    const std::string lossy = report_lossy(rep.lossy, o, shown);
    print_summary(o, fmt::format("{} -> {} (compressed-tensors, layers: {}, {} unquantized; norms folded: {}; tokenizer: {}{}{})\n", shown,
               o.shown_output.empty() ? o.output : o.shown_output, formats, rep.float_linears, rep.folded_norms, rep.tokenizer ? "copied" : "none",
               rep.permuted_qk ? "; q/k rows reordered to Hugging Face order" : "", lossy));
    return 0;
  }
  lowbit::model::GgufExportOptions opt;
  opt.float_type = o.float_type;
  opt.name = o.name;
  opt.allow_lossy = o.allow_lossy;
  const lowbit::model::GgufExportReport rep = lowbit::model::export_gguf(o.input, o.output, opt);
  for (const std::string& w : rep.warnings) fmt::print(stderr, "warning: {}\n", export_shown(export_shown(w, o.input, shown), o.output, o.shown_output));
  std::string types;
  for (const auto& [t, n] : rep.tensors_by_type) types += (types.empty() ? "" : ", ") + fmt::format("{} {}", n, t);
  const std::string lossy = report_lossy(rep.lossy, o, shown);
  print_summary(o, fmt::format("{} -> {} (GGUF {}, tensors: {}; tokenizer: {}{}{})\n", shown,
             o.shown_output.empty() ? o.output : o.shown_output, rep.architecture, types,
             rep.tokenizer ? rep.tokenizer_model : std::string("none"),
             rep.permuted_qk ? "; q/k rows reordered for llama.cpp's rope" : "", lossy));
  return 0;
}

}  // namespace lowbit_cli
