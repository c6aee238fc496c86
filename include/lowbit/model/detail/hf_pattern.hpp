#pragma once
// Patterns of tokenizer.json (Split, Replace): PCRE2 regexes (UTF + UCP, JIT when the library
// has it) standing in for the Oniguruma regexes Hugging Face tokenizers compiles, literal
// strings, and character predicates; and NormalizedString::split's five delimiter behaviors.
// Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/hf_text.hpp"

namespace lowbit::model::detail::hf {

// A piece of a string: [start, end) and whether it is a match of the pattern.
struct Span {
  std::size_t start, end;
  bool match;
};

// One pcre2_match_data per encode() call (PCRE2 match data is not shareable between threads;
// the compiled code is). One ovector pair is enough: only the whole match is used.
class MatchData {
 public:
  MatchData() : md_(pcre2_match_data_create(1, nullptr)) {
    if (md_ == nullptr) throw std::bad_alloc();
  }
  ~MatchData() { pcre2_match_data_free(md_); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* get() const { return md_; }

 private:
  pcre2_match_data* md_;
};

class Regex {
 public:
  // what: where the pattern comes from, for error messages ("pre_tokenizer Split").
  Regex(const std::string& pattern, const std::string& what) : what_(what) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    // Oniguruma (Ruby syntax) treats ^ and $ as line anchors; PCRE2_MULTILINE does the same.
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      lowbit::detail::fail(what + ": regex does not compile at offset " + std::to_string(offset) +
                           ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT is an optimisation: a library built without it (or an exotic pattern) falls back
    // to the interpreter with the same results.
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
    context_ = pcre2_match_context_create(nullptr);
    if (context_ == nullptr) {
      pcre2_code_free(code_);
      throw std::bad_alloc();
    }
    // Hostile patterns (catastrophic backtracking) end in an error, not in minutes of work.
    pcre2_set_match_limit(context_, 2000000);
    pcre2_set_depth_limit(context_, 100000);
  }
  ~Regex() {
    pcre2_match_context_free(context_);
    pcre2_code_free(code_);
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  bool jit() const { return jit_; }

  // Oniguruma's find_iter as the onig crate runs it (and tokenizers relies on): successive
  // leftmost matches; an empty match right where the previous match ended is skipped by
  // moving one character on. f(start, end) gets each match.
  template <class F>
  void find_iter(std::string_view s, MatchData& md, F&& f) const {
    std::size_t last_end = 0;
    bool have_last = false;
    std::size_t last_match_end = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    while (last_end <= s.size()) {
      // The JIT entry point skips the interpreter's option checks (the text is valid UTF-8).
      const int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), last_end, 0, md.get(), context_)
                          : pcre2_match(code_, subject, s.size(), last_end, PCRE2_NO_UTF_CHECK,
                                        md.get(), context_);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        lowbit::detail::fail(what_ + ": regex match failed: " + reinterpret_cast<const char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const std::size_t start = ov[0], end = ov[1];
      if (start > end || start < last_end || end > s.size())
        lowbit::detail::fail(what_ + ": regex gave a match outside the searched text (\\K?)");
      if (start == end && have_last && last_match_end == end) {
        last_end += last_end < s.size() ? utf8_len(s, last_end) : 1;
        continue;
      }
      last_end = end;
      have_last = true;
      last_match_end = end;
      f(start, end);
    }
  }

 private:
  std::string what_;
  pcre2_code* code_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  bool jit_ = false;
};

// A Split / Replace pattern: {"String": s} or {"Regex": r}. Both are regexes in tokenizers
// (the string escaped); a non-empty string is searched directly, which finds the same
// non-overlapping leftmost matches faster.
struct Pattern {
  std::string literal;
  std::shared_ptr<const Regex> regex;  // null: literal
  std::string source;                  // as written, for messages

  // Pattern::find_matches: the whole of s as alternating non-match / match spans.
  void find_matches(std::string_view s, MatchData& md, std::vector<Span>& out) const {
    out.clear();
    if (s.empty()) {
      out.push_back({0, 0, false});
      return;
    }
    std::size_t prev = 0;
    const auto on_match = [&](std::size_t start, std::size_t end) {
      if (prev != start) out.push_back({prev, start, false});
      out.push_back({start, end, true});
      prev = end;
    };
    if (regex) {
      regex->find_iter(s, md, on_match);
    } else {
      for (std::size_t pos = s.find(literal); pos != std::string_view::npos;
           pos = s.find(literal, pos + literal.size()))
        on_match(pos, pos + literal.size());
    }
    if (prev != s.size()) out.push_back({prev, s.size(), false});
  }
};

// The pattern for a String: a direct search unless it is empty (the empty regex matches at
// every character boundary, which the Regex path reproduces).
inline Pattern make_string_pattern(const std::string& s, const std::string& what) {
  Pattern p;
  p.source = s;
  if (s.empty()) {
    p.regex = std::make_shared<const Regex>(std::string(), what);
  } else {
    p.literal = s;
  }
  return p;
}

inline Pattern make_regex_pattern(const std::string& r, const std::string& what) {
  Pattern p;
  p.source = r;
  p.regex = std::make_shared<const Regex>(r, what);
  return p;
}

// A character-predicate pattern (Digits, Metaspace's split): every character for which pred
// holds is a one-character match.
template <class Pred>
void find_char_matches(std::string_view s, Pred pred, std::vector<Span>& out) {
  out.clear();
  if (s.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  std::size_t last = 0;
  char32_t cp;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) lowbit::detail::fail("tokenizer: invalid UTF-8 inside the tokenizer pipeline");
    if (pred(cp)) {
      if (last < i) out.push_back({last, i, false});
      out.push_back({i, i + n, true});
      last = i + n;
    }
    i += n;
  }
  if (last < s.size()) out.push_back({last, s.size(), false});
}

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

inline Behavior parse_behavior(const std::string& s, const std::string& what) {
  if (s == "Removed") return Behavior::removed;
  if (s == "Isolated") return Behavior::isolated;
  if (s == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (s == "MergedWithNext") return Behavior::merged_with_next;
  if (s == "Contiguous") return Behavior::contiguous;
  lowbit::detail::fail(what + ": behavior '" + s + "' is not one of Removed, Isolated, "
                       "MergedWithPrevious, MergedWithNext, Contiguous");
}

// NormalizedString::split: turns the spans of find_matches (after invert) into the pieces
// to keep, in place. On return, match == true marks a piece to drop (Removed only).
inline void apply_behavior(std::vector<Span>& spans, Behavior behavior) {
  switch (behavior) {
    case Behavior::removed:
      return;
    case Behavior::isolated:
      for (auto& s : spans) s.match = false;
      return;
    case Behavior::contiguous:
    case Behavior::merged_with_previous: {
      std::vector<Span> out;
      out.reserve(spans.size());
      bool previous = false;
      for (const auto& s : spans) {
        const bool merge = behavior == Behavior::contiguous ? s.match == previous
                                                            : (s.match && !previous);
        if (merge && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous = s.match;
      }
      spans.swap(out);
      return;
    }
    case Behavior::merged_with_next: {
      std::vector<Span> out;
      out.reserve(spans.size());
      bool previous = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous && !out.empty()) {
          out.back().start = it->start;
        } else {
          out.push_back({it->start, it->end, false});
        }
        previous = it->match;
      }
      spans.assign(out.rbegin(), out.rend());
      return;
    }
  }
}

}  // namespace lowbit::model::detail::hf
