#pragma once
// open_model(path): a ModelSource (model/source.hpp) for
//  - a Hugging Face model directory: config.json (model/hf_config.hpp), model.safetensors or
//    shards listed by model.safetensors.index.json, tokenizer.json (its path is recorded);
//  - a .safetensors file (or a *.index.json) with Hugging Face names and a config.json
//    beside it, treated like the directory;
//  - a .safetensors file with Meta names, combined with the config.json beside it when there
//    is one (model/config_hints.hpp);
//  - a single-file lowbit checkpoint with nothing beside it: the config.json text it stores
//    (checkpoint_config_key) stands in for the file, for either naming;
//  - a llama2.c .bin (model/llama2c.hpp), with a config.json beside it for eps / theta;
//  - a llama.cpp .gguf file, architectures llama and qwen2 (model/gguf_source.hpp);
//  - a compressed-tensors directory (config.json with a quantization_config of quant_method
//    compressed-tensors, as llm-compressor writes it): model/ct_source.hpp.
// Weights stay in the memory-mapped files until a layer is asked for.
//
// load_llama_weights(path) reads a whole model into memory (small models, tests).
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/model/config_hints.hpp"
#include "lowbit/model/ct_source.hpp"
#include "lowbit/model/gguf_source.hpp"
#include "lowbit/model/hf_config.hpp"
#include "lowbit/model/llama2c.hpp"
#include "lowbit/model/safetensors_source.hpp"

namespace lowbit::model {

namespace detail {
// The llama2.c header carries the shapes; a config.json that disagrees is an error.
inline void apply_hints_to_header_config(LlamaConfig& c, const LlamaConfigHints& h, const std::string& source) {
  auto agree = [&](const std::optional<int>& hint, int value, const char* what) {
    if (hint && *hint != value)
      lowbit::detail::fail(source + ": config.json says " + what + " " + std::to_string(*hint) +
                           " but the model file has " + std::to_string(value));
  };
  agree(h.dim, c.dim, "dim");
  agree(h.hidden_dim, c.hidden_dim, "hidden_dim");
  agree(h.n_layers, c.n_layers, "n_layers");
  agree(h.n_heads, c.n_heads, "n_heads");
  agree(h.n_kv_heads, c.n_kv_heads, "n_kv_heads");
  agree(h.vocab_size, c.vocab_size, "vocab_size");
  agree(h.max_seq_len, c.max_seq_len, "max_seq_len");
  if (h.tied_classifier && *h.tied_classifier != c.tied_classifier)
    lowbit::detail::fail(source + ": config.json and the model file disagree on tie_word_embeddings");
  if (h.norm_eps) c.norm_eps = *h.norm_eps;
  if (h.rope_theta) c.rope_theta = *h.rope_theta;
  c.validate(source);
}

inline bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
inline std::string read_text(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// The quantized linear layers of a lowbit checkpoint (every shard's "lowbit.layer.*" entries)
// with the [out, in] shape each records; empty for an ordinary checkpoint.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline SafetensorsSource::external_map stored_quantized_layers(const SafetensorsModel& st, const std::string& path) {
  SafetensorsSource::external_map out;
  for (const auto& shard : st.shards()) {
    if (!is_lowbit_checkpoint(*shard)) continue;
    for (const std::string& base : checkpoint_layers(*shard)) {
      const deferred_t<Deferred, nlohmann::json> info = checkpoint_layer_info(*shard, base);
      const auto it = info.find("shape");
      if (it == info.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() ||
          !(*it)[1].is_number_integer() || (*it)[0].template get<std::int64_t>() <= 0 || (*it)[1].template get<std::int64_t>() <= 0)
        lowbit::detail::fail(path + ": quantized layer " + base + " has no valid \"shape\" in its metadata");
      if (!out.emplace(base, std::make_pair((*it)[0].template get<std::int64_t>(), (*it)[1].template get<std::int64_t>())).second)
        lowbit::detail::fail(path + ": quantized layer " + base + " is stored twice");
    }
  }
  return out;
}

// The model's config.json: the file in `dir`, else the copy a single-file lowbit checkpoint
// carries (checkpoint_config_key). `source` names where it came from, for errors.
struct ConfigText {
  std::string text, source;
};
inline std::optional<ConfigText> model_config_text(const SafetensorsModel& st, const std::string& dir,
                                                   const std::string& path) {
  const std::string config_path = dir + "/config.json";
  if (file_exists(config_path)) return ConfigText{read_text(config_path), config_path};
  const auto it = st.metadata().find(checkpoint_config_key);
  if (it != st.metadata().end())
    return ConfigText{it->second, path + " (the config.json stored in its metadata, " + checkpoint_config_key + ")"};
  return std::nullopt;
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline LlamaConfigHints config_hints_for(const SafetensorsModel& st, const std::string& dir, const std::string& path) {
  const auto c = model_config_text(st, dir, path);
  return c ? parse_config_hints<Deferred>(c->text, c->source) : LlamaConfigHints{};
}

// Hugging Face weights (`st`) with the config.json and tokenizer.json of directory `dir`.
template <class Deferred = void>  // see "Compile time" in docs/design.md
std::shared_ptr<const ModelSource> open_hf(SafetensorsModel st, const std::string& dir, const std::string& path) {
  const auto config = model_config_text(st, dir, path);
  if (!config)
    lowbit::detail::fail(path + ": Hugging Face weights need the config.json of their directory (" + dir +
                         "/config.json is missing)");
  const std::string& config_text = config->text;
  const HfConfig hc = parse_hf_config(config_text, config->source);
  const std::string tok = file_exists(dir + "/tokenizer.json") ? dir + "/tokenizer.json" : std::string();
  // A quantization_config of quant_method compressed-tensors (parse_hf_config already checked
  // the JSON). lowbit's own checkpoints carry one too (quant_method "lowbit"): read as before.
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const json_t j = json_t::parse(config_text);
  const auto qc = j.find("quantization_config");
  if (qc != j.end() && qc->is_object() && qc->value("quant_method", json_t()) == "compressed-tensors") {
    CtPlan plan = ct_plan(*qc, hc.config, config->source);
    SafetensorsSource::external_map ext;
    for (const auto& [m, s] : plan) ext.emplace(m, std::make_pair(s.rows, s.cols));
    auto inner = std::make_shared<const deferred_t<Deferred, SafetensorsSource>>(std::move(st), hc.config, hc.architecture, path, tok, std::move(ext));
    return std::make_shared<deferred_t<Deferred, CompressedTensorsSource>>(std::move(inner), std::move(plan));
  }
  auto external = stored_quantized_layers(st, path);
  return std::make_shared<deferred_t<Deferred, SafetensorsSource>>(std::move(st), hc.config, hc.architecture, path, tok, std::move(external));
}
}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
std::shared_ptr<const ModelSource> open_model(const std::string& path) {
  if (detail::is_directory(path)) {
    std::string dir = path;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    SafetensorsModel st = open_safetensors_model(dir);
    // A directory of Meta-name weights (e.g. a lowbit checkpoint of a Meta/llama2.c model with
    // its config.json and tokenizer beside it) reads like the file inside it.
    if (st.find("model.embed_tokens.weight") == nullptr && st.find("tok_embeddings.weight") != nullptr) {
      auto external = detail::stored_quantized_layers(st, path);
      auto hints = detail::config_hints_for<Deferred>(st, dir, path);
      return std::make_shared<deferred_t<Deferred, SafetensorsSource>>(std::move(st), std::move(hints), path, std::move(external));
    }
    return detail::open_hf(std::move(st), dir, path);
  }
  const bool index = detail::ends_with(path, ".index.json");
  if (index || detail::ends_with(path, ".safetensors")) {
    SafetensorsModel st = open_safetensors_model(path);
    if (st.find("model.embed_tokens.weight") != nullptr) return detail::open_hf(std::move(st), detail::directory_of(path), path);
    auto external = detail::stored_quantized_layers(st, path);
    auto hints = detail::config_hints_for<Deferred>(st, detail::directory_of(path), path);
    return std::make_shared<deferred_t<Deferred, SafetensorsSource>>(std::move(st), std::move(hints), path, std::move(external));
  }
  if (detail::ends_with(path, ".bin")) {
    auto src = std::make_shared<deferred_t<Deferred, Llama2cSource>>(path);
    LlamaConfig c = src->config();
    detail::apply_hints_to_header_config(c, config_hints_beside(path), path);
    src->set_config(c);
    return src;
  }
  if (detail::ends_with(path, ".gguf")) return std::make_shared<deferred_t<Deferred, GgufSource>>(path);
  lowbit::detail::fail(path + ": unknown model file type (expected a Hugging Face model directory, a .safetensors "
                              "file, a llama2.c .bin or a .gguf)");
}

// The whole model in fp32, validated (every layer read now).
template <class Deferred = void>  // see "Compile time" in docs/design.md
LlamaWeights load_llama_weights(const std::string& path) { return read_all_weights<Deferred>(*open_model<Deferred>(path)); }

}  // namespace lowbit::model
