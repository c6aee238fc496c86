// `lowbit generate MODEL --prompt TEXT`: text generation with a Llama model (llama2.c .bin,
// Meta-name safetensors, a lowbit checkpoint file / output directory, run as stored, a GGUF
// file or a compressed-tensors directory). The prompt is encoded with a GGUF file's own
// tokenizer (tokenizer.ggml.*), else the tokenizer beside the model (tokenizer.json,
// tok512.bin or tokenizer.bin; --tokenizer overrides), prefilled in one pass (many-token kernels), then
// decoded token by token with a KV cache; text streams to stdout as it is decoded and the
// speeds go to stderr. A prompt that does not fit the context (max_seq_len - 1 tokens at
// most) is an error; generation ends at EOS, after --max-new-tokens, or when the context is
// full. Ctrl-C stops generation, ends the line and exits with status 130.
//
//   lowbit generate stories260K.bin --prompt "Once upon a time" --temperature 0
//   lowbit generate out_dir/ --prompt "Hello" --max-new-tokens 64 --top-p 0.9 --seed 7 --kv-cache fp8
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/error.hpp"
#include "lowbit/model/decode_stream.hpp"
#include "lowbit/model/generate.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "lowbit/model/text_tokenizer.hpp"
#include "registry.hpp"

namespace {

volatile std::sig_atomic_t generate_interrupted = 0;
extern "C" void generate_on_sigint(int) { generate_interrupted = 1; }

struct generate_options {
  std::string model, prompt, tokenizer, kv_cache = "f32", activations = "f32";
  int max_new_tokens = 128, top_k = 40, threads = 0;
  float temperature = 0.8f, top_p = 0.95f;
  std::uint64_t seed = 0;
  bool json = false;
};

int run_generate(const generate_options& o) {
  using namespace lowbit::model;
  if (o.max_new_tokens < 0) lowbit_cli::fail("--max-new-tokens must be >= 0, got " + std::to_string(o.max_new_tokens));
  if (o.threads < 0) lowbit_cli::fail("--threads must be >= 0, got " + std::to_string(o.threads));
  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling.temperature = o.temperature;
  g.sampling.top_k = o.top_k;
  g.sampling.top_p = o.top_p;
  g.sampling.seed = o.seed;
  g.sampling.validate();  // before the model loads: bad flags fail fast
  g.kv_cache = parse_kv_cache_type(o.kv_cache);
  if (o.threads > 0) lowbit::set_num_threads(o.threads);
  QuantizedLoadOptions load;
  load.input = lowbit_cli::parse_flag("--activations", o.activations, lowbit::parse_activation_dtype);

  const LlamaModel model = load_llama_model(o.model, load);
  const TextTokenizer tok =
      o.tokenizer.empty()
          ? TextTokenizer::for_model(o.model, model.config().vocab_size, "name the tokenizer file with --tokenizer")
          : TextTokenizer::load(o.tokenizer, model.config().vocab_size);
  const std::vector<int> prompt = tok.encode(o.prompt);
  g.stop_ids = tok.stop_ids(eos_ids_beside(o.model));
  check_prompt(model.config(), prompt);

  // Streaming: each token's text as soon as it is complete (DecodeStream decodes a short
  // window, not the whole generation again per token).
  DecodeStream<TextTokenizer> stream(tok);
  if (!o.json) {
    std::fputs(o.prompt.c_str(), stdout);
    std::fflush(stdout);
    g.on_token = [&](int id) {
      const std::string piece = stream.push(id);
      if (piece.empty()) return;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    };
  }
  generate_interrupted = 0;
  g.should_stop = [] { return generate_interrupted != 0; };
  const auto previous = std::signal(SIGINT, generate_on_sigint);
  GenerateResult r;
  try {
    r = generate(model, prompt, g);
  } catch (...) {
    std::signal(SIGINT, previous);
    throw;
  }
  std::signal(SIGINT, previous);
  if (o.json) {
    nlohmann::ordered_json j;
    j["prompt_ids"] = r.prompt_ids;
    j["generated_ids"] = r.generated_ids;
    j["text"] = tok.decode(r.generated_ids);
    j["prefill_tokens_per_second"] = r.prefill_tokens_per_second();
    j["decode_tokens_per_second"] = r.decode_tokens_per_second();
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    std::fputs(stream.finish().c_str(), stdout);  // a held-back incomplete character
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }
  fmt::print(stderr, "prompt     {} tokens, {:.1f} tokens/s\ngeneration {} tokens, {:.1f} tokens/s ({}; kv cache {})\n",
             r.prompt_ids.size(), r.prefill_tokens_per_second(), r.generated_ids.size(), r.decode_tokens_per_second(),
             to_string(r.reason), to_string(g.kv_cache));
  return r.reason == stop_reason::interrupted ? 130 : 0;
}

lowbit_cli::registration generate_registration{
    "generate", "Generate text with a Llama model or a lowbit checkpoint (prefill, then KV-cached decoding)", 55,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<generate_options>();
      sub.add_option("MODEL", o->model, "llama2.c .bin, Meta-name .safetensors, a lowbit checkpoint (file or directory), a .gguf file, or a Hugging Face / compressed-tensors directory")
          ->required();
      sub.add_option("--prompt", o->prompt, "Prompt text")->required();
      sub.add_option("--max-new-tokens,-n", o->max_new_tokens, "Most tokens to generate")->capture_default_str();
      sub.add_option("--temperature", o->temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
      sub.add_option("--top-k", o->top_k, "Sample from the K most likely tokens (0 = all)")->capture_default_str();
      sub.add_option("--top-p", o->top_p, "Nucleus: the most likely tokens holding probability P, in (0, 1]")
          ->capture_default_str();
      sub.add_option("--seed", o->seed, "Random seed (the same seed gives the same text)")->capture_default_str();
      sub.add_option("--threads", o->threads, "Kernel threads (default: hardware threads)");
      sub.add_option("--kv-cache", o->kv_cache, "KV cache storage: f32, f16, bf16, fp8 (E4M3, per-head scales)")
          ->capture_default_str();
      sub.add_option("--tokenizer", o->tokenizer, "Tokenizer file: tokenizer.json, tok512.bin, or a .gguf file's own (default: a GGUF model's own, else the one beside the model)");
      sub.add_option("--activations", o->activations, "Input of a quantized model's weight-only layers: f32 (as computed), bf16 (rounded; a faster prefill where bf16 tiles run: AMX-BF16, AVX512-BF16) or f16 (rounded to IEEE half)")
          ->capture_default_str();
      sub.add_flag("--json", o->json, "Print one JSON object instead of streaming text");
      return [o]() { return run_generate(*o); };
    }};

}  // namespace
