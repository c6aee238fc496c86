#pragma once
// TextTokenizer: the tokenizer that goes with a model, stored in it or found beside it.
//   - a GGUF file's own tokenizer (tokenizer.ggml.*; model/gguf_tokenizer.hpp);
//   - tokenizer.json (Hugging Face; model/hf_tokenizer.hpp, when this build has it);
//   - tok512.bin / tokenizer.bin (llama2.c; model/tokenizer.hpp).
// for_model() takes a .gguf model's own tokenizer when it has one, else looks in the model's
// directory (the directory itself for an output directory) in that order; an explicit path
// picks the kind by its extension (.gguf: the file's tokenizer).
#include <sys/stat.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/read_file.hpp"
#include "lowbit/model/tokenizer.hpp"
#if __has_include("lowbit/model/hf_tokenizer.hpp")
#include "lowbit/model/hf_tokenizer.hpp"
#define LOWBIT_TEXT_TOKENIZER_HF 1
#include "lowbit/model/gguf_tokenizer.hpp"
#endif

namespace lowbit::model {

class TextTokenizer {
 public:
  static TextTokenizer load(const std::string& path, int vocab_size) {
    TextTokenizer t;
    t.path_ = path;
    if (detail::ends_with(path, ".gguf")) {
#ifdef LOWBIT_TEXT_TOKENIZER_HF
      const GgufFile f = GgufFile::open(path);
      if (!gguf_has_tokenizer(f))
        lowbit::detail::fail(path + ": the GGUF file has no tokenizer (no key 'tokenizer.ggml.model')");
      t.from_gguf(f, vocab_size);
#else
      lowbit::detail::fail(path + ": this build reads no GGUF tokenizer (lowbit/model/hf_tokenizer.hpp is not on the include path; a llama2.c tokenizer file works)");
#endif
    } else if (detail::ends_with(path, ".json")) {
#ifdef LOWBIT_TEXT_TOKENIZER_HF
      t.hf_ = std::make_shared<HfTokenizer>(HfTokenizer::load(path));
      if (t.hf_->vocab_size() > vocab_size)
        lowbit::detail::fail(path + ": the tokenizer has " + std::to_string(t.hf_->vocab_size()) +
                             " tokens, the model's vocabulary " + std::to_string(vocab_size));
#else
      lowbit::detail::fail(path + ": this build reads no tokenizer.json (lowbit/model/hf_tokenizer.hpp is not on the include path; a llama2.c tokenizer file works)");
#endif
    } else {
      t.llama2c_ = std::make_shared<Tokenizer>(Tokenizer::load(path, vocab_size));
    }
    return t;
  }

  // The tokenizer beside `model_path` (a file or a directory). When there is none, the error
  // ends with `when_missing`: the library has no flags, so a program says how to name one
  // (lowbit generate: "name the tokenizer file with --tokenizer").
  static TextTokenizer for_model(const std::string& model_path, int vocab_size,
                                 const std::string& when_missing = "name the tokenizer file") {
    struct stat st {};
    const bool dir = ::stat(model_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    const std::string d = dir ? model_path : detail::directory_of(model_path);
#ifdef LOWBIT_TEXT_TOKENIZER_HF
    // A GGUF file carries its own tokenizer (llama.cpp runs it with nothing beside it).
    if (!dir && detail::ends_with(model_path, ".gguf")) {
      const GgufFile f = GgufFile::open(model_path);
      if (gguf_has_tokenizer(f)) {
        TextTokenizer t;
        t.path_ = model_path;
        t.from_gguf(f, vocab_size);
        return t;
      }
    }
#endif
    for (const char* name : {"tokenizer.json", "tok512.bin", "tokenizer.bin"}) {
      const std::string p = d + "/" + name;
      if (::stat(p.c_str(), &st) == 0) return load(p, vocab_size);
    }
    lowbit::detail::fail("no tokenizer beside " + model_path + " (looked for tokenizer.json, tok512.bin, tokenizer.bin in " +
                         d + "): " + when_missing);
  }

  // Token ids of `text`, with the tokenizer's BOS first (llama2.c: BOS and the dummy-prefix
  // space, as run.c encodes prompts; tokenizer.json: its post-processor's special tokens).
  std::vector<int> encode(const std::string& text) const {
#ifdef LOWBIT_TEXT_TOKENIZER_HF
    if (hf_) return hf_->encode(text, true);
#endif
    return llama2c_->encode(text, true, false);
  }

  // Text of generated ids (special tokens skipped).
  std::string decode(const std::vector<int>& ids) const {
#ifdef LOWBIT_TEXT_TOKENIZER_HF
    if (hf_) return hf_->decode(ids, true);
#endif
    return llama2c_->decode(ids);
  }

  // Ids that end a generation: EOS (and for llama2.c models BOS, which separates stories;
  // run.c stops there too). `eos` from config.json adds to them.
  std::vector<int> stop_ids(const std::vector<int>& eos) const {
    std::vector<int> out = eos;
    out.insert(out.end(), stop_.begin(), stop_.end());
    if (llama2c_) {
      out.push_back(Tokenizer::kBos);
      out.push_back(Tokenizer::kEos);
    }
    return out;
  }

  const std::string& path() const noexcept { return path_; }

 private:
#ifdef LOWBIT_TEXT_TOKENIZER_HF
  void from_gguf(const GgufFile& f, int vocab_size) {
    auto parts = detail::gguf_tokenizer_json(f, vocab_size);
    hf_ = std::make_shared<HfTokenizer>(HfTokenizer::parse(parts.json, f.source() + " (tokenizer.ggml.*)"));
    stop_ = std::move(parts.stop_ids);
  }
#endif

  std::string path_;
  std::vector<int> stop_;  // a GGUF tokenizer's eos / eot
  std::shared_ptr<const Tokenizer> llama2c_;
#ifdef LOWBIT_TEXT_TOKENIZER_HF
  std::shared_ptr<const HfTokenizer> hf_;
#endif
};

// "eos_token_id" (a number or a list) of the config.json beside the model, if any.
inline std::vector<int> eos_ids_beside(const std::string& model_path) {
  struct stat st {};
  const bool dir = ::stat(model_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  const std::string p = (dir ? model_path : detail::directory_of(model_path)) + "/config.json";
  if (::stat(p.c_str(), &st) != 0) return {};
  const auto bytes = detail::read_file_bytes(p);
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  std::vector<int> out;
  if (!j.is_object() || !j.contains("eos_token_id")) return out;
  const auto& e = j["eos_token_id"];
  if (e.is_number_integer()) out.push_back(e.get<int>());
  if (e.is_array())
    for (const auto& x : e)
      if (x.is_number_integer()) out.push_back(x.get<int>());
  return out;
}

}  // namespace lowbit::model
