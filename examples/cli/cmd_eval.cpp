// `lowbit eval MODEL`: perplexity of a Llama-family model (a Hugging Face model directory,
// a Meta-name .safetensors file or a llama2.c .bin) in fp32 or with its linear layers
// quantized as a scheme says.
//
//   lowbit eval MODEL_DIR --tokens eval.u16 [--max-docs N] [--threads N] [--json]
//   lowbit eval MODEL_DIR --text-file stories.txt            (the model's tokenizer.json)
//   lowbit eval MODEL_DIR --text-file wiki.txt --ctx 512 [--ctx-half]
//   lowbit eval stories260K.bin --tokens eval.u16 --weights int4 --group 32 --scale fp32
//   lowbit eval stories260K.bin --text "One day, ..." --tokenizer tok512.bin
//
// Per-document mode (default): documents are split at the model's BOS in a token file, or
// at blank lines in a text file (each encoded as the tokenizer says, BOS included when its
// post-processor adds one); each runs from position 0 and all its tokens after the first
// are scored. --ctx N: the concatenated stream in non-overlapping N-token windows, every
// token of a window after its first scored; --ctx-half scores only the second half and puts
// BOS first in every window, exactly as llama.cpp's perplexity tool does (its numbers are
// comparable then). The standard error is the delta method on the mean NLL.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/error.hpp"
#include "cli_common.hpp"
#include "lowbit/model.hpp"
#include "registry.hpp"
#if __has_include("lowbit/model/hf_tokenizer.hpp")
#include "lowbit/model/hf_tokenizer.hpp"
#define LOWBIT_EVAL_HF_TOKENIZER 1
#endif

namespace {

using namespace lowbit::model;

struct eval_options {
  std::string model, tokens, text, text_file, tokenizer, recipe, calib;
  std::string weights, scale = "fp32", activations, backend = "auto", kv_cache = "f32";
  int group = 128;
  bool asymmetric = false, quantize_classifier = false, json = false;
  long max_docs = -1;
  int threads = 0;
  long calib_docs = 64;
  int ctx = 0;
  bool ctx_half = false, quiet = false;
  CLI::Option* group_option = nullptr;  // to tell an explicit --group / --scale from the default
  CLI::Option* scale_option = nullptr;

  // --weights / --group / --scale / --asymmetric, the ones given (spec_flags.hpp).
  lowbit_cli::weight_spec_flags spec_flags() const {
    lowbit_cli::weight_spec_flags w;
    if (!weights.empty()) w.weights = weights;
    if (group_option && group_option->count() > 0) w.group = group;
    if (scale_option && scale_option->count() > 0) w.scale = scale;
    w.asymmetric = asymmetric;
    return w;
  }
};

// The explicit scheme flags as an EvalScheme (weights / group / scale / activations).
EvalScheme scheme_from_flags(const eval_options& o) {
  EvalScheme s;
  // --activations f32/f16/bf16 is the input type of weight-only layers (EvalScheme::input,
  // QuantizedLoadOptions::input), for a raw scheme, a recipe or a checkpoint alike; nullopt
  // for the per-token formats (int8, fp8, e5m2) and no flag.
  const std::optional<lowbit::activation_dtype> input = lowbit::try_parse_activation_dtype(o.activations);
  if (!o.recipe.empty()) {
    s.recipe = lowbit::recipe_from_name(o.recipe);
    s.name = o.recipe;
    s.input = input.value_or(lowbit::activation_dtype::f32);
    s.quantize_classifier = o.quantize_classifier;
    s.backend = o.backend == "fake" ? linear_backend::fake_quant : linear_backend::automatic;
    return s;
  }
  if (o.weights.empty() && o.activations.empty()) return s;
  s.name = "custom";
  // The flags compose spec text, validated by the library's parser (spec_flags.hpp).
  if (!o.weights.empty()) s.weights = lowbit_cli::spec_of(o.spec_flags());
  if (input) s.input = *input;
  else if (!o.activations.empty())
    s.activations = lowbit_cli::parse_flag("--activations", o.activations, lowbit::parse_act_format);
  if (o.backend == "auto") s.backend = linear_backend::automatic;
  else if (o.backend == "packed") s.backend = linear_backend::packed;
  else if (o.backend == "fake") s.backend = linear_backend::fake_quant;
  else lowbit_cli::fail("--backend: unknown backend '" + o.backend + "' (auto, packed, fake)");
  s.quantize_classifier = o.quantize_classifier;
  return s;
}

std::string describe_scheme(const EvalScheme& s, bool checkpoint) {
  const std::string input = s.input == lowbit::activation_dtype::f32
                                ? std::string()
                                : fmt::format("; weight-only layers on {} activations", lowbit::to_string(s.input));
  if (checkpoint) return "lowbit checkpoint, layers as stored" + input;
  if (s.is_fp32()) return "fp32";
  if (s.recipe)
    return fmt::format("recipe {} (classifier {}{})", s.name, s.quantize_classifier ? "quantized" : "fp32", input);
  // The schemes' own spellings: the canonical spec text and the activation format names.
  const std::string w = s.weights ? "weights " + lowbit::to_string(*s.weights) : std::string("fp32 weights");
  std::string a = "fp32 activations";
  if (s.activations) a = fmt::format("{} per-token activations", lowbit::to_string(*s.activations));
  else if (s.input != lowbit::activation_dtype::f32) a = fmt::format("{} activations", lowbit::to_string(s.input));
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

// Token ids of `text` with the tokenizer file `path`: llama2.c (.bin) or tokenizer.json.
std::vector<int> encode_text(const std::string& path, const std::string& text, int vocab) {
  if (lowbit_cli::ends_with(path, ".bin"))
    return Tokenizer::load(path, vocab).encode(text);
#ifdef LOWBIT_EVAL_HF_TOKENIZER
  static std::string cached_path;
  static std::optional<HfTokenizer> cached;
  if (!cached || cached_path != path) {
    cached = HfTokenizer::load(path);
    cached_path = path;
  }
  return cached->encode(text, true);
#else
  (void)vocab;
  (void)text;
  lowbit_cli::fail(path + ": this build reads no tokenizer.json (the Hugging Face tokenizer is not part of it)");
#endif
}

// Documents of a text file: separated by empty lines ("\n\n"), each stripped of leading and
// trailing whitespace, empty ones dropped (how ../shared/data/stories260k's .u16 was made
// from its .txt: Python's text.split("\n\n") and str.strip()).
std::vector<std::string> text_documents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) lowbit_cli::fail("--text-file: cannot open '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> docs;
  const char* ws = " \t\r\n\v\f";
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    const std::string d = text.substr(at, end - at);
    const std::size_t b = d.find_first_not_of(ws);
    if (b != std::string::npos) docs.push_back(d.substr(b, d.find_last_not_of(ws) - b + 1));
    at = end + 2;
  }
  return docs;
}

void validate(const eval_options& o) {
  const int inputs = !o.tokens.empty() + !o.text.empty() + !o.text_file.empty();
  if (inputs != 1) lowbit_cli::fail("give exactly one of --tokens FILE, --text-file FILE or --text \"...\"");
  const lowbit_cli::weight_spec_flags spec = o.spec_flags();
  const bool spec_details = spec.group || spec.scale || spec.asymmetric;  // the fields after --weights
  if (!o.recipe.empty() && (spec.weights || spec_details))
    lowbit_cli::fail("--recipe and --weights/--group/--scale/--asymmetric are alternatives; give one");
  if (!o.recipe.empty() && !o.activations.empty() && !lowbit::try_parse_activation_dtype(o.activations))
    lowbit_cli::fail("--activations " + o.activations +
                     ": a recipe sets its own activation format; with --recipe, --activations takes f32, f16 or bf16 "
                     "(the input of its weight-only layers)");
  if (o.recipe.empty() && !spec.weights && spec_details)
    lowbit_cli::fail("--group/--scale/--asymmetric describe the weights: give --weights too");
  if (spec.weights) (void)lowbit_cli::spec_of(spec);  // scheme errors before the model is read
  if (o.threads < 0) lowbit_cli::fail("--threads must be >= 0, got " + std::to_string(o.threads));
  if (o.max_docs == 0) lowbit_cli::fail("--max-docs 0 leaves nothing to evaluate");
  if (o.max_docs < -1) lowbit_cli::fail("--max-docs must be >= 1 (or -1 for all), got " + std::to_string(o.max_docs));
  if (o.calib_docs == 0 || o.calib_docs < -1) lowbit_cli::fail("--calib-docs must be >= 1 (or -1 for all)");
  if (o.ctx < 0 || o.ctx == 1) lowbit_cli::fail("--ctx must be >= 2, got " + std::to_string(o.ctx));
  if (o.ctx_half && o.ctx == 0) lowbit_cli::fail("--ctx-half needs --ctx N");
  if (o.ctx > 0 && !o.text.empty()) lowbit_cli::fail("--ctx evaluates a stream: use --tokens or --text-file");
}

int run_eval(const eval_options& o) {
  validate(o);
  const auto t_load = std::chrono::steady_clock::now();
  const auto source = open_model(o.model);
  const LlamaConfig& cfg = source->config();
  const std::string tokenizer = !o.tokenizer.empty() ? o.tokenizer : source->tokenizer_path();
  if ((!o.text.empty() || !o.text_file.empty()) && tokenizer.empty())
    lowbit_cli::fail(o.model + " has no tokenizer.json: give --tokenizer FILE (tokenizer.json, or llama2.c tok512.bin)");

  // The evaluation tokens (and, for text files, the documents' spans) before the model is
  // quantized, so input errors come first.
  std::vector<int> tokens;
  std::vector<DocumentSpan> docs;
  if (!o.tokens.empty()) {
    tokens = read_u16_tokens(o.tokens);
    if (tokens.empty()) lowbit_cli::fail("--tokens: " + o.tokens + " holds no tokens");
    docs = split_documents(tokens, cfg.bos());
  } else if (!o.text_file.empty()) {
    const std::vector<std::string> texts = text_documents(o.text_file);
    if (texts.empty()) lowbit_cli::fail("--text-file: " + o.text_file + " holds no text");
    const std::size_t take = o.max_docs > 0 && o.ctx == 0 ? std::min<std::size_t>(texts.size(), static_cast<std::size_t>(o.max_docs)) : texts.size();
    for (std::size_t i = 0; i < take; ++i) {
      const std::vector<int> ids = encode_text(tokenizer, texts[i], cfg.vocab_size);
      docs.push_back({tokens.size(), ids.size()});
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
  } else {
    // --text is the text itself; a path there is almost always meant for one of the file
    // options, and its perplexity would be of the path's characters, so say so.
    std::error_code ec;
    if (std::filesystem::is_regular_file(o.text, ec))
      fmt::print(stderr,
                 "note: --text evaluates the text \"{}\" itself, and a file of that name exists: use --text-file "
                 "for its text or --tokens for uint16 token ids\n",
                 lowbit_cli::printable(o.text));
    tokens = encode_text(tokenizer, o.text, cfg.vocab_size);
    if (tokens.size() < 2) lowbit_cli::fail("--text: the text encodes to fewer than 2 tokens");
    if (tokens.size() > static_cast<std::size_t>(cfg.max_seq_len))
      lowbit_cli::fail("--text: " + std::to_string(tokens.size()) + " tokens exceed max_seq_len " + std::to_string(cfg.max_seq_len));
    docs.push_back({0, tokens.size()});
  }
  for (int id : tokens)
    if (id < 0 || id >= cfg.vocab_size)
      lowbit_cli::fail("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " + std::to_string(cfg.vocab_size) + ")");

  // A lowbit checkpoint runs as stored (model/quantized_model.hpp); scheme flags would
  // quantize it a second time, so they are refused for it.
  const bool checkpoint = is_lowbit_checkpoint(*source);
  EvalScheme scheme = scheme_from_flags(o);
  if (checkpoint && (scheme.recipe || scheme.weights || scheme.activations))
    lowbit_cli::fail(o.model + " is a lowbit checkpoint (already quantized): evaluate it without --recipe/--weights, "
                               "and with --activations only f32, f16 or bf16 (the input of its weight-only layers)");
  if (checkpoint) scheme.name = "checkpoint";
  const kv_cache_type kv = parse_kv_cache_type(o.kv_cache);
  QuantizedLoadOptions load;
  load.input = scheme.input;
  LlamaModel model = checkpoint ? load_quantized_llama(source, load) : LlamaModel(source);
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Documents run in parallel, so each kernel call stays on its own thread.
  lowbit::set_num_threads(1);
  std::string calib_note;
  if (scheme.needs_calibration()) {
    // Calibration: the fp32 model's own forward pass over the first --calib-docs documents.
    const std::string calib_file = !o.calib.empty() ? o.calib : o.tokens;
    if (calib_file.empty()) lowbit_cli::fail("--recipe " + o.recipe + " needs calibration tokens: give --calib FILE");
    lowbit::CalibrationOptions co;
    co.max_sample_rows = 4096;  // SmoothQuant's W8A8 alpha objective quantizes real rows
    CalibrationRun run;
    run.max_docs = o.calib_docs;
    run.bos = cfg.bos();
    const CalibrationRecorder rec = calibrate(model, read_u16_tokens(calib_file), co, run);
    calib_note = fmt::format("{} tokens ({} documents) of {}{}", rec.tokens(), o.calib_docs, calib_file,
                             calib_file == o.tokens ? ", the start of the evaluation stream" : "");
    model.set_linear_layers(scheme_linear_factory(scheme, &rec, &model.source()));
  } else if (!checkpoint && !scheme.is_fp32()) {
    model.set_linear_layers(scheme_linear_factory(scheme));
  }
  const double prepare_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const double bpw = linear_bits_per_weight(model, scheme.quantize_classifier);

  PerplexityOptions po;
  po.max_docs = o.text_file.empty() || o.ctx > 0 ? o.max_docs : -1;  // text files took their documents already
  po.threads = threads;
  po.bos = cfg.bos();
  po.kv_cache = kv;
  lowbit_cli::progress_bar bar(1000, o.quiet || o.json);
  const auto t_eval = std::chrono::steady_clock::now();
  po.progress = [&](std::int64_t done, std::int64_t total) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
    bar.update(static_cast<std::uint64_t>(done * 1000 / total),
               fmt::format("{} of {} {}, ETA {:.0f} s", done, total, o.ctx > 0 ? "windows" : "documents",
                           el / static_cast<double>(done) * static_cast<double>(total - done)));
  };
  PerplexityResult r;
  if (o.ctx > 0) {
    // llama.cpp puts BOS first in every window when the model adds one.
    const int first = o.ctx_half && !cfg.bos_ids.empty() ? cfg.bos() : -1;
    r = evaluate_perplexity_windows(model, tokens, o.ctx, o.ctx_half ? o.ctx / 2 : 0, first, po);
  } else {
    r = evaluate_documents(model, tokens, docs, po);
  }
  bar.finish();

  const LlamaConfig& c = model.config();
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"scheme", scheme.name},
                        {"scheme_description", describe_scheme(scheme, checkpoint)},
                        {"perplexity", r.perplexity()},
                        {"perplexity_stderr", r.perplexity_stderr()},
                        {"stderr", r.perplexity_stderr()},
                        {"mode", o.ctx > 0 ? fmt::format("ctx {}{}", o.ctx, o.ctx_half ? " (second half scored)" : "") : std::string("documents")},
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
  fmt::print("model       {} ({} {}, dim {}, hidden {}, {} layers, {}/{} heads of {}, vocab {}, {} classifier)\n",
             o.model, model.source().architecture(), to_string(c.arch), c.dim, c.hidden_dim, c.n_layers, c.n_heads,
             c.n_kv_heads, c.head_dim(), c.vocab_size, c.tied_classifier ? "tied" : "separate");
  fmt::print("scheme      {}{}\n", describe_scheme(scheme, checkpoint),
             kv == kv_cache_type::f32 ? "" : fmt::format(", {} KV cache", to_string(kv)));
  fmt::print("layers      {}\n", describe_layers(model));
  if (!calib_note.empty()) fmt::print("calibration {}\n", calib_note);
  fmt::print("bits/weight {:.3f} (linear layers in the blocks{})\n", bpw,
             scheme.quantize_classifier ? " and the classifier" : "");
  if (!o.text.empty())
    fmt::print("text        {} tokens\n", r.tokens);
  else if (o.ctx > 0)
    fmt::print("windows     {} of {} tokens ({} predicted{})\n", r.documents, o.ctx, r.predicted_tokens,
               o.ctx_half ? ", second halves as llama.cpp" : "");
  else
    fmt::print("documents   {} ({} tokens, {} predicted{})\n", r.documents, r.tokens, r.predicted_tokens,
               r.truncated_documents ? fmt::format(", {} cut at max_seq_len", r.truncated_documents) : "");
  fmt::print("perplexity  {:.4f} +/- {:.4f}\n", r.perplexity(), r.perplexity_stderr());
  fmt::print("speed       {:.0f} tokens/s ({:.2f} s evaluating, {:.2f} s loading and quantizing)\n",
             r.tokens_per_second(), r.seconds, prepare_s);
  return 0;
}

lowbit_cli::registration eval_registration{
    "eval", "Perplexity of a Llama-family model (Hugging Face directory, safetensors, llama2.c .bin, GGUF), fp32 or quantized", 50,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<eval_options>();
      sub.add_option("MODEL", o->model, "Hugging Face model directory, Meta-name .safetensors, llama2.c .bin, a .gguf file, or a lowbit checkpoint (file or directory)")->required();
      sub.add_option("--tokens", o->tokens, "Evaluation tokens: uint16 little-endian ids, documents start with the model's BOS");
      sub.add_option("--text-file", o->text_file, "Evaluation text, documents separated by blank lines (tokenized with the model's tokenizer.json)");
      sub.add_option("--text", o->text, "Evaluate one text instead");
      sub.add_option("--tokenizer", o->tokenizer, "Tokenizer for --text/--text-file: tokenizer.json or llama2.c tok512.bin (default: the model's tokenizer.json)");
      sub.add_option("--ctx", o->ctx, "Fixed-context mode: the concatenated stream in non-overlapping windows of N tokens");
      sub.add_flag("--ctx-half", o->ctx_half, "With --ctx: score only each window's second half, BOS first (llama.cpp's perplexity)");
      sub.add_flag("--quiet", o->quiet, "No progress on stderr");
      sub.add_option("--recipe", o->recipe, "Named recipe (w8a8-fp8, w8a8-int8, w4a16-int4, ...)");
      sub.add_option("--weights", o->weights, "Weight format: int8, int4, fp8/e4m3, e5m2, fp6/e3m2, e2m3, fp4/e2m1");
      o->group_option = sub.add_option("--group", o->group, "Group size along K (0 = per channel, -1 = per tensor)")->capture_default_str();
      o->scale_option = sub.add_option("--scale", o->scale, "Scale rule: fp32, m1, m2, mx, nvfp4")->capture_default_str();
      sub.add_flag("--asymmetric", o->asymmetric, "Integer weights with zero points");
      sub.add_option("--activations", o->activations, "Per-token activation format: int8, fp8/e4m3, e5m2; or f32/f16/bf16, the input of weight-only layers (a scheme's, a recipe's or a checkpoint's; f16/bf16 round it)");
      sub.add_option("--backend", o->backend, "auto (kernels where they exist), packed (kernels only), fake (quantize-dequantize in fp32)")->capture_default_str();
      sub.add_flag("--quantize-classifier", o->quantize_classifier, "Quantize the classifier too (default fp32)");
      sub.add_option("--calib", o->calib, "Calibration tokens for recipes with smoothing/GPTQ (default: --tokens)");
      sub.add_option("--calib-docs", o->calib_docs, "Calibration documents (from the start of the file)")->capture_default_str();
      sub.add_option("--max-docs", o->max_docs, "Evaluate only the first N documents (windows with --ctx)");
      sub.add_option("--kv-cache", o->kv_cache, "KV cache storage: f32, f16, bf16, fp8 (E4M3, per-head scales)")->capture_default_str();
      sub.add_option("--threads", o->threads, "Worker threads (default: hardware threads)");
      sub.add_flag("--json", o->json, "Print a JSON report");
      return [o]() { return run_eval(*o); };
    }};

}  // namespace
