#pragma once
// The normalizers, pre-tokenizers and decoders of tokenizer.json that lowbit supports, parsed
// into flat step lists (Sequence is flattened) and run with Hugging Face tokenizers'
// semantics. Anything else is refused with the component and its type named.
// Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/hf_pattern.hpp"
#include "lowbit/model/detail/hf_text.hpp"

namespace lowbit::model::detail::hf {

using json = nlohmann::json;
using FailFn = std::function<void(const std::string&)>;

// ---- JSON field helpers (fail names the component and key) ---------------------------

inline const json& field(const json& j, const char* key, const std::string& what, const FailFn& fail) {
  const auto it = j.find(key);
  if (it == j.end()) fail(what + ": missing '" + key + "'");
  return *it;
}
inline std::string string_field(const json& j, const char* key, const std::string& what, const FailFn& fail) {
  const json& v = field(j, key, what, fail);
  if (!v.is_string()) fail(what + ": '" + key + "' must be a string");
  return v.get<std::string>();
}
inline bool bool_field(const json& j, const char* key, bool dflt, const std::string& what, const FailFn& fail) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail(what + ": '" + key + "' must be true or false");
  return it->get<bool>();
}
inline std::string type_of(const json& j, const std::string& what, const FailFn& fail) {
  if (!j.is_object()) fail(what + " must be an object or null");
  return string_field(j, "type", what, fail);
}
// {"String": "..."} or {"Regex": "..."}
inline Pattern pattern_field(const json& j, const std::string& what, const FailFn& fail) {
  const json& p = field(j, "pattern", what, fail);
  if (p.is_object() && p.size() == 1 && p.begin().value().is_string()) {
    const std::string v = p.begin().value().get<std::string>();
    if (p.begin().key() == "String") return make_string_pattern(v, what);
    if (p.begin().key() == "Regex") return make_regex_pattern(v, what);
  }
  fail(what + ": 'pattern' must be {\"String\": ...} or {\"Regex\": ...}");
  return {};
}
// A single-character string (Metaspace replacement, Strip content).
inline char32_t char_field(const json& j, const char* key, const std::string& what, const FailFn& fail) {
  const std::string s = string_field(j, key, what, fail);
  char32_t cp = 0;
  if (s.empty() || utf8_sequence(s, 0, &cp) != s.size())
    fail(what + ": '" + key + "' must be exactly one character");
  return cp;
}

// ---- normalizers -------------------------------------------------------------------------

struct NormStep {
  enum Kind { nfc, nfkc, prepend, replace, lowercase } kind;
  std::string text;  // Prepend's prefix, Replace's content
  Pattern pattern;   // Replace
};

inline void parse_normalizer(const json& j, const std::string& what, std::vector<NormStep>& out,
                             const FailFn& fail, int depth = 0) {
  if (depth > 16) fail(what + ": Sequence nested too deeply");
  const std::string type = type_of(j, what, fail);
  const std::string w = what + " " + type;
  if (type == "Sequence") {
    const json& list = field(j, "normalizers", w, fail);
    if (!list.is_array()) fail(w + ": 'normalizers' must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_normalizer(list[i], what + "[" + std::to_string(i) + "]", out, fail, depth + 1);
  } else if (type == "NFC") {
    out.push_back({NormStep::nfc, {}, {}});
  } else if (type == "NFKC") {
    out.push_back({NormStep::nfkc, {}, {}});
  } else if (type == "Lowercase") {
    out.push_back({NormStep::lowercase, {}, {}});
  } else if (type == "Prepend") {
    out.push_back({NormStep::prepend, string_field(j, "prepend", w, fail), {}});
  } else if (type == "Replace") {
    out.push_back({NormStep::replace, string_field(j, "content", w, fail), pattern_field(j, w, fail)});
  } else {
    fail(what + " type '" + type + "' is not supported (supported: NFC, NFKC, Prepend, Replace, "
         "Lowercase, Sequence)");
  }
}

// NormalizedString::replace: every match (find_matches) becomes content.
inline std::string replace_all(std::string_view s, const Pattern& p, const std::string& content,
                               MatchData& md, std::vector<Span>& spans) {
  p.find_matches(s, md, spans);
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (const auto& sp : spans) {
    if (sp.match) out += content;
    else out.append(s.data() + sp.start, sp.end - sp.start);
  }
  return out;
}

inline std::string normalize(const std::vector<NormStep>& steps, std::string_view s, MatchData& md,
                             std::vector<Span>& spans) {
  std::string cur(s);
  for (const auto& st : steps) {
    switch (st.kind) {
      case NormStep::nfc: cur = unicode_normalize(cur, false); break;
      case NormStep::nfkc: cur = unicode_normalize(cur, true); break;
      case NormStep::lowercase: cur = unicode_lowercase(cur); break;
      case NormStep::prepend:
        if (!cur.empty()) cur.insert(0, st.text);
        break;
      case NormStep::replace: cur = replace_all(cur, st.pattern, st.text, md, spans); break;
    }
  }
  return cur;
}

// ---- pre-tokenizers ----------------------------------------------------------------------

enum class PrependScheme { always, first, never };

struct PreStep {
  enum Kind { split, byte_level, metaspace, digits } kind;
  Pattern pattern;  // Split
  bool invert = false;
  Behavior behavior = Behavior::isolated;
  bool add_prefix_space = false, use_regex = false;  // ByteLevel
  std::shared_ptr<const Regex> byte_level_regex;     // ByteLevel with use_regex
  std::string replacement;                           // Metaspace, as UTF-8
  char32_t replacement_cp = 0;
  PrependScheme scheme = PrependScheme::always;
  bool split_on_replacement = true;  // Metaspace's split
  bool individual_digits = false;    // Digits
};

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is true.
inline constexpr const char* kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

inline PrependScheme parse_scheme(const json& j, const std::string& w, const FailFn& fail) {
  const auto it = j.find("prepend_scheme");
  if (it == j.end() || it->is_null()) {
    // Files written before prepend_scheme existed carry add_prefix_space instead.
    return bool_field(j, "add_prefix_space", true, w, fail) ? PrependScheme::always : PrependScheme::never;
  }
  const std::string s = it->is_string() ? it->get<std::string>() : std::string();
  if (s == "always") return PrependScheme::always;
  if (s == "first") return PrependScheme::first;
  if (s == "never") return PrependScheme::never;
  fail(w + ": prepend_scheme must be \"always\", \"first\" or \"never\"");
  return PrependScheme::always;
}

inline void parse_metaspace(const json& j, const std::string& w, PreStep& st, const FailFn& fail) {
  st.replacement_cp = char_field(j, "replacement", w, fail);
  st.replacement = string_field(j, "replacement", w, fail);
  st.scheme = parse_scheme(j, w, fail);
  st.split_on_replacement = bool_field(j, "split", true, w, fail);
}

inline void parse_pre_tokenizer(const json& j, const std::string& what, std::vector<PreStep>& out,
                                const FailFn& fail, int depth = 0) {
  if (depth > 16) fail(what + ": Sequence nested too deeply");
  const std::string type = type_of(j, what, fail);
  const std::string w = what + " " + type;
  PreStep st;
  if (type == "Sequence") {
    const json& list = field(j, "pretokenizers", w, fail);
    if (!list.is_array()) fail(w + ": 'pretokenizers' must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(list[i], what + "[" + std::to_string(i) + "]", out, fail, depth + 1);
    return;
  } else if (type == "Split") {
    st.kind = PreStep::split;
    st.pattern = pattern_field(j, w, fail);
    st.behavior = parse_behavior(string_field(j, "behavior", w, fail), w);
    st.invert = bool_field(j, "invert", false, w, fail);
  } else if (type == "ByteLevel") {
    st.kind = PreStep::byte_level;
    st.add_prefix_space = bool_field(j, "add_prefix_space", true, w, fail);
    st.use_regex = bool_field(j, "use_regex", true, w, fail);
    if (st.use_regex) st.byte_level_regex = std::make_shared<const Regex>(kByteLevelRegex, w);
  } else if (type == "Metaspace") {
    st.kind = PreStep::metaspace;
    parse_metaspace(j, w, st, fail);
  } else if (type == "Digits") {
    st.kind = PreStep::digits;
    st.individual_digits = bool_field(j, "individual_digits", false, w, fail);
  } else {
    fail(what + " type '" + type + "' is not supported (supported: Split, ByteLevel, Metaspace, "
         "Digits, Sequence)");
  }
  out.push_back(std::move(st));
}

// Per-call scratch for the pre-tokenizer stages: each stage owns its buffers, so the
// depth-first walk below never invalidates a string a shallower stage is still splitting.
struct PreWork {
  MatchData md;
  std::vector<std::vector<Span>> spans;
  std::vector<std::string> text, piece;
  std::vector<Span> norm_spans;
  explicit PreWork(std::size_t stages) : spans(stages + 1), text(stages + 1), piece(stages + 1) {}
};

// Runs stages [k, end) on s and calls emit(word) for every final non-empty piece, in order.
// at_origin: s starts at offset 0 of the original text (Metaspace's "first" scheme).
// Pre-tokenizers map each split on its own, so depth-first equals tokenizers' stage-by-stage.
template <class Emit>
void pre_tokenize(const std::vector<PreStep>& steps, std::size_t k, std::string_view s,
                  bool at_origin, PreWork& w, Emit& emit) {
  if (s.empty()) return;
  if (k == steps.size()) {
    emit(s);
    return;
  }
  const PreStep& st = steps[k];
  auto& spans = w.spans[k];
  const auto recurse_spans = [&](std::string_view base) {
    for (std::size_t i = 0; i < spans.size(); ++i) {
      const Span sp = spans[i];
      if (sp.match || sp.end == sp.start) continue;
      pre_tokenize(steps, k + 1, base.substr(sp.start, sp.end - sp.start), at_origin && sp.start == 0, w, emit);
    }
  };
  switch (st.kind) {
    case PreStep::split:
      if (st.pattern.regex && (st.behavior == Behavior::isolated || st.behavior == Behavior::removed)) {
        // The common case (Llama 3, Qwen2): pieces go on as the regex finds them, without a
        // list of spans for the whole text. Inverting does not change Isolated.
        const bool keep_matches = st.behavior == Behavior::isolated || st.invert;
        const bool keep_gaps = st.behavior == Behavior::isolated || !st.invert;
        std::size_t prev = 0;
        st.pattern.regex->find_iter(s, w.md, [&](std::size_t a, std::size_t b) {
          if (keep_gaps && prev != a) pre_tokenize(steps, k + 1, s.substr(prev, a - prev), at_origin && prev == 0, w, emit);
          if (keep_matches) pre_tokenize(steps, k + 1, s.substr(a, b - a), at_origin && a == 0, w, emit);
          prev = b;
        });
        if (keep_gaps && prev != s.size()) pre_tokenize(steps, k + 1, s.substr(prev), at_origin && prev == 0, w, emit);
        return;
      }
      st.pattern.find_matches(s, w.md, spans);
      if (st.invert)
        for (auto& sp : spans) sp.match = !sp.match;
      apply_behavior(spans, st.behavior);
      recurse_spans(s);
      return;
    case PreStep::digits:
      if (st.individual_digits) {
        find_char_matches(s, is_numeric_char, spans);
        apply_behavior(spans, Behavior::isolated);
      } else {
        find_char_matches(s, is_numeric_char, spans);
        apply_behavior(spans, Behavior::contiguous);
      }
      recurse_spans(s);
      return;
    case PreStep::metaspace: {
      std::string& t = w.text[k];
      t.clear();
      const bool prepend = (st.scheme == PrependScheme::always ||
                            (st.scheme == PrependScheme::first && at_origin));
      // The prefix check looks at the text after ' ' became the replacement.
      const bool starts = (!s.empty() && s[0] == ' ') ||
                          (s.size() >= st.replacement.size() && s.compare(0, st.replacement.size(), st.replacement) == 0);
      if (prepend && !starts) t += st.replacement;
      for (char c : s) {
        if (c == ' ') t += st.replacement;
        else t += c;
      }
      if (!st.split_on_replacement) {
        pre_tokenize(steps, k + 1, t, at_origin, w, emit);
        return;
      }
      const char32_t rep = st.replacement_cp;
      find_char_matches(t, [rep](char32_t c) { return c == rep; }, spans);
      apply_behavior(spans, Behavior::merged_with_next);
      recurse_spans(t);
      return;
    }
    case PreStep::byte_level: {
      std::string_view base = s;
      if (st.add_prefix_space && s[0] != ' ') {
        std::string& t = w.text[k];
        t.assign(1, ' ');
        t.append(s.data(), s.size());
        base = t;
      }
      const auto& table = ByteLevelTable::get().encode;
      std::string& p = w.piece[k];
      const auto map_and_recurse = [&](std::string_view part, bool origin) {
        p.clear();
        for (char c : part) p += table[static_cast<unsigned char>(c)];
        pre_tokenize(steps, k + 1, p, origin, w, emit);
      };
      if (!st.use_regex) {
        map_and_recurse(base, at_origin);
        return;
      }
      std::size_t prev = 0;  // Isolated: the matches and the text between them
      st.byte_level_regex->find_iter(base, w.md, [&](std::size_t a, std::size_t b) {
        if (prev != a) map_and_recurse(base.substr(prev, a - prev), at_origin && prev == 0);
        if (b != a) map_and_recurse(base.substr(a, b - a), at_origin && a == 0);
        prev = b;
      });
      if (prev != base.size()) map_and_recurse(base.substr(prev), at_origin && prev == 0);
      return;
    }
  }
}

}  // namespace lowbit::model::detail::hf
