#pragma once
// DecodeStream: the text of generated tokens, one token at a time, for streaming output.
//
//   lowbit::model::DecodeStream stream(tok);          // tok: anything with decode(ids)
//   for each generated id:  std::fputs(stream.push(id).c_str(), stdout);
//   at the end:             std::fputs(stream.finish().c_str(), stdout);
//
// Why not print decode(all ids) minus what was printed: that decodes the whole generation
// again for every token, so a long generation costs time quadratic in its length (400
// tokens of stories260K, 1 thread: 11.8k tokens/s streamed that way, 13.0k with this class,
// 14.2k not streamed; the rest is writing each piece). Decoding one token alone is wrong too:
// decoders look at neighbours (SentencePiece strips the first token's leading space,
// byte-fallback and byte-level tokens carry parts of one UTF-8 character).
//
// So the stream decodes a short window: the ids of the text printed last ("prefix") and
// those after it. The new text is decode(window) minus decode(prefix ids), printed once it
// no longer ends in an incomplete character (U+FFFD). The window then starts at the ids just
// printed. This is how Hugging Face tokenizers' DecodeStream and vLLM's incremental
// detokenizer work; the concatenation of everything push() and finish() return equals
// decode(all ids) for the decoders lowbit reads.
//
// Bounds: ids that add no text (skipped special tokens) or keep ending in U+FFFD (a model
// emitting stray byte tokens) wait at most kMaxPending ids; then what they decode to is
// printed, replacement characters included, so the window and the cost per token stay
// bounded.
#include <cstddef>
#include <string>
#include <vector>

namespace lowbit::model {

template <class Tokenizer>
class DecodeStream {
 public:
  // Longer than any UTF-8 character split into byte tokens (4 bytes, one token each).
  static constexpr std::size_t kMaxPending = 8;

  explicit DecodeStream(const Tokenizer& tok) : tok_(&tok) {}

  // Text that `id` completes; empty while a character is still incomplete.
  std::string push(int id) {
    ids_.push_back(id);
    const std::string text = decode(prefix_at_, ids_.size());
    const bool wait = text.size() <= prefix_text_.size() || ends_incomplete(text) ||
                      text.compare(0, prefix_text_.size(), prefix_text_) != 0;
    if (wait && ids_.size() - read_at_ < kMaxPending) return {};
    return advance(text);
  }

  // Whatever is still held back (an incomplete character at the end, as U+FFFD).
  std::string finish() {
    if (read_at_ == ids_.size()) return {};
    return advance(decode(prefix_at_, ids_.size()));
  }

  const std::vector<int>& ids() const noexcept { return ids_; }

 private:
  std::string decode(std::size_t from, std::size_t to) const {
    if (from == to) return {};
    return tok_->decode(std::vector<int>(ids_.begin() + static_cast<std::ptrdiff_t>(from),
                                         ids_.begin() + static_cast<std::ptrdiff_t>(to)));
  }
  static bool ends_incomplete(const std::string& s) {
    return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
  }
  // The text of the window after the prefix's text; the ids just printed become the prefix
  // (their text decoded once here, not again on every push). A decoder whose output for the
  // window does not begin with the prefix's text (none that lowbit reads) gets the part
  // after the common beginning.
  std::string advance(const std::string& text) {
    std::size_t common = 0;
    while (common < prefix_text_.size() && common < text.size() && prefix_text_[common] == text[common]) ++common;
    prefix_text_ = decode(read_at_, ids_.size());
    prefix_at_ = read_at_;
    read_at_ = ids_.size();
    return text.substr(common);
  }

  const Tokenizer* tok_;
  std::vector<int> ids_;
  std::size_t prefix_at_ = 0, read_at_ = 0;  // window [prefix_at_, end); prefix [prefix_at_, read_at_)
  std::string prefix_text_;                   // decode(prefix ids)
};

}  // namespace lowbit::model
