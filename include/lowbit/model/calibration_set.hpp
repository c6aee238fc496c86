#pragma once
// The calibration set of `lowbit quantize --calib PATH`: the first N documents of a file, each
// cut to at most L tokens, as independent token sequences.
//
//   .txt    documents separated by blank lines (lines holding only whitespace count as blank);
//           a document's lines are joined with '\n'
//   .jsonl  one JSON object per non-empty line, its "text" field a document
//   .u16    uint16 little-endian token ids (llama2.c pretokenized layout): documents start at
//           each BOS, which the file already holds
//
// Text is tokenized by the caller's `TextEncoder` (the model's tokenizer.json, with its special
// tokens: BOS is added as the tokenizer's post-processor says). Documents are taken in file
// order; the reader stops once it has N, so a large file is not tokenized whole. An empty
// file, or a taken document of fewer than 2 tokens (nothing to predict, and usually a sign of
// a wrong file or tokenizer), is an error that says so.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/read_file.hpp"

namespace lowbit::model {

// Text -> token ids, special tokens included as the tokenizer adds them.
using TextEncoder = std::function<std::vector<int>(const std::string& text)>;

struct CalibrationSetOptions {
  long samples = 128;   // documents taken from the start of the file (> 0)
  int seq_len = 512;    // tokens kept of each (> 1)
  int u16_bos = 1;      // document separator of .u16 files
};

struct CalibrationSet {
  std::vector<std::vector<int>> samples;  // one token sequence per document
  std::string source;                     // the file
  std::string kind;                       // "txt", "jsonl" or "u16"
  std::int64_t truncated = 0;             // documents cut to seq_len
  std::int64_t tokens() const {
    std::int64_t n = 0;
    for (const auto& s : samples) n += static_cast<std::int64_t>(s.size());
    return n;
  }
};

namespace detail {

inline bool calib_ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

inline bool blank_line(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; });
}

// Calls `take(document)` for each blank-line-separated document until it returns false.
template <class Take>
void for_each_text_document(const std::string& text, Take&& take) {
  std::string doc;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t nl = std::min(text.find('\n', pos), text.size());
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (blank_line(line)) {
      if (!doc.empty() && !take(doc)) return;
      doc.clear();
    } else {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!doc.empty()) doc += '\n';
      doc += line;
    }
  }
  if (!doc.empty()) take(doc);
}

// Calls `take(text, line_number)` for each non-empty line's "text" field until it returns false.
template <class Take>
void for_each_jsonl_document(const std::string& text, const std::string& source, Take&& take) {
  std::size_t pos = 0;
  long line_no = 0;
  while (pos < text.size()) {
    const std::size_t nl = std::min(text.find('\n', pos), text.size());
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (blank_line(line)) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::string where = source + ": line " + std::to_string(line_no);
    if (j.is_discarded() || !j.is_object()) lowbit::detail::fail(where + ": not a JSON object");
    const auto t = j.find("text");
    if (t == j.end() || !t->is_string()) lowbit::detail::fail(where + ": no string field \"text\"");
    if (!take(t->get<std::string>(), line_no)) return;
  }
}

}  // namespace detail

inline CalibrationSet read_calibration_set(const std::string& path, const CalibrationSetOptions& o,
                                           const TextEncoder& encode) {
  if (o.samples <= 0) lowbit::detail::fail("calibration: the number of samples must be > 0, got " + std::to_string(o.samples));
  if (o.seq_len < 2) lowbit::detail::fail("calibration: the sequence length must be >= 2, got " + std::to_string(o.seq_len));
  CalibrationSet set;
  set.source = path;
  const auto bytes = detail::read_file_bytes(path);
  if (bytes.empty()) lowbit::detail::fail(path + ": the calibration file is empty");
  auto add = [&](std::vector<int> ids, const std::string& which) {
    if (ids.size() < 2)
      lowbit::detail::fail(path + ": calibration " + which + " has " + std::to_string(ids.size()) +
                           " token(s); every document needs at least 2 (one to predict from, one to predict)");
    if (ids.size() > static_cast<std::size_t>(o.seq_len)) {
      ids.resize(static_cast<std::size_t>(o.seq_len));
      ++set.truncated;
    }
    set.samples.push_back(std::move(ids));
    return static_cast<long>(set.samples.size()) < o.samples;
  };
  const auto need_encoder = [&] {
    if (!encode) lowbit::detail::fail(path + ": a text calibration file needs the model's tokenizer (tokenizer.json)");
  };
  if (detail::calib_ends_with(path, ".u16")) {
    set.kind = "u16";
    if (bytes.size() % 2 != 0)
      lowbit::detail::fail(path + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of uint16 token ids");
    std::vector<int> doc;
    long index = 0;
    bool more = true;
    for (std::size_t i = 0; i < bytes.size() / 2 && more; ++i) {
      const int id = bytes[2 * i] | (bytes[2 * i + 1] << 8);
      if (id == o.u16_bos && !doc.empty()) {
        more = add(std::move(doc), "document " + std::to_string(++index));
        doc.clear();
      }
      doc.push_back(id);
    }
    if (more && !doc.empty()) add(std::move(doc), "document " + std::to_string(++index));
  } else if (detail::calib_ends_with(path, ".jsonl")) {
    set.kind = "jsonl";
    need_encoder();
    const std::string text(bytes.begin(), bytes.end());
    detail::for_each_jsonl_document(text, path, [&](const std::string& doc, long line) {
      return add(encode(doc), "document on line " + std::to_string(line));
    });
  } else if (detail::calib_ends_with(path, ".txt")) {
    set.kind = "txt";
    need_encoder();
    const std::string text(bytes.begin(), bytes.end());
    long index = 0;
    detail::for_each_text_document(text, [&](const std::string& doc) {
      return add(encode(doc), "document " + std::to_string(++index));
    });
  } else {
    lowbit::detail::fail(path + ": unknown calibration file type (expected .txt, .jsonl or .u16)");
  }
  if (set.samples.empty()) lowbit::detail::fail(path + ": the calibration file holds no documents");
  return set;
}

}  // namespace lowbit::model
