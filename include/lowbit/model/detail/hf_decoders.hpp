#pragma once
// Decoders and post-processors of tokenizer.json: parsed into flat step lists (Sequence
// flattened) and run as Hugging Face tokenizers runs them (decode_chain over the token
// strings, then the pieces joined). Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lowbit/model/detail/hf_components.hpp"

namespace lowbit::model::detail::hf {

// ---- decoders ----------------------------------------------------------------------------

struct DecStep {
  enum Kind { byte_level, metaspace, replace, byte_fallback, fuse, strip } kind;
  Pattern pattern;           // Replace
  std::string content;       // Replace
  char32_t replacement = 0;  // Metaspace
  PrependScheme scheme = PrependScheme::always;
  char32_t strip_char = 0;   // Strip
  std::size_t start = 0, stop = 0;
};

inline std::size_t count_field(const json& j, const char* key, const std::string& w, const FailFn& fail) {
  const json& v = field(j, key, w, fail);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > (1u << 20))
    fail(w + ": '" + key + "' must be a small non-negative integer");
  return static_cast<std::size_t>(v.get<std::uint64_t>());
}

inline void parse_decoder(const json& j, const std::string& what, std::vector<DecStep>& out,
                          const FailFn& fail, int depth = 0) {
  if (depth > 16) fail(what + ": Sequence nested too deeply");
  const std::string type = type_of(j, what, fail);
  const std::string w = what + " " + type;
  DecStep st;
  if (type == "Sequence") {
    const json& list = field(j, "decoders", w, fail);
    if (!list.is_array()) fail(w + ": 'decoders' must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_decoder(list[i], what + "[" + std::to_string(i) + "]", out, fail, depth + 1);
    return;
  } else if (type == "ByteLevel") {
    st.kind = DecStep::byte_level;
  } else if (type == "Metaspace") {
    st.kind = DecStep::metaspace;
    st.replacement = char_field(j, "replacement", w, fail);
    st.scheme = parse_scheme(j, w, fail);
  } else if (type == "Replace") {
    st.kind = DecStep::replace;
    st.pattern = pattern_field(j, w, fail);
    st.content = string_field(j, "content", w, fail);
  } else if (type == "ByteFallback") {
    st.kind = DecStep::byte_fallback;
  } else if (type == "Fuse") {
    st.kind = DecStep::fuse;
  } else if (type == "Strip") {
    st.kind = DecStep::strip;
    st.strip_char = char_field(j, "content", w, fail);
    st.start = count_field(j, "start", w, fail);
    st.stop = count_field(j, "stop", w, fail);
  } else {
    fail(what + " type '" + type + "' is not supported (supported: ByteLevel, Metaspace, Replace, "
         "ByteFallback, Fuse, Strip, Sequence)");
  }
  out.push_back(std::move(st));
}

inline std::vector<char32_t> code_points(const std::string& s) {
  std::vector<char32_t> cps;
  char32_t cp;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) {  // cannot happen for vocabulary strings (validated); be safe
      cps.push_back(0xFFFD);
      ++i;
      continue;
    }
    cps.push_back(cp);
    i += n;
  }
  return cps;
}

// "<0xAB>" -> 0xAB as tokenizers' ByteFallback reads it (u8::from_str_radix, which also takes
// a leading '+'), else -1.
inline int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') return hex(t[4]);
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

inline void run_decoder(const DecStep& st, std::vector<std::string>& tokens, MatchData& md) {
  std::vector<Span> spans;
  switch (st.kind) {
    case DecStep::byte_level: {
      // Every character back to its byte (a token with a character outside the table keeps
      // its UTF-8 bytes), all tokens joined, then decoded lossily.
      const auto& dec = ByteLevelTable::get().decode;
      std::string bytes;
      for (const auto& t : tokens) {
        std::string mapped;
        bool ok = true;
        for (char32_t cp : code_points(t)) {
          if (cp >= dec.size() || dec[cp] < 0) {
            ok = false;
            break;
          }
          mapped += static_cast<char>(dec[cp]);
        }
        bytes += ok ? mapped : t;
      }
      tokens.assign(1, utf8_lossy(bytes));
      return;
    }
    case DecStep::metaspace:
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        for (char32_t cp : code_points(tokens[i])) {
          if (cp == st.replacement) {
            if (i == 0 && st.scheme != PrependScheme::never) continue;
            out += ' ';
          } else {
            append_utf8(out, cp);
          }
        }
        tokens[i] = std::move(out);
      }
      return;
    case DecStep::replace:
      for (auto& t : tokens) t = replace_all(t, st.pattern, st.content, md, spans);
      return;
    case DecStep::byte_fallback: {
      std::vector<std::string> out;
      std::string pending;
      const auto flush = [&]() {
        if (pending.empty()) return;
        if (utf8_invalid_at(pending) == std::string_view::npos) {
          out.push_back(pending);
        } else {
          for (std::size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
        }
        pending.clear();
      };
      for (auto& t : tokens) {
        const int b = byte_token_value(t);
        if (b >= 0) {
          pending += static_cast<char>(b);
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      tokens.swap(out);
      return;
    }
    case DecStep::fuse: {
      std::string all;
      for (const auto& t : tokens) all += t;
      tokens.assign(1, all);
      return;
    }
    case DecStep::strip:
      for (auto& t : tokens) {
        const auto cps = code_points(t);
        std::size_t start_cut = 0;
        for (std::size_t i = 0; i < st.start && i < cps.size() && cps[i] == st.strip_char; ++i) start_cut = i + 1;
        std::size_t stop_cut = cps.size();
        for (std::size_t i = 0; i < st.stop && i < cps.size(); ++i) {
          const std::size_t index = cps.size() - i - 1;
          if (index < start_cut || cps[index] != st.strip_char) break;
          stop_cut = index;
        }
        std::string out;
        for (std::size_t i = start_cut; i < stop_cut; ++i) append_utf8(out, cps[i]);
        t = std::move(out);
      }
      return;
  }
}

// ---- post-processors ---------------------------------------------------------------------

// One TemplateProcessing "single" template: ids to emit, -1 standing for the sequence.
struct Template {
  std::vector<int> items;
};

inline void parse_template(const json& j, const std::string& w, std::vector<Template>& out,
                           const FailFn& fail) {
  const json& single = field(j, "single", w, fail);
  if (!single.is_array())
    fail(w + ": 'single' must be a list of pieces (the \"$A\" string form is not supported)");
  const json& specials = field(j, "special_tokens", w, fail);
  if (!specials.is_object()) fail(w + ": 'special_tokens' must be an object");
  Template t;
  for (const auto& piece : single) {
    if (!piece.is_object() || piece.size() != 1) fail(w + ": a template piece must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    const std::string kind = piece.begin().key();
    const json& body = piece.begin().value();
    if (!body.is_object()) fail(w + ": template piece '" + kind + "' must be an object");
    const std::string id = string_field(body, "id", w + " " + kind, fail);
    if (kind == "Sequence") {
      if (id != "A") fail(w + ": the single template uses sequence '" + id + "' (only A exists)");
      t.items.push_back(-1);
    } else if (kind == "SpecialToken") {
      const auto it = specials.find(id);
      if (it == specials.end()) fail(w + ": special token '" + id + "' is not in special_tokens");
      const json& ids = field(*it, "ids", w + " special_tokens['" + id + "']", fail);
      if (!ids.is_array()) fail(w + ": special_tokens['" + id + "'].ids must be an array");
      for (const auto& v : ids) {
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() >= (1u << 24))
          fail(w + ": special_tokens['" + id + "'].ids must hold token ids");
        t.items.push_back(static_cast<int>(v.get<std::uint64_t>()));
      }
    } else {
      fail(w + ": unknown template piece '" + kind + "'");
    }
  }
  out.push_back(std::move(t));
}

inline void parse_post_processor(const json& j, const std::string& what, std::vector<Template>& out,
                                 const FailFn& fail, int depth = 0) {
  if (depth > 16) fail(what + ": Sequence nested too deeply");
  const std::string type = type_of(j, what, fail);
  const std::string w = what + " " + type;
  if (type == "Sequence") {
    const json& list = field(j, "processors", w, fail);
    if (!list.is_array()) fail(w + ": 'processors' must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_post_processor(list[i], what + "[" + std::to_string(i) + "]", out, fail, depth + 1);
  } else if (type == "TemplateProcessing") {
    parse_template(j, w, out, fail);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets (trim_offsets); ids are unchanged.
  } else {
    fail(what + " type '" + type + "' is not supported (supported: TemplateProcessing, ByteLevel, "
         "Sequence)");
  }
}

// Applies the templates in order (a Sequence processor chains them).
inline std::vector<int> post_process(const std::vector<Template>& templates, std::vector<int> ids,
                                     bool add_special_tokens) {
  if (!add_special_tokens) return ids;
  for (const auto& t : templates) {
    std::vector<int> out;
    out.reserve(ids.size() + t.items.size());
    for (int item : t.items) {
      if (item < 0) out.insert(out.end(), ids.begin(), ids.end());
      else out.push_back(item);
    }
    ids.swap(out);
  }
  return ids;
}

}  // namespace lowbit::model::detail::hf
