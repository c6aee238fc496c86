// `lowbit export IN -o OUT --format gguf [--float-type keep|f32|f16|bf16] [--name NAME]`:
// a lowbit checkpoint (file or output directory; an unquantized model too) as a llama.cpp
// GGUF file, architecture llama (qwen2 when the config says so).
// `lowbit export IN -o OUT_DIR --format compressed-tensors`: a lowbit checkpoint as a
// compressed-tensors Hugging Face directory (vLLM), smoothing folded into the norms.
// The mapping is exact or refused: a layer with no exact form is named with the missing
// feature and nothing is written (docs/interop.md has the tables).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "lowbit/error.hpp"
#include "lowbit/model/ct_export.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "registry.hpp"

namespace {

struct export_options {
  std::string input, output, format, float_type = "keep", name;
};

int run_export(const export_options& o) {
  if (o.format == "compressed-tensors") {
    if (o.float_type != "keep" || !o.name.empty())
      lowbit_cli::fail("export: --float-type and --name apply to --format gguf only");
    const lowbit::model::CtExportReport rep = lowbit::model::export_compressed_tensors(o.input, o.output);
    for (const std::string& w : rep.warnings) fmt::print(stderr, "warning: {}\n", w);
    std::string formats;
    for (const auto& [f, n] : rep.layers_by_format) formats += (formats.empty() ? "" : ", ") + fmt::format("{} {}", n, f);
    fmt::print("{} -> {} (compressed-tensors, layers: {}, {} unquantized; norms folded: {}; tokenizer: {}{})\n", o.input,
               o.output, formats, rep.float_linears, rep.folded_norms, rep.tokenizer ? "copied" : "none",
               rep.permuted_qk ? "; q/k rows reordered to Hugging Face order" : "");
    return 0;
  }
  if (o.format != "gguf") lowbit_cli::fail("export: unknown --format '" + o.format + "' (gguf, compressed-tensors)");
  lowbit::model::GgufExportOptions opt;
  opt.float_type = o.float_type;
  opt.name = o.name;
  const lowbit::model::GgufExportReport rep = lowbit::model::export_gguf(o.input, o.output, opt);
  for (const std::string& w : rep.warnings) fmt::print(stderr, "warning: {}\n", w);
  std::string types;
  for (const auto& [t, n] : rep.tensors_by_type) types += (types.empty() ? "" : ", ") + fmt::format("{} {}", n, t);
  fmt::print("{} -> {} (GGUF {}, tensors: {}; tokenizer: {}{})\n", o.input, o.output, rep.architecture, types,
             rep.tokenizer ? rep.tokenizer_model : std::string("none"),
             rep.permuted_qk ? "; q/k rows reordered for llama.cpp's rope" : "");
  return 0;
}

lowbit_cli::registration export_registration{
    "export", "Write a lowbit checkpoint as GGUF (llama.cpp) or compressed-tensors (vLLM), exact or refused naming the layer", 25,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto opt = std::make_shared<export_options>();
      sub.add_option("IN", opt->input, "lowbit checkpoint (.safetensors or output directory), or an unquantized model")
          ->required();
      sub.add_option("-o,--output", opt->output, "Output file (.gguf) or directory (compressed-tensors)")->required();
      sub.add_option("--format", opt->format, "Output format: gguf or compressed-tensors")->required();
      sub.add_option("--float-type", opt->float_type,
                     "Float matrices (embeddings, unquantized linears): keep (stored dtype), f32, f16, bf16")
          ->capture_default_str();
      sub.add_option("--name", opt->name, "general.name (default: the input's file name)");
      return [opt]() { return run_export(*opt); };
    }};

}  // namespace
