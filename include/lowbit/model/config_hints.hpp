#pragma once
// LlamaConfigHints: what a config.json beside the model says. Loaders take their shapes
// from the file itself and use the hints for what the file does not carry (RoPE theta,
// norm epsilon, head counts of a safetensors file, max sequence length); a hint that
// contradicts the file is an error rather than a silent override.
//
// Accepted keys (the llama2.c / Meta params.json spelling first, then the Hugging Face one):
//   dim | hidden_size            hidden_dim | intermediate_size     n_layers | num_hidden_layers
//   n_heads | num_attention_heads   n_kv_heads | num_key_value_heads   head_dim
//   vocab_size   max_seq_len | max_position_embeddings   norm_eps | rms_norm_eps
//   rope_theta   tie_word_embeddings
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/model/detail/read_file.hpp"

namespace lowbit::model {

struct LlamaConfigHints {
  std::optional<int> dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size,
      max_seq_len;
  std::optional<float> norm_eps, rope_theta;
  std::optional<bool> tied_classifier;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline LlamaConfigHints parse_config_hints(const std::string& json_text, const std::string& source) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  json_t j;
  try {
    j = json_t::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    lowbit::detail::fail(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) lowbit::detail::fail(source + ": expected a JSON object");
  LlamaConfigHints h;
  auto get_int = [&](std::optional<int>& dst, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (j.contains(k)) {
        if (!j[k].is_number_integer())
          lowbit::detail::fail(source + ": \"" + k + "\" must be an integer");
        dst = j[k].template get<int>();
        return;
      }
  };
  auto get_float = [&](std::optional<float>& dst, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (j.contains(k)) {
        if (!j[k].is_number()) lowbit::detail::fail(source + ": \"" + k + "\" must be a number");
        dst = j[k].template get<float>();
        return;
      }
  };
  get_int(h.dim, {"dim", "hidden_size"});
  get_int(h.hidden_dim, {"hidden_dim", "intermediate_size"});
  get_int(h.n_layers, {"n_layers", "num_hidden_layers"});
  get_int(h.n_heads, {"n_heads", "num_attention_heads"});
  get_int(h.n_kv_heads, {"n_kv_heads", "num_key_value_heads"});
  get_int(h.head_dim, {"head_dim"});
  get_int(h.vocab_size, {"vocab_size"});
  get_int(h.max_seq_len, {"max_seq_len", "max_position_embeddings"});
  get_float(h.norm_eps, {"norm_eps", "rms_norm_eps"});
  get_float(h.rope_theta, {"rope_theta"});
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean())
      lowbit::detail::fail(source + ": \"tie_word_embeddings\" must be true or false");
    h.tied_classifier = j["tie_word_embeddings"].template get<bool>();
  }
  return h;
}

// Reads `config.json` in the directory of `model_path`; empty hints when there is none.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline LlamaConfigHints config_hints_beside(const std::string& model_path) {
  const std::string path = detail::directory_of(model_path) + "/config.json";
  std::ifstream probe(path);
  if (!probe) return {};
  const auto bytes = detail::read_file_bytes(path);
  return parse_config_hints(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace lowbit::model
