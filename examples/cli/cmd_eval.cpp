// `lowbit eval MODEL`: perplexity of a Llama-architecture model (llama2.c .bin or Meta-name
// safetensors) in fp32 or with its linear layers quantized as a scheme says, following
// ../shared/data/stories260k/README.md (documents split at BOS, causal from position 0).
//
//   lowbit eval stories260K.bin --tokens eval.u16 [--max-docs N] [--threads N] [--json]
//   lowbit eval stories260K.bin --tokens eval.u16 --weights int4 --group 32 --scale fp32
//   lowbit eval stories260K.bin --tokens eval.u16 --weights int8 --group 0 --activations int8
//   lowbit eval stories260K.bin --text "One day, ..." --tokenizer tok512.bin
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/detail/threads.hpp"
#include "lowbit/error.hpp"
#include "lowbit/model.hpp"
#include "registry.hpp"

namespace {

using namespace lowbit::model;

struct eval_options {
  std::string model, tokens, text, tokenizer, recipe, calib;
  std::string weights, scale = "fp32", activations, backend = "auto", kv_cache = "f32";
  int group = 128;
  bool asymmetric = false, quantize_classifier = false, json = false;
  long max_docs = -1;
  int threads = 0;
  long calib_docs = 64;
};

lowbit::element_format parse_element_format(const std::string& s) {
  using lowbit::element_format;
  if (s == "int8") return element_format::int8;
  if (s == "int4") return element_format::int4;
  if (s == "fp8" || s == "e4m3" || s == "float8_e4m3fn") return element_format::float8_e4m3fn;
  if (s == "e5m2" || s == "float8_e5m2") return element_format::float8_e5m2;
  if (s == "fp6" || s == "e3m2" || s == "float6_e3m2fn") return element_format::float6_e3m2fn;
  if (s == "e2m3" || s == "float6_e2m3fn") return element_format::float6_e2m3fn;
  if (s == "fp4" || s == "e2m1" || s == "float4_e2m1fn") return element_format::float4_e2m1fn;
  lowbit::detail::fail("--weights: unknown format '" + s + "' (int8, int4, fp8/e4m3, e5m2, fp6/e3m2, e2m3, fp4/e2m1)");
}

lowbit::act_format parse_act_format(const std::string& s) {
  if (s == "int8") return lowbit::act_format::int8;
  if (s == "fp8" || s == "e4m3" || s == "float8_e4m3fn") return lowbit::act_format::float8_e4m3fn;
  if (s == "e5m2" || s == "float8_e5m2") return lowbit::act_format::float8_e5m2;
  lowbit::detail::fail("--activations: unknown format '" + s + "' (int8, fp8/e4m3, e5m2, f16, bf16)");
}

// The explicit scheme flags as an EvalScheme (weights / group / scale / activations).
EvalScheme scheme_from_flags(const eval_options& o) {
  EvalScheme s;
  if (!o.recipe.empty()) {
    s.recipe = lowbit::recipe_from_name(o.recipe);
    s.name = o.recipe;
    s.quantize_classifier = o.quantize_classifier;
    s.backend = o.backend == "fake" ? linear_backend::fake_quant : linear_backend::automatic;
    return s;
  }
  if (o.weights.empty() && o.activations.empty()) return s;
  s.name = "custom";
  if (!o.weights.empty()) {
    lowbit::QuantSpec q;
    q.format = parse_element_format(o.weights);
    if (o.group > 0) {
      q.gran = lowbit::granularity::per_group;
      q.group_size = o.group;
    } else {
      q.gran = o.group == 0 ? lowbit::granularity::per_channel : lowbit::granularity::per_tensor;
    }
    q.symmetric = !o.asymmetric;
    if (o.scale == "fp32") q.constraint = lowbit::scale_constraint::none;
    else if (o.scale == "m1") q.constraint = lowbit::scale_constraint::pow2_m1;
    else if (o.scale == "m2") q.constraint = lowbit::scale_constraint::pow2_m2;
    else if (o.scale == "mx") q.constraint = lowbit::scale_constraint::mx;
    else if (o.scale == "nvfp4") q.constraint = lowbit::scale_constraint::nvfp4;
    else lowbit::detail::fail("--scale: unknown scale '" + o.scale + "' (fp32, m1, m2, mx, nvfp4)");
    s.weights = lowbit::normalized_spec(q, "--weights");
  }
  if (o.activations == "f16" || o.activations == "fp16") s.input = lowbit::activation_dtype::f16;
  else if (o.activations == "bf16") s.input = lowbit::activation_dtype::bf16;
  else if (!o.activations.empty()) s.activations = parse_act_format(o.activations);
  if (o.backend == "auto") s.backend = linear_backend::automatic;
  else if (o.backend == "packed") s.backend = linear_backend::packed;
  else if (o.backend == "fake") s.backend = linear_backend::fake_quant;
  else lowbit::detail::fail("--backend: unknown backend '" + o.backend + "' (auto, packed, fake)");
  s.quantize_classifier = o.quantize_classifier;
  return s;
}

std::string describe_scheme(const EvalScheme& s) {
  if (s.is_fp32()) return "fp32";
  if (s.recipe) return fmt::format("recipe {} (classifier {})", s.name, s.quantize_classifier ? "quantized" : "fp32");
  std::string w = "fp32 weights";
  if (s.weights) {
    const lowbit::QuantSpec& q = *s.weights;
    static const char* fmt_names[] = {"int8", "int4", "fp8-e4m3", "fp8-e5m2", "fp6-e3m2", "fp6-e2m3", "fp4-e2m1"};
    static const char* cons[] = {"fp32 scales", "pow2 M1 scales", "M2 scales", "MX E8M0 scales", "NVFP4 scales"};
    w = fmt::format("{} {}{}{}", fmt_names[static_cast<int>(q.format)],
                    q.gran == lowbit::granularity::per_group ? fmt::format("g{}", q.group_size)
                    : q.gran == lowbit::granularity::per_channel ? std::string("per-channel")
                                                                 : std::string("per-tensor"),
                    q.symmetric ? "" : " asym", std::string(", ") + cons[static_cast<int>(q.constraint)]);
  }
  std::string a = "fp32 activations";
  if (s.activations) {
    static const char* act_names[] = {"int8", "fp8-e4m3", "fp8-e5m2"};
    a = fmt::format("{} per-token activations", act_names[static_cast<int>(*s.activations)]);
  } else if (s.input != lowbit::activation_dtype::f32) {
    a = fmt::format("{} activations", lowbit::to_string(s.input));
  }
  return fmt::format("{} ({}; {}; classifier {})", s.name, w, a, s.quantize_classifier ? "quantized" : "fp32");
}

// Bits per weight over the linear layers inside the blocks (the classifier too when quantized).
double linear_bits_per_weight(const LlamaModel& m, bool include_classifier) {
  double bits = 0, weights = 0;
  for (const auto& [name, layer] : m.linear_layers()) {
    if (is_classifier_name(name) && !include_classifier) continue;
    bits += layer->storage_bits();
    weights += static_cast<double>(layer->in_features() * layer->out_features());
  }
  return bits / weights;
}

// "35 x packed kernel w4a16_... , 1 x fp32": what the linear layers run as, counted.
std::string describe_layers(const LlamaModel& m) {
  std::map<std::string, int> kinds;
  for (const auto& [name, layer] : m.linear_layers()) ++kinds[layer->describe()];
  std::string out;
  for (const auto& [what, count] : kinds) out += fmt::format("{}{} x {}", out.empty() ? "" : ", ", count, what);
  return out;
}

int run_eval(const eval_options& o) {
  if (o.tokens.empty() == o.text.empty())
    lowbit::detail::fail("give exactly one of --tokens FILE or --text \"...\"");
  if (!o.text.empty() && o.tokenizer.empty()) lowbit::detail::fail("--text needs --tokenizer FILE (llama2.c tok512.bin)");
  if (!o.recipe.empty() && (!o.weights.empty() || !o.activations.empty()))
    lowbit::detail::fail("--recipe and --weights/--activations are alternatives; give one");

  const auto t_load = std::chrono::steady_clock::now();
  // A lowbit checkpoint runs as stored (model/quantized_model.hpp); scheme flags would
  // quantize it a second time, so they are refused for it.
  const bool checkpoint = is_lowbit_checkpoint_path(o.model);
  LlamaModel model = load_llama_model(o.model);
  EvalScheme scheme = scheme_from_flags(o);
  if (checkpoint && !scheme.is_fp32())
    lowbit::detail::fail(o.model + " is a lowbit checkpoint (already quantized): evaluate it without --recipe/--weights/--activations");
  if (checkpoint) scheme.name = "checkpoint";
  const kv_cache_type kv = parse_kv_cache_type(o.kv_cache);
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Documents run in parallel, so each kernel call stays on its own thread.
  lowbit::set_num_threads(1);
  std::string calib_note;
  if (scheme.needs_calibration()) {
    // Calibration: the fp32 model's own forward pass over the first --calib-docs documents.
    const std::string calib_file = !o.calib.empty() ? o.calib : o.tokens;
    if (calib_file.empty()) lowbit::detail::fail("--recipe " + o.recipe + " needs calibration tokens: give --calib FILE");
    lowbit::CalibrationOptions co;
    co.max_sample_rows = 4096;  // SmoothQuant's W8A8 alpha objective quantizes real rows
    CalibrationRun run;
    run.max_docs = o.calib_docs;
    const CalibrationRecorder rec = calibrate(model, read_u16_tokens(calib_file), co, run);
    calib_note = fmt::format("{} tokens ({} documents) of {}{}", rec.tokens(), o.calib_docs, calib_file,
                             calib_file == o.tokens ? ", the start of the evaluation stream" : "");
    model.set_linear_layers(scheme_linear_factory(scheme, &rec));
  } else if (!scheme.is_fp32()) {
    model.set_linear_layers(scheme_linear_factory(scheme));
  }
  const double prepare_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const double bpw = linear_bits_per_weight(model, scheme.quantize_classifier);

  PerplexityResult r;
  if (!o.text.empty()) {
    const Tokenizer tok = Tokenizer::load(o.tokenizer, model.config().vocab_size);
    std::vector<int> ids = tok.encode(o.text);
    if (ids.size() < 2) lowbit::detail::fail("--text: the text encodes to fewer than 2 tokens");
    if (ids.size() > static_cast<std::size_t>(model.config().max_seq_len))
      lowbit::detail::fail("--text: " + std::to_string(ids.size()) + " tokens exceed max_seq_len " +
                           std::to_string(model.config().max_seq_len));
    PerplexityOptions po;
    po.kv_cache = kv;
    r = evaluate_perplexity(model, ids, po);
  } else {
    PerplexityOptions po;
    po.max_docs = o.max_docs;
    po.threads = threads;
    po.kv_cache = kv;
    r = evaluate_perplexity(model, read_u16_tokens(o.tokens), po);
  }

  const LlamaConfig& c = model.config();
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"scheme", scheme.name},
                        {"scheme_description", describe_scheme(scheme)},
                        {"perplexity", r.perplexity()},
                        {"total_nll", r.total_nll},
                        {"predicted_tokens", r.predicted_tokens},
                        {"tokens", r.tokens},
                        {"documents", r.documents},
                        {"truncated_documents", r.truncated_documents},
                        {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second()},
                        {"prepare_seconds", prepare_s},
                        {"bits_per_weight", bpw},
                        {"layers", describe_layers(model)},
                        {"calibration", calib_note},
                        {"threads", threads},
                        {"kv_cache", to_string(kv)}};
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("model       {} (dim {}, hidden {}, {} layers, {}/{} heads, vocab {}, {} classifier)\n", o.model,
             c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
             c.tied_classifier ? "tied" : "separate");
  fmt::print("scheme      {}{}\n", checkpoint ? "lowbit checkpoint, layers as stored" : describe_scheme(scheme),
             kv == kv_cache_type::f32 ? "" : fmt::format(", {} KV cache", to_string(kv)));
  fmt::print("layers      {}\n", describe_layers(model));
  if (!calib_note.empty()) fmt::print("calibration {}\n", calib_note);
  fmt::print("bits/weight {:.3f} (linear layers in the blocks{})\n", bpw,
             scheme.quantize_classifier ? " and the classifier" : "");
  if (!o.text.empty())
    fmt::print("text        {} tokens\n", r.tokens);
  else
    fmt::print("documents   {} ({} tokens, {} predicted{})\n", r.documents, r.tokens, r.predicted_tokens,
               r.truncated_documents ? fmt::format(", {} cut at max_seq_len", r.truncated_documents) : "");
  fmt::print("perplexity  {:.4f}\n", r.perplexity());
  fmt::print("speed       {:.0f} tokens/s ({:.2f} s evaluating, {:.2f} s loading and quantizing)\n",
             r.tokens_per_second(), r.seconds, prepare_s);
  return 0;
}

lowbit_cli::registration eval_registration{
    "eval", "Perplexity of a Llama model (llama2.c .bin or safetensors), fp32 or quantized", 50,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<eval_options>();
      sub.add_option("MODEL", o->model, "Model: llama2.c .bin, Meta-name .safetensors, or a lowbit checkpoint (file or directory)")->required();
      sub.add_option("--tokens", o->tokens, "Evaluation tokens: uint16 little-endian ids, documents start with BOS");
      sub.add_option("--text", o->text, "Evaluate one text instead (needs --tokenizer)");
      sub.add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer file (tok512.bin) for --text");
      sub.add_option("--recipe", o->recipe, "Named recipe (w8a8-fp8, w8a8-int8, w4a16-int4, ...)");
      sub.add_option("--weights", o->weights, "Weight format: int8, int4, fp8/e4m3, e5m2, fp6/e3m2, e2m3, fp4/e2m1");
      sub.add_option("--group", o->group, "Group size along K (0 = per channel, -1 = per tensor)")->capture_default_str();
      sub.add_option("--scale", o->scale, "Scale rule: fp32, m1, m2, mx, nvfp4")->capture_default_str();
      sub.add_flag("--asymmetric", o->asymmetric, "Integer weights with zero points");
      sub.add_option("--activations", o->activations, "Per-token activation format: int8, fp8/e4m3, e5m2; or f16/bf16 (weight-only schemes, 16-bit kernel input)");
      sub.add_option("--backend", o->backend, "auto (kernels where they exist), packed (kernels only), fake (quantize-dequantize in fp32)")->capture_default_str();
      sub.add_flag("--quantize-classifier", o->quantize_classifier, "Quantize the classifier too (default fp32)");
      sub.add_option("--calib", o->calib, "Calibration tokens for recipes with smoothing/GPTQ (default: --tokens)");
      sub.add_option("--calib-docs", o->calib_docs, "Calibration documents (from the start of the file)")->capture_default_str();
      sub.add_option("--kv-cache", o->kv_cache, "KV cache storage: f32, f16, bf16, fp8 (E4M3, per-head scales)")->capture_default_str();
      sub.add_option("--max-docs", o->max_docs, "Evaluate only the first N documents");
      sub.add_option("--threads", o->threads, "Worker threads (default: hardware threads)");
      sub.add_flag("--json", o->json, "Print a JSON report");
      return [o]() { return run_eval(*o); };
    }};

}  // namespace
