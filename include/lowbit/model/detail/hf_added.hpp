#pragma once
// added_tokens of tokenizer.json: found in the text before the model runs, as tokenizers'
// AddedVocabulary does it: a leftmost-longest search (tokenizers uses Aho-Corasick with
// LeftmostLongest), then single_word / lstrip / rstrip applied to each match.
// Tokens with normalized == false are searched in the raw text, the others in the
// normalized pieces between those matches (with their content normalized too).
// Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/model/detail/hf_text.hpp"

namespace lowbit::model::detail::hf {

struct AddedToken {
  std::string content;
  std::string decoded;  // what decode() and token() give: content, normalized when normalized
  int id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of the text: an added token (id >= 0) or text for the model (id < 0).
struct AddedSplit {
  int id;
  std::size_t start, end;
};

class AddedMatcher {
 public:
  // patterns[i] is what to search for token tokens[i] (its content, normalized or not).
  void build(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens) {
    patterns_ = std::move(patterns);
    tokens_ = std::move(tokens);
    first_.fill(false);
    order_.resize(patterns_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    // Longest first, so the first hit at a position is the longest one there.
    std::stable_sort(order_.begin(), order_.end(), [&](std::size_t a, std::size_t b) {
      return patterns_[a].size() > patterns_[b].size();
    });
    for (const auto& p : patterns_)
      if (!p.empty()) first_[static_cast<unsigned char>(p[0])] = true;
  }
  bool empty() const { return patterns_.empty(); }

  // AddedVocabulary::find_matches over `s`: the whole of s as token / text splits.
  void find(std::string_view s, std::vector<AddedSplit>& out) const {
    out.clear();
    if (s.empty()) return;
    std::size_t start_offset = 0, pos = 0;
    while (pos < s.size()) {
      // Leftmost-longest: the first position where a pattern matches, its longest pattern.
      std::size_t hit = npos;
      for (; pos < s.size(); ++pos) {
        if (!first_[static_cast<unsigned char>(s[pos])]) continue;
        for (std::size_t k : order_) {
          const auto& p = patterns_[k];
          if (!p.empty() && s.size() - pos >= p.size() && s.compare(pos, p.size(), p) == 0) {
            hit = k;
            break;
          }
        }
        if (hit != npos) break;
      }
      if (hit == npos) break;
      std::size_t start = pos, stop = pos + patterns_[hit].size();
      pos = stop;
      const AddedToken& tok = *tokens_[hit];
      if (tok.single_word) {
        const bool start_space = start == 0 || !is_word_char(last_code_point(s.substr(0, start)));
        const bool stop_space = stop == s.size() || !is_word_char(first_code_point(s.substr(stop)));
        if (!start_space || !stop_space) continue;
      }
      if (tok.lstrip) {
        std::size_t new_start = start;
        while (new_start > 0) {
          std::size_t b = new_start - 1;
          while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
          if (!is_white_space(first_code_point(s.substr(b)))) break;
          new_start = b;
        }
        start = std::max(new_start, start_offset);
      }
      if (tok.rstrip) {
        while (stop < s.size()) {
          const std::size_t n = utf8_len(s, stop);
          if (!is_white_space(first_code_point(s.substr(stop)))) break;
          stop += n;
        }
      }
      if (start_offset < start) out.push_back({-1, start_offset, start});
      out.push_back({tok.id, start, stop});
      start_offset = stop;
    }
    if (start_offset < s.size()) out.push_back({-1, start_offset, s.size()});
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  static char32_t last_code_point(std::string_view s) {
    std::size_t b = s.size() - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    return first_code_point(s.substr(b));
  }
  std::vector<std::string> patterns_;
  std::vector<const AddedToken*> tokens_;
  std::vector<std::size_t> order_;
  std::array<bool, 256> first_{};
};

}  // namespace lowbit::model::detail::hf
