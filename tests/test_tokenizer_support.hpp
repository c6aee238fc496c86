#pragma once
// Shared by the tokenizer tests: reading the shared data files, and the stories260K
// evaluation stream (eval_tinystories_val_tok512.u16 in the shared data) rebuilt from its
// text, the way it was made, so a tokenizer can be held to it document by document.
#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lowbit_test {

// A file's bytes (empty when it cannot be read), and whether it can be opened.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
inline bool have_file(const std::string& path) { return std::ifstream(path).good(); }

// Little-endian uint16 token ids, as the .u16 files store them.
inline std::vector<int> u16_token_ids(const std::string& raw) {
  std::vector<int> ids(raw.size() / 2);
  for (std::size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<unsigned char>(raw[2 * i]) | (static_cast<unsigned char>(raw[2 * i + 1]) << 8);
  return ids;
}

// The first `max_docs` TinyStories documents of `text`, encoded and concatenated: documents
// are split on blank lines, surrounding whitespace trimmed, empty ones dropped, and each
// document's ids (BOS first, as the tokenizer adds it) cut at 512. `docs` gets the count.
template <class Tokenizer>
std::vector<int> tinystories_token_ids(const Tokenizer& tok, const std::string& text, std::size_t max_docs,
                                       std::size_t& docs) {
  std::vector<int> got;
  docs = 0;
  for (std::size_t pos = 0; pos <= text.size() && docs < max_docs;) {
    std::size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string doc = text.substr(pos, end - pos);
    pos = end + 2;
    const auto first = doc.find_first_not_of(" \t\n");
    if (first == std::string::npos) continue;
    doc = doc.substr(first, doc.find_last_not_of(" \t\n") - first + 1);
    auto ids = tok.encode(doc);
    if (ids.size() > 512) ids.resize(512);
    got.insert(got.end(), ids.begin(), ids.end());
    ++docs;
  }
  return got;
}

}  // namespace lowbit_test
