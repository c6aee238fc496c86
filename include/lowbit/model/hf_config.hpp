#pragma once
// A Hugging Face config.json as a LlamaConfig.
//
// Architectures (config.json "architectures"[0], or "model_type" when that is absent):
//   LlamaForCausalLM (llama)   MistralForCausalLM (mistral)   Qwen2ForCausalLM (qwen2)
//   Qwen3ForCausalLM (qwen3). Anything else is refused, naming it.
// Keys read (defaults as transformers' config classes have them):
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size
//   (required); num_key_value_heads (= num_attention_heads); head_dim (= hidden/heads;
//   null allowed); rms_norm_eps (1e-6); rope_theta (10000); tie_word_embeddings (false);
//   attention_bias (false; llama and qwen3: q, k, v and o biases); mlp_bias (false; llama);
//   bos_token_id / eos_token_id (int, list or null); max_position_embeddings (required,
//   below); rope_scaling (null or {rope_type|type, ...}); hidden_act ("silu");
//   sliding_window (mistral; qwen2/qwen3 only with use_sliding_window, which is refused).
// max_position_embeddings is required: it bounds the sequences evaluated and feeds the
// dynamic and yarn scaling, so a guess would silently change results.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/llama_config.hpp"

namespace lowbit::model {

struct HfConfig {
  LlamaConfig config;
  std::string architecture;  // e.g. "LlamaForCausalLM"
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline HfConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  auto fail = [&](const std::string& what) -> void { lowbit::detail::fail(source + ": " + what); };
  json_t j;
  try {
    j = json_t::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    lowbit::detail::fail(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) fail("expected a JSON object");
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto get_int = [&](const json_t& o, const std::string& k, const std::string& where) -> long long {
    if (!o[k].is_number_integer()) fail("\"" + where + k + "\" must be an integer");
    return o[k].template get<long long>();
  };
  auto get_num = [&](const json_t& o, const std::string& k, const std::string& where) -> double {
    if (!o[k].is_number()) fail("\"" + where + k + "\" must be a number");
    return o[k].template get<double>();
  };
  auto req_int = [&](const char* k) -> int {
    if (!has(k)) fail("config.json has no \"" + std::string(k) + "\"");
    const long long v = get_int(j, k, "");
    if (v <= 0 || v > (1ll << 30)) fail("\"" + std::string(k) + "\" " + std::to_string(v) + " out of range");
    return static_cast<int>(v);
  };
  auto opt_bool = [&](const char* k, bool def) -> bool {
    if (!has(k)) return def;
    if (!j[k].is_boolean()) fail("\"" + std::string(k) + "\" must be true or false");
    return j[k].template get<bool>();
  };

  HfConfig out;
  LlamaConfig& c = out.config;
  std::string arch;
  if (j.contains("architectures")) {
    const auto& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string()) fail("\"architectures\" must be a non-empty list of names");
    if (a.size() > 1) fail("\"architectures\" lists " + std::to_string(a.size()) + " architectures; expected one");
    arch = a[0].template get<std::string>();
  } else if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string mt = j["model_type"].template get<std::string>();
    arch = mt == "llama" ? "LlamaForCausalLM" : mt == "mistral" ? "MistralForCausalLM"
         : mt == "qwen2" ? "Qwen2ForCausalLM" : mt == "qwen3" ? "Qwen3ForCausalLM" : "model_type " + mt;
  } else {
    fail("config.json names no architecture (no \"architectures\" or \"model_type\")");
  }
  if (arch == "LlamaForCausalLM") c.arch = model_arch::llama;
  else if (arch == "MistralForCausalLM") c.arch = model_arch::mistral;
  else if (arch == "Qwen2ForCausalLM") c.arch = model_arch::qwen2;
  else if (arch == "Qwen3ForCausalLM") c.arch = model_arch::qwen3;
  else
    fail("unsupported architecture " + arch +
         " (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
  out.architecture = arch;
  c.rope = rope_style::half;

  c.dim = req_int("hidden_size");
  c.hidden_dim = req_int("intermediate_size");
  c.n_layers = req_int("num_hidden_layers");
  c.n_heads = req_int("num_attention_heads");
  c.n_kv_heads = has("num_key_value_heads") ? req_int("num_key_value_heads") : c.n_heads;
  c.vocab_size = req_int("vocab_size");
  c.max_seq_len = req_int("max_position_embeddings");
  if (has("head_dim")) c.explicit_head_dim = req_int("head_dim");
  c.norm_eps = has("rms_norm_eps") ? static_cast<float>(get_num(j, "rms_norm_eps", "")) : 1e-6f;
  c.rope_theta = has("rope_theta") ? static_cast<float>(get_num(j, "rope_theta", "")) : 10000.0f;
  c.tied_classifier = opt_bool("tie_word_embeddings", false);
  if (has("hidden_act")) {
    if (!j["hidden_act"].is_string() || j["hidden_act"].template get<std::string>() != "silu")
      fail("\"hidden_act\" " + j["hidden_act"].dump() + " is not supported (only silu)");
  }
  if (has("partial_rotary_factor") && get_num(j, "partial_rotary_factor", "") != 1.0)
    fail("\"partial_rotary_factor\" other than 1 is not supported");

  const bool attention_bias = opt_bool("attention_bias", false);
  const bool mlp_bias = opt_bool("mlp_bias", false);
  switch (c.arch) {
    case model_arch::llama:
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = mlp_bias;
      break;
    case model_arch::mistral:
      if (attention_bias || mlp_bias) fail("MistralForCausalLM has no biases; attention_bias/mlp_bias must be false");
      break;
    case model_arch::qwen2:
      c.qkv_bias = true;  // Qwen2Attention: q, k, v with bias, o without
      break;
    case model_arch::qwen3:
      c.qkv_bias = c.o_bias = attention_bias;
      c.qk_norm = true;
      break;
  }
  if (c.arch == model_arch::mistral) {
    if (has("sliding_window")) {
      const long long w = get_int(j, "sliding_window", "");
      if (w <= 0) fail("\"sliding_window\" must be a positive integer or null");
      if (w < c.max_seq_len) c.sliding_window = static_cast<int>(w);
    }
  } else if (opt_bool("use_sliding_window", false)) {
    fail("\"use_sliding_window\": sliding-window attention is not supported for " + arch);
  }

  auto ids = [&](const char* k, std::vector<int>& dst) {
    if (!has(k)) return;
    const auto& v = j[k];
    auto one = [&](const json_t& x) {
      if (!x.is_number_integer()) fail("\"" + std::string(k) + "\" must be an integer or a list of integers");
      dst.push_back(x.template get<int>());
    };
    if (v.is_array()) {
      for (const auto& x : v) one(x);
    } else {
      one(v);
    }
  };
  ids("bos_token_id", c.bos_ids);
  ids("eos_token_id", c.eos_ids);

  if (has("rope_scaling")) {
    const auto& r = j["rope_scaling"];
    if (!r.is_object()) fail("\"rope_scaling\" must be an object or null");
    std::string type;
    for (const char* k : {"rope_type", "type"})
      if (r.contains(k) && r[k].is_string()) {
        type = r[k].template get<std::string>();
        break;
      }
    if (type.empty()) fail("\"rope_scaling\" has no \"rope_type\" (or \"type\")");
    RopeScaling& s = c.rope_scaling;
    const std::string where = "rope_scaling.";
    auto num = [&](const char* k, double& dst, bool required) {
      if (r.contains(k) && !r[k].is_null()) {
        dst = get_num(r, k, where);
      } else if (required) {
        fail("rope_scaling type " + type + " needs \"" + k + "\"");
      }
    };
    if (type == "default") {
      s.type = rope_scaling_type::none;
    } else if (type == "linear" || type == "dynamic") {
      s.type = type == "linear" ? rope_scaling_type::linear : rope_scaling_type::dynamic;
      num("factor", s.factor, true);
    } else if (type == "llama3") {
      s.type = rope_scaling_type::llama3;
      num("factor", s.factor, true);
      num("low_freq_factor", s.low_freq_factor, true);
      num("high_freq_factor", s.high_freq_factor, true);
      num("original_max_position_embeddings", s.original_max_position_embeddings, true);
    } else if (type == "yarn") {
      s.type = rope_scaling_type::yarn;
      num("factor", s.factor, true);
      num("original_max_position_embeddings", s.original_max_position_embeddings, false);
      num("attention_factor", s.attention_factor, false);
      num("beta_fast", s.beta_fast, false);
      num("beta_slow", s.beta_slow, false);
      num("mscale", s.mscale, false);
      num("mscale_all_dim", s.mscale_all_dim, false);
      if (r.contains("truncate") && !r["truncate"].is_null()) {
        if (!r["truncate"].is_boolean()) fail("\"rope_scaling.truncate\" must be true or false");
        s.truncate = r["truncate"].template get<bool>();
      }
    } else {
      fail("rope_scaling type " + type + " is not supported (supported: linear, dynamic, llama3, yarn)");
    }
  }
  c.max_position_embeddings = c.max_seq_len;
  // Dynamic NTK scaling is for sequences past max_position_embeddings: allow factor times it.
  if (c.rope_scaling.type == rope_scaling_type::dynamic && c.rope_scaling.factor >= 1.0 &&
      c.rope_scaling.factor * c.max_seq_len < (1 << 24))
    c.max_seq_len = static_cast<int>(std::ceil(c.rope_scaling.factor * c.max_seq_len));
  c.validate(source);
  return out;
}

}  // namespace lowbit::model
