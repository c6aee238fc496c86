#pragma once
// The tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`), as lowbit's
// HfTokenizer: the metadata are translated into the tokenizer.json that describes the same
// tokenizer, which HfTokenizer then parses, so there is one BPE implementation in lowbit.
//
//   tokenizer.ggml.model "llama" (SentencePiece-style BPE): tokens, scores, token_type.
//     llama.cpp's SPM tokenizer merges, among adjacent pieces, the pair whose concatenation
//     is a token with the highest score (the leftmost on ties). As BPE merges: every split
//     a + b of a normal token into two normal tokens is a merge, ranked by the joined token's
//     score (highest first). The text gets "▁" for spaces, a "▁" prefix
//     (`add_space_prefix`, default true), byte fallback through the `<0xXX>` tokens, and the
//     decoder undoes all three.
//   tokenizer.ggml.model "gpt2" (byte-level BPE): tokens, merges, token_type, and
//     `tokenizer.ggml.pre`, which names the pre-tokenizer regex: "llama-bpe" (also "llama3",
//     "llama-v3": Llama 3's split, whole words in the vocabulary skip merging), "qwen2"
//     (Qwen2's split, NFC first as Qwen2's tokenizer.json does), "gpt-2" (GPT-2's split).
//     Any other pre-tokenizer is refused naming the key: llama.cpp knows dozens, each a
//     hand-written regex list, and lowbit reproduces only these.
//   token_type: 1 normal, 2 unknown, 3 control (special), 4 user-defined, 5 unused (left
//     out), 6 byte. Control, unknown and user-defined tokens are matched in the text before
//     the model runs (as llama.cpp does), control and unknown ones are special (skipped by
//     decode).
//   bos / eos / unknown ids, `add_bos_token` (default: true for "llama" and for Llama 3's
//     pre-tokenizer, false otherwise, as llama.cpp's defaults), `add_eos_token`.
//
// Every error names the file and the key. The token count must equal the model's
// vocabulary (token_embd.weight's rows) when that is given.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/model/hf_tokenizer.hpp"

namespace lowbit::model {

// Whether the file carries a tokenizer (a `tokenizer.ggml.model` key).
inline bool gguf_has_tokenizer(const GgufFile& f) { return f.find_value("tokenizer.ggml.model") != nullptr; }

namespace detail {

// Pre-tokenizer regexes of the `tokenizer.ggml.pre` names lowbit reproduces, in the form the
// models' own tokenizer.json files give them (Llama 3, Qwen2).
inline constexpr const char* gguf_llama3_split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr const char* gguf_qwen2_split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct gguf_tokenizer_parts {
  std::string json;            // tokenizer.json text
  std::vector<int> stop_ids;   // eos (and eot) ids from the metadata
};

// The tokenizer.json equivalent of the file's tokenizer.ggml.* metadata. model_vocab > 0:
// the token count must equal it.
inline gguf_tokenizer_parts gguf_tokenizer_json(const GgufFile& f, std::int64_t model_vocab) {
  using nlohmann::json;
  const std::string K = "tokenizer.ggml.";
  auto fail = [&](const std::string& key, const std::string& what) -> void {
    lowbit::detail::fail(f.source() + ": key '" + key + "': " + what);
  };
  auto get_bool = [&](const std::string& key, bool dflt) {
    const GgufValue* v = f.find_value(key);
    if (v == nullptr) return dflt;
    if (v->is_array() || v->type != gguf_value_type::boolean) fail(key, "must be a BOOL");
    return f.get<bool>(key);
  };
  const std::string model = f.get_string(K + "model");  // names the key when missing
  if (model != "llama" && model != "gpt2")
    fail(K + "model", "tokenizer '" + model + "' is not one lowbit reproduces (supported: llama, gpt2)");
  const bool spm = model == "llama";
  const std::vector<std::string>& tokens = f.get_string_array(K + "tokens");
  const std::size_t n = tokens.size();
  if (n == 0) fail(K + "tokens", "no tokens");
  if (n >= (1u << 24)) fail(K + "tokens", std::to_string(n) + " tokens is more than lowbit's tokenizer takes (2^24)");
  if (model_vocab > 0 && static_cast<std::int64_t>(n) != model_vocab)
    fail(K + "tokens", "has " + std::to_string(n) + " tokens, the model's vocabulary (token_embd.weight) has " +
                           std::to_string(model_vocab));
  std::vector<std::int32_t> types(n, 1);
  if (f.find_value(K + "token_type") != nullptr) {
    types = f.get_array<std::int32_t>(K + "token_type");
    if (types.size() != n)
      fail(K + "token_type", "has " + std::to_string(types.size()) + " entries for " + std::to_string(n) + " tokens");
    for (std::size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6)
        fail(K + "token_type", "token " + std::to_string(i) + " has unknown type " + std::to_string(types[i]));
      if (types[i] == 0) types[i] = 1;  // "undefined": llama.cpp treats it as normal
    }
  }
  auto id_key = [&](const std::string& key) -> std::optional<int> {
    const auto v = lowbit::detail::gguf_meta_int(f, key);
    if (!v) return std::nullopt;
    if (*v < 0 || *v >= static_cast<std::int64_t>(n))
      fail(key, "id " + std::to_string(*v) + " is outside the " + std::to_string(n) + " tokens");
    return static_cast<int>(*v);
  };
  const auto bos = id_key(K + "bos_token_id"), eos = id_key(K + "eos_token_id"), unk = id_key(K + "unknown_token_id"),
             eot = id_key(K + "eot_token_id");
  std::string pre;
  if (!spm) {
    pre = f.get_string(K + "pre");
    if (pre == "llama3" || pre == "llama-v3") pre = "llama-bpe";
    if (pre == "gpt2") pre = "gpt-2";
    if (pre != "llama-bpe" && pre != "qwen2" && pre != "gpt-2")
      fail(K + "pre", "pre-tokenizer '" + pre + "' is not one lowbit reproduces (supported: llama-bpe, qwen2, gpt-2)");
  }
  const bool add_bos = get_bool(K + "add_bos_token", spm || pre == "llama-bpe");
  const bool add_eos = get_bool(K + "add_eos_token", false);
  const bool add_space_prefix = spm && get_bool(K + "add_space_prefix", true);
  if (add_bos && !bos) fail(K + "bos_token_id", "missing, but add_bos_token is set");
  if (add_eos && !eos) fail(K + "eos_token_id", "missing, but add_eos_token is set");

  // The model's vocabulary: normal, byte and unknown tokens (the first of repeated strings
  // wins, as llama.cpp's token-to-id map keeps one). Control and user-defined tokens are
  // added tokens only; unused ones are left out.
  json vocab = json::object();
  std::unordered_map<std::string, int> id_of;
  json added = json::array();
  std::unordered_map<std::string, bool> added_seen;
  for (std::size_t i = 0; i < n; ++i) {
    const int t = types[i];
    if (t == 1 || t == 2 || t == 6) {
      if (id_of.emplace(tokens[i], static_cast<int>(i)).second) vocab[tokens[i]] = i;
    }
    if ((t == 2 || t == 3 || t == 4) && !tokens[i].empty() && added_seen.emplace(tokens[i], true).second)
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", t != 4}});
  }
  auto is_normal = [&](const std::string& s) {
    const auto it = id_of.find(s);
    return it != id_of.end() && types[static_cast<std::size_t>(it->second)] == 1;
  };

  json merges = json::array();
  if (spm) {
    const std::vector<float> scores = f.get_array<float>(K + "scores");
    if (scores.size() != n)
      fail(K + "scores", "has " + std::to_string(scores.size()) + " entries for " + std::to_string(n) + " tokens");
    // (score, token id, split offset): the highest score first, ties by id then offset.
    std::vector<std::tuple<float, int, std::size_t>> ms;
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(scores[i])) fail(K + "scores", "token " + std::to_string(i) + " has a non-finite score");
      if (types[i] != 1 || id_of.at(tokens[i]) != static_cast<int>(i)) continue;
      const std::string& s = tokens[i];
      for (std::size_t k = 1; k < s.size(); ++k) {
        if ((static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
        if (is_normal(s.substr(0, k)) && is_normal(s.substr(k))) ms.emplace_back(scores[i], static_cast<int>(i), k);
      }
    }
    std::sort(ms.begin(), ms.end(), [](const auto& a, const auto& b) {
      if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) > std::get<0>(b);
      return std::make_pair(std::get<1>(a), std::get<2>(a)) < std::make_pair(std::get<1>(b), std::get<2>(b));
    });
    for (const auto& [score, id, k] : ms) {
      (void)score;
      const std::string& s = tokens[static_cast<std::size_t>(id)];
      merges.push_back(json::array({s.substr(0, k), s.substr(k)}));
    }
  } else {
    // Checked here so that a bad merge names the GGUF key, not a tokenizer.json field.
    const std::vector<std::string>& mg = f.get_string_array(K + "merges");
    for (std::size_t r = 0; r < mg.size(); ++r) {
      const std::size_t sp = mg[r].find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == mg[r].size() || mg[r].find(' ', sp + 1) != std::string::npos)
        fail(K + "merges", "merge " + std::to_string(r) + " '" + mg[r] + "' is not two tokens separated by a space");
      const std::string a = mg[r].substr(0, sp), b = mg[r].substr(sp + 1);
      if (!id_of.count(a) || !id_of.count(b) || !id_of.count(a + b))
        fail(K + "merges", "merge " + std::to_string(r) + " '" + mg[r] + "' joins or makes a token not in " + K +
                               "tokens");
      merges.push_back(json::array({a, b}));
    }
  }

  json j = json::object();
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  json bpe = {{"type", "BPE"}, {"dropout", nullptr}, {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr}, {"fuse_unk", spm}, {"byte_fallback", spm},
              {"ignore_merges", pre == "llama-bpe"}};
  bpe["unk_token"] = unk && types[static_cast<std::size_t>(*unk)] != 3 && types[static_cast<std::size_t>(*unk)] != 4
                         ? json(tokens[static_cast<std::size_t>(*unk)])
                         : json(nullptr);
  bpe["vocab"] = std::move(vocab);
  bpe["merges"] = std::move(merges);
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  if (spm) {
    const json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
    j["normalizer"] = add_space_prefix ? json{{"type", "Sequence"},
                                              {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                                           replace})}}
                                       : replace;
    j["pre_tokenizer"] = nullptr;
    json dec = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                            {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
    if (add_space_prefix) dec.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    j["decoder"] = {{"type", "Sequence"}, {"decoders", dec}};
  } else {
    j["normalizer"] = pre == "qwen2" ? json{{"type", "NFC"}} : json(nullptr);
    if (pre == "gpt-2") {
      j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
    } else {
      const json split = {{"type", "Split"},
                          {"pattern", {{"Regex", pre == "qwen2" ? gguf_qwen2_split : gguf_llama3_split}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
      j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({split, byte_level})}};
    }
    j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  }
  // BOS / EOS as the post-processor's template.
  json single = json::array(), specials = json::object();
  auto special = [&](int id) {
    const std::string name = "<gguf-" + std::to_string(id) + ">";  // a template key, not text
    single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
    specials[name] = {{"id", name}, {"ids", json::array({id})}, {"tokens", json::array({tokens[static_cast<std::size_t>(id)]})}};
  };
  if (add_bos) special(*bos);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (add_eos) special(*eos);
  j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
  j["model"] = std::move(bpe);

  gguf_tokenizer_parts out;
  try {
    out.json = j.dump();
  } catch (const nlohmann::json::exception&) {
    fail(K + "tokens", "a token (or merge) is not valid UTF-8");
  }
  if (eos) out.stop_ids.push_back(*eos);
  if (eot && *eot != eos.value_or(-1)) out.stop_ids.push_back(*eot);
  return out;
}

}  // namespace detail

// The file's tokenizer; model_vocab > 0 (the model's vocabulary) must equal its token count.
// Fails naming the key when the metadata are missing, malformed or describe a tokenizer
// lowbit cannot reproduce.
inline HfTokenizer gguf_tokenizer(const GgufFile& f, std::int64_t model_vocab = -1) {
  return HfTokenizer::parse(detail::gguf_tokenizer_json(f, model_vocab).json, f.source() + " (tokenizer.ggml.*)");
}

}  // namespace lowbit::model
