#pragma once
// load_llama_weights(path): reads a Llama model from a llama2.c legacy .bin or a Meta-name
// F32 .safetensors file (chosen by extension), combines it with the config.json beside it
// when there is one (model/config_hints.hpp), and validates every array before returning.
#include <string>

#include "lowbit/model/config_hints.hpp"
#include "lowbit/model/llama2c.hpp"
#include "lowbit/model/safetensors_llama.hpp"

namespace lowbit::model {

namespace detail {
// The llama2.c header carries the shapes; a config.json that disagrees is an error.
inline void apply_hints_to_header_config(LlamaConfig& c, const LlamaConfigHints& h,
                                         const std::string& source) {
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
}
}  // namespace detail

inline LlamaWeights load_llama_weights(const std::string& path, const LlamaConfigHints& hints) {
  LlamaWeights w;
  if (detail::ends_with(path, ".safetensors")) {
    w = load_llama_safetensors(path, hints);
  } else if (detail::ends_with(path, ".bin")) {
    w = load_llama2c(path);
    detail::apply_hints_to_header_config(w.config, hints, path);
  } else {
    lowbit::detail::fail(path + ": unknown model file type (expected .bin for llama2.c or .safetensors)");
  }
  w.validate(path);
  return w;
}

// Same, with the hints from the config.json in the model's directory (if any).
inline LlamaWeights load_llama_weights(const std::string& path) {
  return load_llama_weights(path, config_hints_beside(path));
}

}  // namespace lowbit::model
