// libFuzzer target: arbitrary tokenizer.json text, then arbitrary text through the tokenizer.
// The input is split at its first NUL byte: before it the JSON, after it the text to encode
// (without a NUL, the input is the JSON and a fixed sample is encoded). Parsing must give a
// tokenizer or a lowbit::error; encoding valid UTF-8 must give ids the vocabulary knows (or
// a lowbit::error, e.g. a regex hitting PCRE2's match limit); decoding any ids, including
// unknown ones, must return. Anything else (a crash, an ASan report, another exception type)
// is a bug.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     -DLOWBIT_HAVE_HF_TOKENIZER=1 fuzz/fuzz_tokenizer_json.cpp -o /tmp/fz -lpcre2-8 -lutf8proc
//   /tmp/fz -max_total_time=60 fuzz/corpus/fuzz_tokenizer_json
// scripts/test.sh reads the next line for this target's extra compiler / linker flags.
// lowbit-fuzz-flags: -DLOWBIT_HAVE_HF_TOKENIZER=1 -lpcre2-8 -lutf8proc
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "lowbit/model/hf_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string json = input.substr(0, nul);
  const std::string text = nul == std::string::npos ? std::string("Hello world, 123 caf\xc3\xa9!")
                                                    : input.substr(nul + 1);
  try {
    const auto tok = lowbit::model::HfTokenizer::parse(json, "fuzz");
    std::vector<int> ids;
    try {
      ids = tok.encode(text);
      (void)tok.encode(text, false);
    } catch (const lowbit::error&) {
      // invalid UTF-8 text, PCRE2 limits, a missing unk token: refused, fine
    }
    for (int id : ids) {
      if (id < 0 || id >= tok.vocab_size()) std::abort();  // an id outside the vocabulary
      (void)tok.token(id);
    }
    (void)tok.decode(ids);
    (void)tok.decode(ids, false);
    std::vector<int> odd = {-1, 0, 1, 2, 3, tok.vocab_size(), tok.vocab_size() - 1, 1 << 30};
    for (std::size_t i = 0; i < text.size() && i < 16; ++i) odd.push_back(static_cast<unsigned char>(text[i]));
    (void)tok.decode(odd);
    (void)tok.bos_id();
  } catch (const lowbit::error&) {
  }
  return 0;
}
