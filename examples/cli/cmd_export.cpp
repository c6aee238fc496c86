// `lowbit export IN -o OUT --format gguf [--float-type keep|f32|f16|bf16] [--name NAME]`:
// a lowbit checkpoint (file or output directory; an unquantized model too) as a llama.cpp
// GGUF file, architecture llama (qwen2 when the config says so). The mapping is exact or
// refused: a layer with no exact GGUF type is named with the missing feature and nothing is
// written (docs/interop.md has the table). compressed-tensors is not written yet.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "lowbit/error.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "registry.hpp"

namespace {

struct export_options {
  std::string input, output, format, float_type = "keep", name;
};

int run_export(const export_options& o) {
  if (o.format != "gguf") {
    if (o.format == "compressed-tensors")
      lowbit::detail::fail("export: --format compressed-tensors is not implemented yet (only gguf)");
    lowbit::detail::fail("export: unknown --format '" + o.format + "' (gguf)");
  }
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
    "export", "Write a lowbit checkpoint as a llama.cpp GGUF file (exact, or refused naming the layer)", 25,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto opt = std::make_shared<export_options>();
      sub.add_option("IN", opt->input, "lowbit checkpoint (.safetensors or output directory), or an unquantized model")
          ->required();
      sub.add_option("-o,--output", opt->output, "Output file (.gguf)")->required();
      sub.add_option("--format", opt->format, "Output format: gguf")->required();
      sub.add_option("--float-type", opt->float_type,
                     "Float matrices (embeddings, unquantized linears): keep (stored dtype), f32, f16, bf16")
          ->capture_default_str();
      sub.add_option("--name", opt->name, "general.name (default: the input's file name)");
      return [opt]() { return run_export(*opt); };
    }};

}  // namespace
