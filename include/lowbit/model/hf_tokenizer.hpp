#pragma once
// Hugging Face tokenizers' tokenizer.json: encode and decode with the same ids and text as
// the `tokenizers` library, for the BPE shapes models ship today (Llama 3 / Qwen2 byte-level
// BPE, SentencePiece-style BPE with byte fallback: Llama 2, Mistral, TinyLlama).
//
//   encode: added tokens are split off first (raw text, then each normalized piece), the
//           normalizer runs on the pieces between them, the pre-tokenizer splits those into
//           words, BPE turns each word into ids, the post-processor adds special tokens.
//   decode: ids -> token strings (special tokens skipped when asked), the decoder chain,
//           the pieces joined.
//
// Supported components and what is refused: docs/tokenizers.md. Unicode normalization comes
// from utf8proc and regexes (\p{L} ...) from PCRE2, so this needs both libraries: CMake
// defines LOWBIT_HAVE_HF_TOKENIZER=1 and links them when it finds them. Without them the
// class still compiles, hf_tokenizer_available() is false and load/parse throw.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

#ifndef LOWBIT_HAVE_HF_TOKENIZER
#define LOWBIT_HAVE_HF_TOKENIZER 0
#endif

#if LOWBIT_HAVE_HF_TOKENIZER
#include "lowbit/model/detail/hf_tokenizer_impl.hpp"
#endif

namespace lowbit::model {

inline bool hf_tokenizer_available() { return LOWBIT_HAVE_HF_TOKENIZER != 0; }

#if LOWBIT_HAVE_HF_TOKENIZER
using HfTokenizerImpl = detail::hf::TokenizerImpl;
#else
struct HfTokenizerImpl;
#endif

class HfTokenizer {
 public:
  // Reads and parses a tokenizer.json file; errors name the file and the component.
  static HfTokenizer load(const std::string& path) {
#if LOWBIT_HAVE_HF_TOKENIZER
    return HfTokenizer(detail::hf::load_tokenizer(path));
#else
    unavailable(path);
#endif
  }
  // Parses tokenizer.json text; `source` names it in error messages.
  static HfTokenizer parse(const std::string& json_text, const std::string& source) {
#if LOWBIT_HAVE_HF_TOKENIZER
    return HfTokenizer(detail::hf::parse_tokenizer(json_text, source));
#else
    (void)json_text;
    unavailable(source);
#endif
  }

  // Ids as tokenizers' encode(text, add_special_tokens).ids gives them. text must be UTF-8.
  std::vector<int> encode(const std::string& text, bool add_special_tokens = true) const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->encode(text, add_special_tokens);
#else
    (void)text, (void)add_special_tokens;
    return {};
#endif
  }
  // As tokenizers' decode(ids, skip_special_tokens); ids the vocabulary lacks are skipped.
  std::string decode(const std::vector<int>& ids, bool skip_special_tokens = true) const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->decode(ids, skip_special_tokens);
#else
    (void)ids, (void)skip_special_tokens;
    return {};
#endif
  }
  // The vocabulary string of id (an added token's content or the model's token).
  std::string token(int id) const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->token(id);
#else
    (void)id;
    return {};
#endif
  }
  // Highest id + 1 (model vocabulary and added tokens).
  int vocab_size() const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->vocab_size();
#else
    return 0;
#endif
  }
  // The id the post-processor puts first (BOS), if it puts one there.
  std::optional<int> bos_id() const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->bos_id();
#else
    return std::nullopt;
#endif
  }
  std::optional<int> token_id(const std::string& token) const {
#if LOWBIT_HAVE_HF_TOKENIZER
    return impl_->token_id(token);
#else
    (void)token;
    return std::nullopt;
#endif
  }

 private:
  explicit HfTokenizer(std::shared_ptr<const HfTokenizerImpl> impl) : impl_(std::move(impl)) {}
#if !LOWBIT_HAVE_HF_TOKENIZER
  [[noreturn]] static void unavailable(const std::string& source) {
    lowbit::detail::fail(source + ": lowbit was built without tokenizer.json support "
                         "(PCRE2 and utf8proc were not found)");
  }
#endif
  // Shared and immutable (apart from its internally locked word cache): copies are cheap
  // and one tokenizer may encode from several threads.
  std::shared_ptr<const HfTokenizerImpl> impl_;
};

}  // namespace lowbit::model
