#pragma once
// The implementation behind lowbit::model::HfTokenizer (hf_tokenizer.hpp): parsing of the
// whole tokenizer.json and the encode / decode pipelines. Only compiled when
// LOWBIT_HAVE_HF_TOKENIZER is set.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/hf_added.hpp"
#include "lowbit/model/detail/hf_bpe.hpp"
#include "lowbit/model/detail/hf_components.hpp"
#include "lowbit/model/detail/hf_decoders.hpp"
#include "lowbit/model/detail/read_file.hpp"

namespace lowbit::model::detail::hf {

class TokenizerImpl {
 public:
  std::string source;
  BpeModel bpe;
  std::vector<AddedToken> added;
  std::unordered_map<int, std::size_t> added_by_id;
  StringIdMap added_by_content;
  AddedMatcher raw_matcher, normalized_matcher;
  std::vector<NormStep> normalizer;
  std::vector<PreStep> pre_tokenizer;
  bool has_decoder = false;
  std::vector<DecStep> decoder;
  std::vector<Template> post;
  int vocab_size_ = 0;
  mutable WordCache cache;

  std::vector<int> encode(const std::string& text, bool add_special_tokens) const {
    if (const auto bad = utf8_invalid_at(text); bad != std::string_view::npos)
      lowbit::detail::fail(source + ": encode: the text is not valid UTF-8 (byte " +
                           std::to_string(bad) + ")");
    std::vector<int> ids;
    ids.reserve(text.size() / 3 + 4);
    PreWork w(pre_tokenizer.size());
    BpeWork bw;
    std::vector<AddedSplit> raw, sub;
    auto emit = [&](std::string_view word) { tokenize_word(word, bw, ids); };

    const auto run_piece = [&](std::string_view piece, bool at_origin) {
      // Normalize, then split off the normalized added tokens, then pre-tokenize the rest.
      std::string normalized;
      std::string_view n = piece;
      if (!normalizer.empty()) {
        normalized = normalize(normalizer, piece, w.md, w.norm_spans);
        n = normalized;
      }
      if (normalized_matcher.empty()) {
        pre_tokenize(pre_tokenizer, 0, n, at_origin, w, emit);
        return;
      }
      normalized_matcher.find(n, sub);
      for (const auto& s : sub) {
        if (s.id >= 0) ids.push_back(s.id);
        else pre_tokenize(pre_tokenizer, 0, n.substr(s.start, s.end - s.start), at_origin && s.start == 0, w, emit);
      }
    };
    if (raw_matcher.empty()) {
      run_piece(text, true);
    } else {
      raw_matcher.find(text, raw);
      for (const auto& s : raw) {
        if (s.id >= 0) ids.push_back(s.id);
        else run_piece(std::string_view(text).substr(s.start, s.end - s.start), s.start == 0);
      }
    }
    return post_process(post, std::move(ids), add_special_tokens);
  }

  std::string decode(const std::vector<int>& ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int id : ids) {
      const std::string* t = token_ptr(id);
      if (t == nullptr) continue;  // tokenizers skips ids it has no token for
      if (skip_special_tokens && is_special(*t)) continue;
      tokens.push_back(*t);
    }
    std::string out;
    if (!has_decoder) {
      for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    MatchData md;
    for (const auto& st : decoder) run_decoder(st, tokens, md);
    for (const auto& t : tokens) out += t;
    return out;
  }

  std::string token(int id) const {
    const std::string* t = token_ptr(id);
    if (t == nullptr)
      lowbit::detail::fail(source + ": token id " + std::to_string(id) + " is not in the vocabulary");
    return *t;
  }
  int vocab_size() const { return vocab_size_; }
  bool has_id(int id) const { return token_ptr(id) != nullptr; }
  std::optional<int> bos_id() const {
    const std::vector<int> marked = post_process(post, {-1}, true);
    if (marked.empty() || marked[0] < 0) return std::nullopt;
    return marked[0];
  }
  std::optional<int> token_id(const std::string& t) const {
    if (const int a = added_by_content.find(t); a >= 0) return added[static_cast<std::size_t>(a)].id;
    if (const int id = bpe.vocab.find(t); id >= 0) return id;
    return std::nullopt;
  }

 private:
  const std::string* token_ptr(int id) const {
    if (const auto it = added_by_id.find(id); it != added_by_id.end()) return &added[it->second].decoded;
    if (id >= 0 && static_cast<std::size_t>(id) < bpe.tokens.size() && bpe.has_token[static_cast<std::size_t>(id)])
      return &bpe.tokens[static_cast<std::size_t>(id)];
    return nullptr;
  }
  bool is_special(const std::string& t) const {
    const int a = added_by_content.find(t);
    return a >= 0 && added[static_cast<std::size_t>(a)].special;
  }
  // BPE of one pre-tokenized word through the shared word cache.
  void tokenize_word(std::string_view word, BpeWork& bw, std::vector<int>& ids) const {
    if (word.size() > WordCache::kMaxWordBytes) {
      bpe_tokenize(bpe, word, bw, ids);
      return;
    }
    const std::size_t h = WordCache::hash(word);
    if (cache.lookup(word, h, ids)) return;
    const std::size_t before = ids.size();
    bpe_tokenize(bpe, word, bw, ids);
    cache.insert(word, h, ids.data() + before, ids.size() - before);
  }
};

// The JSON error position, with the top-level component it falls in, so a broken vocabulary
// entry (invalid UTF-8 is a JSON error) names model.vocab.
inline std::string locate_json_error(const std::string& text, std::size_t byte) {
  static const char* keys[] = {"\"added_tokens\"", "\"normalizer\"", "\"pre_tokenizer\"",
                               "\"post_processor\"", "\"decoder\"", "\"model\"", "\"vocab\"",
                               "\"merges\""};
  static const char* names[] = {"added_tokens", "normalizer", "pre_tokenizer", "post_processor",
                                "decoder", "model", "model.vocab", "model.merges"};
  const std::size_t end = std::min(byte, text.size());
  std::size_t best = std::string::npos;
  int which = -1;
  for (int k = 0; k < 8; ++k) {
    const std::size_t at = text.rfind(keys[k], end);
    if (at != std::string::npos && (best == std::string::npos || at > best)) {
      best = at;
      which = k;
    }
  }
  return which < 0 ? std::string() : std::string(" in ") + names[which];
}

inline std::shared_ptr<const TokenizerImpl> parse_tokenizer_json(const std::string& text,
                                                                 const std::string& source);

// Every error names the source first, including those raised below the JSON layer (a regex
// that does not compile, an unknown Split behavior).
inline std::shared_ptr<const TokenizerImpl> parse_tokenizer(const std::string& text,
                                                            const std::string& source) {
  try {
    return parse_tokenizer_json(text, source);
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    if (msg.rfind(source + ": ", 0) == 0) throw;
    lowbit::detail::fail(source + ": " + msg);
  }
}

inline std::shared_ptr<const TokenizerImpl> parse_tokenizer_json(const std::string& text,
                                                                 const std::string& source) {
  const FailFn fail = [&](const std::string& what) { lowbit::detail::fail(source + ": " + what); };
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("not valid JSON" + locate_json_error(text, e.byte > 0 ? e.byte - 1 : 0) + ": " + e.what());
  } catch (const json::exception& e) {
    // Not a parse_error: a number outside double's range (out_of_range 406), found by
    // fuzz_tokenizer_json. Every nlohmann exception becomes a lowbit::error naming the file.
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail("the top level must be an object");
  auto t = std::make_shared<TokenizerImpl>();
  t->source = source;

  if (const auto it = j.find("truncation"); it != j.end() && !it->is_null())
    fail("truncation is not supported (it must be null)");
  if (const auto it = j.find("padding"); it != j.end() && !it->is_null())
    fail("padding is not supported (it must be null)");

  const auto mit = j.find("model");
  if (mit == j.end() || !mit->is_object()) fail("model: missing or not an object");
  const auto tit = mit->find("type");
  const std::string model_type = tit == mit->end() ? (mit->contains("merges") ? "BPE" : "")
                                 : tit->is_string() ? tit->get<std::string>() : "";
  if (model_type != "BPE")
    fail("model type '" + model_type + "' is not supported (only BPE)");
  t->bpe = parse_bpe(*mit, fail);
  for (const auto& tok : t->bpe.tokens)
    if (const auto bad = utf8_invalid_at(tok); bad != std::string_view::npos)
      fail("model.vocab: token is not valid UTF-8");  // (unreachable: the JSON parser checks)

  if (const auto it = j.find("normalizer"); it != j.end() && !it->is_null())
    parse_normalizer(*it, "normalizer", t->normalizer, fail);
  if (const auto it = j.find("pre_tokenizer"); it != j.end() && !it->is_null())
    parse_pre_tokenizer(*it, "pre_tokenizer", t->pre_tokenizer, fail);
  if (const auto it = j.find("decoder"); it != j.end() && !it->is_null()) {
    t->has_decoder = true;
    parse_decoder(*it, "decoder", t->decoder, fail);
  }
  if (const auto it = j.find("post_processor"); it != j.end() && !it->is_null())
    parse_post_processor(*it, "post_processor", t->post, fail);

  std::int64_t max_id = static_cast<std::int64_t>(t->bpe.tokens.size()) - 1;
  if (const auto it = j.find("added_tokens"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail("added_tokens must be an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& e = (*it)[i];
      const std::string w = "added_tokens[" + std::to_string(i) + "]";
      if (!e.is_object()) fail(w + " must be an object");
      AddedToken a;
      a.content = string_field(e, "content", w, fail);
      if (a.content.empty()) fail(w + ": empty content");
      const json& id = field(e, "id", w, fail);
      if (!id.is_number_unsigned() || id.get<std::uint64_t>() >= (1u << 24))
        fail(w + ": 'id' must be a token id");
      a.id = static_cast<int>(id.get<std::uint64_t>());
      a.single_word = bool_field(e, "single_word", false, w, fail);
      a.lstrip = bool_field(e, "lstrip", false, w, fail);
      a.rstrip = bool_field(e, "rstrip", false, w, fail);
      a.normalized = bool_field(e, "normalized", true, w, fail);
      a.special = bool_field(e, "special", false, w, fail);
      if (t->added_by_id.count(a.id)) fail(w + ": id " + std::to_string(a.id) + " is used twice");
      if (!t->added_by_content.insert(a.content, static_cast<int>(t->added.size())))
        fail(w + ": '" + a.content + "' is listed twice");
      t->added_by_id[a.id] = t->added.size();
      a.decoded = a.content;
      max_id = std::max<std::int64_t>(max_id, a.id);
      t->added.push_back(std::move(a));
    }
  }
  t->vocab_size_ = static_cast<int>(max_id + 1);
  // encode() hands out the template's ids: each must name a token.
  for (const auto& tmpl : t->post)
    for (int id : tmpl.items)
      if (id >= 0 && !t->has_id(id))
        fail("post_processor: special token id " + std::to_string(id) + " is not in the vocabulary");

  std::vector<std::string> raw_p, norm_p;
  std::vector<const AddedToken*> raw_t, norm_t;
  MatchData md;
  std::vector<Span> spans;
  for (auto& a : t->added) {
    if (a.normalized) {
      // tokenizers searches for, and decodes to, the normalized content of these tokens.
      if (!t->normalizer.empty()) a.decoded = normalize(t->normalizer, a.content, md, spans);
      norm_p.push_back(a.decoded);
      norm_t.push_back(&a);
    } else {
      raw_p.push_back(a.content);
      raw_t.push_back(&a);
    }
  }
  t->raw_matcher.build(std::move(raw_p), std::move(raw_t));
  t->normalized_matcher.build(std::move(norm_p), std::move(norm_t));
  return t;
}

inline std::shared_ptr<const TokenizerImpl> load_tokenizer(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  return parse_tokenizer(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace lowbit::model::detail::hf
