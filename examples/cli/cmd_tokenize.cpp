// `lowbit tokenize TOKENIZER_JSON (--text STRING | --file PATH) [--no-special] [--json]`:
// the ids Hugging Face tokenizers' encode(text) gives (special tokens added as the
// post-processor says unless --no-special), space-separated, or with --json exactly
// {"ids": [...], "tokens": [...]}. --file takes the file's bytes as one text. TOKENIZER_JSON
// may also be a model directory holding tokenizer.json.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/stat.h>

#include "lowbit/error.hpp"
#include "lowbit/model/hf_tokenizer.hpp"
#include "registry.hpp"

namespace {

struct tokenize_options {
  std::string tokenizer;
  std::string text;
  std::string file;
  bool no_special = false;
  bool json = false;
};

int run_tokenize(const tokenize_options& o) {
  std::string path = o.tokenizer;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/tokenizer.json";
  const auto tok = lowbit::model::HfTokenizer::load(path);
  std::string text = o.text;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) lowbit_cli::fail(o.file + ": cannot open file");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::vector<int> ids = tok.encode(text, !o.no_special);
  std::string out;
  if (o.json) {
    out = "{\"ids\": [";
    for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    out += "], \"tokens\": [";
    for (std::size_t i = 0; i < ids.size(); ++i)
      out += (i ? ", " : "") + nlohmann::json(tok.token(ids[i])).dump();
    out += "]}";
  } else {
    for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  }
  fmt::print("{}\n", out);
  return 0;
}

lowbit_cli::registration tokenize_registration{
    "tokenize", "Encode text with a Hugging Face tokenizer.json and print the token ids", 60,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto opt = std::make_shared<tokenize_options>();
      sub.add_option("tokenizer", opt->tokenizer, "tokenizer.json, or a model directory holding one")
          ->required();
      auto* text = sub.add_option("--text", opt->text, "The text to encode");
      auto* file = sub.add_option("--file", opt->file, "Encode this file's bytes as one text");
      text->excludes(file);
      file->excludes(text);
      sub.add_flag("--no-special", opt->no_special,
                   "Do not add the post-processor's special tokens (BOS ...)");
      sub.add_flag("--json", opt->json, "Print {\"ids\": [...], \"tokens\": [...]}");
      return [opt, text, file]() {
        if (text->count() == 0 && file->count() == 0)
          lowbit_cli::fail("tokenize: give the text with --text STRING or --file PATH");
        return run_tokenize(*opt);
      };
    }};

}  // namespace
