// `lowbit export IN -o OUT --format gguf [--float-type keep|f32|f16|bf16] [--name NAME]`:
// a lowbit checkpoint (file or output directory; an unquantized model too) as a llama.cpp
// GGUF file, architecture llama (qwen2 when the config says so).
// `lowbit export IN -o OUT_DIR --format compressed-tensors`: a lowbit checkpoint as a
// compressed-tensors Hugging Face directory (vLLM), smoothing folded into the norms.
// The mapping is exact or refused: a layer with no exact form is named with the missing
// feature and nothing is written (docs/interop.md has the tables).
#include <memory>
#include <string>

#include "export_formats.hpp"
#include "registry.hpp"

namespace {

lowbit_cli::registration export_registration{
    "export", "Write a lowbit checkpoint as GGUF (llama.cpp) or compressed-tensors (vLLM), exact or refused naming the layer", 25,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto opt = std::make_shared<lowbit_cli::export_request>();
      sub.add_option("IN", opt->input, "lowbit checkpoint (.safetensors or output directory), or an unquantized model")
          ->required();
      sub.add_option("-o,--output", opt->output, "Output file (.gguf) or directory (compressed-tensors)")->required();
      sub.add_option("--format", opt->format, "Output format: gguf or compressed-tensors")->required();
      sub.add_option("--float-type", opt->float_type,
                     "Float matrices (embeddings, unquantized linears): keep (stored dtype), f32, f16, bf16")
          ->capture_default_str();
      sub.add_option("--name", opt->name, "general.name (default: the input's file name)");
      sub.add_flag("--allow-lossy", opt->allow_lossy,
                   "A layer with no exact form in the format is requantized from its effective weight (GGUF: Q8_0 for 6+ "
                   "bits, else Q4_0; compressed-tensors: int8 per channel or int4 group 128) instead of refused; each "
                   "such layer's added error (SQNR, relative error) is reported on stderr");
      return [opt]() { return lowbit_cli::run_export(*opt); };
    }};

}  // namespace
