#pragma once
// The llama2.c tokenizer (tok512.bin, tokenizer.bin): a vocabulary of byte strings with
// merge scores, and llama2.c's encode():
//   1. BOS (id 1) first when asked;
//   2. a dummy-prefix space: the token for " " is prepended when the text is non-empty;
//   3. each UTF-8 code point becomes its token if the vocabulary has it, otherwise one
//      token per byte at id 3 + byte (byte fallback);
//   4. repeatedly merge the adjacent pair whose concatenation is in the vocabulary with the
//      highest score (the leftmost pair on ties) until no pair merges;
//   5. EOS (id 2) last when asked.
// File format: int32 max_token_length, then per token: float32 score, int32 length, bytes.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/model/detail/read_file.hpp"

namespace lowbit::model {

class Tokenizer {
 public:
  static constexpr int kBos = 1, kEos = 2, kByteFallbackOffset = 3;

  // Reads every entry of the file; when expected_vocab_size > 0 the count must match it.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static Tokenizer load(const std::string& path, int expected_vocab_size = -1) {
    const auto bytes = detail::read_file_bytes(path);
    auto fail = [&](const std::string& what) { lowbit::detail::fail(path + ": " + what); };
    if (bytes.size() < 4) fail("too short for a llama2.c tokenizer header");
    Tokenizer tok;
    tok.max_token_length_ = detail::load_i32(bytes.data());
    if (tok.max_token_length_ <= 0 || tok.max_token_length_ > (1 << 16))
      fail("max_token_length " + std::to_string(tok.max_token_length_) + " out of range");
    std::size_t pos = 4;
    while (pos < bytes.size()) {
      const std::size_t id = tok.vocab_.size();
      if (bytes.size() - pos < 8) fail("token " + std::to_string(id) + ": truncated entry");
      const float score = detail::load_f32(bytes.data() + pos);
      const std::int32_t len = detail::load_i32(bytes.data() + pos + 4);
      pos += 8;
      if (len < 0 || len > tok.max_token_length_ || static_cast<std::size_t>(len) > bytes.size() - pos)
        fail("token " + std::to_string(id) + ": length " + std::to_string(len) +
             " is negative, above max_token_length or past the end of the file");
      tok.vocab_.emplace_back(reinterpret_cast<const char*>(bytes.data() + pos), static_cast<std::size_t>(len));
      tok.scores_.push_back(score);
      pos += static_cast<std::size_t>(len);
    }
    if (tok.vocab_.size() < kByteFallbackOffset + 256)
      fail("only " + std::to_string(tok.vocab_.size()) +
           " tokens; a llama2.c vocabulary has the 3 special tokens and 256 byte tokens");
    if (expected_vocab_size > 0 && static_cast<int>(tok.vocab_.size()) != expected_vocab_size)
      fail(std::to_string(tok.vocab_.size()) + " tokens, but the model's vocabulary has " +
           std::to_string(expected_vocab_size));
    // First occurrence wins for duplicate strings, like a sorted-vocabulary bsearch would
    // find one of them; llama2.c vocabularies have none in practice.
    for (std::size_t i = 0; i < tok.vocab_.size(); ++i) tok.lookup_.emplace(tok.vocab_[i], static_cast<int>(i));
    return tok;
  }

  int vocab_size() const { return static_cast<int>(vocab_.size()); }
  const std::string& piece(int id) const { return vocab_.at(static_cast<std::size_t>(id)); }
  float score(int id) const { return scores_.at(static_cast<std::size_t>(id)); }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  std::vector<int> encode(const std::string& text, bool bos = true, bool eos = false) const {
    std::vector<int> tokens;
    if (bos) tokens.push_back(kBos);
    if (!text.empty()) tokens.push_back(id_of_or_fail(" "));
    // Split into UTF-8 code points (a lead byte plus at most 3 continuation bytes).
    for (std::size_t i = 0; i < text.size();) {
      std::size_t j = i + 1;
      while (j < text.size() && j - i < 4 && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) ++j;
      const std::string cp = text.substr(i, j - i);
      auto it = lookup_.find(cp);
      if (it != lookup_.end()) {
        tokens.push_back(it->second);
      } else {
        for (unsigned char b : cp) tokens.push_back(kByteFallbackOffset + b);
      }
      i = j;
    }
    // Greedy merges; the BOS token never merges (its piece is not text).
    const std::size_t first = bos ? 1 : 0;
    for (;;) {
      float best_score = 0.0f;
      int best_id = -1;
      std::size_t best_at = 0;
      for (std::size_t t = first; t + 1 < tokens.size(); ++t) {
        auto it = lookup_.find(piece(tokens[t]) + piece(tokens[t + 1]));
        if (it != lookup_.end() && (best_id < 0 || scores_[static_cast<std::size_t>(it->second)] > best_score)) {
          best_score = scores_[static_cast<std::size_t>(it->second)];
          best_id = it->second;
          best_at = t;
        }
      }
      if (best_id < 0) break;
      tokens[best_at] = best_id;
      tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    }
    if (eos) tokens.push_back(kEos);
    return tokens;
  }

  // The text of a token sequence (byte-fallback tokens give their byte; BOS/EOS nothing).
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  std::string decode(const std::vector<int>& tokens) const {
    std::string out;
    for (int id : tokens) {
      if (id == kBos || id == kEos) continue;
      if (id >= kByteFallbackOffset && id < kByteFallbackOffset + 256 && piece(id).size() != 1)
        out.push_back(static_cast<char>(id - kByteFallbackOffset));
      else
        out += piece(id);
    }
    return out;
  }

 private:
  int id_of_or_fail(const std::string& s) const {
    auto it = lookup_.find(s);
    if (it == lookup_.end()) lowbit::detail::fail("tokenizer: no token for \"" + s + "\"");
    return it->second;
  }

  int max_token_length_ = 0;
  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;
};

}  // namespace lowbit::model
