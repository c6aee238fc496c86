// DecodeStream (lowbit/model/decode_stream.hpp): streamed text equals the whole decode, and
// the work per token stays bounded.
//  - every tokenizer kind lowbit reads (stories260K's llama2.c tok512.bin, and with
//    tokenizer.json support the stories260k-hf, Llama-3-style and Qwen2-style files): the
//    pieces push() and finish() return, joined, equal decode(all ids), for the golden texts
//    and for texts whose characters span several byte tokens (accents, CJK, emoji);
//  - a recording tokenizer: no decode() call sees more than a bounded window of ids, however
//    long the stream (decoding everything again per token, the old streaming in
//    `lowbit generate`, made a generation's cost quadratic in its length).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "lowbit/model/decode_stream.hpp"
#include "lowbit/model/tokenizer.hpp"
#include "test_tokenizer_support.hpp"
#if __has_include("lowbit/model/hf_tokenizer.hpp")
#include "lowbit/model/hf_tokenizer.hpp"
#endif
#include <nlohmann/json.hpp>

namespace test_tokenizer_stream_cpp {

namespace {

using lowbit::model::DecodeStream;

const std::string kData = LOWBIT_SHARED_DATA_DIR;

using lowbit_test::have_file;
using lowbit_test::slurp;

// Texts whose characters need several bytes: byte-fallback tokenizers split them over
// several tokens, so the stream must hold incomplete characters back.
const std::vector<std::string> kWideTexts = {
    "na\xC3\xAFve caf\xC3\xA9 d\xC3\xA9j\xC3\xA0 vu",                      // naïve café déjà vu
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87",        // 日本語の文
    "llama \xF0\x9F\xA6\x99 and \xF0\x9F\x98\x80\xF0\x9F\x98\x80 end",       // 🦙 😀😀
    "\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x80\x94 dash",                       // “quoted” — dash
    "  two leading spaces, tab\there, newline\nthere"};

// Streams `ids` one by one; returns the joined pieces.
template <class Tok>
std::string streamed(const Tok& tok, const std::vector<int>& ids) {
  DecodeStream<Tok> s(tok);
  std::string out;
  for (int id : ids) out += s.push(id);
  out += s.finish();
  CHECK(s.finish().empty());  // finish() twice adds nothing
  CHECK(s.ids() == ids);
  return out;
}

// A tokenizer of single bytes (id = byte value) that records the largest decode() call.
struct RecordingTokenizer {
  mutable std::size_t longest = 0, calls = 0;
  std::string decode(const std::vector<int>& ids) const {
    longest = std::max(longest, ids.size());
    ++calls;
    std::string s;
    for (int id : ids) s.push_back(static_cast<char>(id));
    // Lossy like the real decoders: a trailing incomplete UTF-8 sequence reads as U+FFFD.
    std::size_t lead = s.size();
    while (lead > 0 && (static_cast<unsigned char>(s[lead - 1]) & 0xC0) == 0x80) --lead;
    if (lead > 0) {
      const unsigned char b = static_cast<unsigned char>(s[lead - 1]);
      const std::size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
      if (s.size() - (lead - 1) < need) s = s.substr(0, lead - 1) + "\xEF\xBF\xBD";
    }
    return s;
  }
};

}  // namespace

TEST_CASE("decode stream: each decode sees a bounded window, and the text is whole", "[tokenizer][stream]") {
  RecordingTokenizer tok;
  std::string text;
  for (int i = 0; i < 500; ++i) text += i % 7 == 0 ? "\xF0\x9F\xA6\x99 " : "word ";  // 🦙 every 7th
  std::vector<int> ids;
  for (unsigned char c : text) ids.push_back(c);
  CHECK(streamed(tok, ids) == text);
  INFO("longest decode call " << tok.longest << " ids over " << tok.calls << " calls");
  CHECK(tok.longest <= 2 * DecodeStream<RecordingTokenizer>::kMaxPending);

  // A 4-byte character's first byte is held back until its last byte arrives.
  DecodeStream<RecordingTokenizer> s(tok);
  CHECK(s.push('a') == "a");
  CHECK(s.push(0xF0).empty());
  CHECK(s.push(0x9F).empty());
  CHECK(s.push(0xA6).empty());
  CHECK(s.push(0x99) == "\xF0\x9F\xA6\x99");
  // An unfinished character at the end comes out of finish() as U+FFFD, as decode() gives it.
  CHECK(s.push(0xE2).empty());
  CHECK(s.finish() == "\xEF\xBF\xBD");

  // Stray continuation bytes never complete: they are printed after kMaxPending ids, so the
  // window stays bounded even then.
  RecordingTokenizer stray;
  DecodeStream<RecordingTokenizer> t(stray);
  std::string got;
  for (int i = 0; i < 1000; ++i) got += t.push(0xE2);
  got += t.finish();
  CHECK(!got.empty());
  CHECK(stray.longest <= 2 * DecodeStream<RecordingTokenizer>::kMaxPending);
}

TEST_CASE("decode stream: llama2.c tokenizer (stories260K tok512.bin)", "[tokenizer][stream]") {
  const std::string tok_path = kData + "/stories260k/tok512.bin";
  const std::string text_path = kData + "/stories260k/tinystories_validation_head_794k.txt";
  if (!have_file(tok_path) || !have_file(text_path)) {
    WARN("skipped: stories260k shared test data is missing");
    SUCCEED();
    return;
  }
  const auto tok = lowbit::model::Tokenizer::load(tok_path, 512);
  std::vector<std::string> texts = kWideTexts;
  texts.push_back(slurp(text_path).substr(0, 20000));
  int byte_tokens = 0;
  for (const auto& text : texts) {
    const std::vector<int> ids = tok.encode(text, true, false);
    for (int id : ids) byte_tokens += id >= 3 && id < 3 + 256;
    INFO("text: " << text.substr(0, 60));
    CHECK(streamed(tok, ids) == tok.decode(ids));
  }
  CHECK(byte_tokens > 20);  // the wide texts did go through byte-fallback tokens
}

#if LOWBIT_HAVE_HF_TOKENIZER
TEST_CASE("decode stream: tokenizer.json tokenizers (SentencePiece-style and byte-level BPE)", "[tokenizer][stream]") {
  const std::string golden_path = kData + "/tokenizers/golden_public.json";
  if (!have_file(golden_path)) {
    WARN("skipped: " << golden_path << " is missing (shared test data)");
    SUCCEED();
    return;
  }
  const nlohmann::json golden = nlohmann::json::parse(slurp(golden_path));
  std::vector<std::string> texts = kWideTexts;
  for (const auto& t : golden["texts"]) texts.push_back(t.get<std::string>());
  for (const char* path : {"/stories260k-hf/tokenizer.json", "/tokenizers/llama3_style_tokenizer.json",
                           "/tokenizers/qwen2_style_tokenizer.json"}) {
    const auto tok = lowbit::model::HfTokenizer::load(kData + path);
    // DecodeStream calls decode(ids): skip_special_tokens at its default, as generate prints.
    for (const auto& text : texts) {
      const std::vector<int> ids = tok.encode(text, true);
      INFO(path << ", text: " << text.substr(0, 60));
      CHECK(streamed(tok, ids) == tok.decode(ids));
    }
  }
}
#else
TEST_CASE("decode stream: SKIPPED tokenizer.json tokenizers, built without tokenizer.json support",
          "[tokenizer][stream][skipped]") {
  WARN("SKIPPED: built without PCRE2 / utf8proc, so only the llama2.c tokenizer is streamed");
  SUCCEED();
}
#endif

}  // namespace test_tokenizer_stream_cpp
