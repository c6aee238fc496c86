// The tokenizer stored in a GGUF file (model/gguf_tokenizer.hpp):
//  - stories260k-hf exported to GGUF (tokenizer.ggml.model llama: scores, no merges) encodes
//    and decodes like its tokenizer.json: the golden texts, and the TinyStories documents of
//    the .u16 eval stream;
//  - the Llama-3-style and Qwen2-style tokenizer.json fixtures, turned into tokenizer.ggml.*
//    metadata as the exporter does (gpt2, pre llama-bpe / qwen2), give the golden ids;
//  - TextTokenizer::for_model / load take a .gguf model's own tokenizer;
//  - malformed or unsupported metadata fail naming the key.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/gguf_tokenizer.hpp"
#include "lowbit/model/text_tokenizer.hpp"
#include "test_io_support.hpp"
#include "test_tokenizer_support.hpp"

namespace test_model_gguf_tokenizer_cpp {

using namespace lowbit::model;
using lowbit::GgufFile;
using lowbit::GgufValue;

namespace {

const std::string kGtokData = std::string(LOWBIT_SHARED_DATA_DIR);

std::string gtok_slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool gtok_have(const std::string& p) { return static_cast<bool>(std::ifstream(p)); }

// A GGUF file holding only metadata (no tensors).
void gtok_write_meta(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv) {
  lowbit::GgufWriter w(path);
  w.set("general.architecture", GgufValue::string("llama"));
  for (const auto& [k, v] : kv) w.set(k, v);
  w.finish();
}

// tokenizer.ggml.* of a tokenizer.json as the exporter writes them.
std::vector<std::pair<std::string, GgufValue>> gtok_exported_kv(const std::string& tokenizer_json, int vocab,
                                                                 const std::string& arch) {
  LlamaConfig c;
  c.vocab_size = vocab;
  return detail::gguf_tokenizer_from_json(tokenizer_json, c, arch).kv;
}

void gtok_replace(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key, GgufValue v) {
  for (auto& [k, x] : kv)
    if (k == key) {
      x = std::move(v);
      return;
    }
  kv.emplace_back(key, std::move(v));
}
void gtok_erase(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key) {
  for (auto it = kv.begin(); it != kv.end(); ++it)
    if (it->first == key) {
      kv.erase(it);
      return;
    }
}

// Every golden text of `name` encodes to the golden ids and they decode to the golden text.
void gtok_check_golden(const HfTokenizer& tok, const std::string& name) {
  const nlohmann::json golden = nlohmann::json::parse(gtok_slurp(kGtokData + "/tokenizers/golden_public.json"));
  const auto& texts = golden["texts"];
  REQUIRE(texts.size() > 10);
  int ok = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    INFO(name << " text " << i << ": " << texts[i].get<std::string>());
    const auto want = golden["encodings"][name][i].get<std::vector<int>>();
    CHECK(tok.encode(texts[i].get<std::string>()) == want);
    CHECK(tok.decode(want) == golden["decodings"][name][i].get<std::string>());
    ok += tok.encode(texts[i].get<std::string>()) == want;
  }
  CHECK(ok == static_cast<int>(texts.size()));
}

bool gtok_skip() {
  if (!hf_tokenizer_available()) {
    WARN("SKIPPED: built without tokenizer.json support (PCRE2 / utf8proc), which GGUF tokenizers use");
    return true;
  }
  if (!gtok_have(kGtokData + "/tokenizers/golden_public.json") || !gtok_have(kGtokData + "/stories260k-hf/config.json")) {
    WARN("skipped: shared tokenizer data is missing");
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("gguf tokenizer: stories260k-hf exported to GGUF encodes like its tokenizer.json", "[gguf][tokenizer]") {
  if (gtok_skip()) return;
  lowbit_test::scratch_dir dir;
  const std::string out = dir.file("hf.gguf");
  const auto rep = export_gguf(kGtokData + "/stories260k-hf", out);
  REQUIRE(rep.tokenizer_model == "llama");
  const GgufFile f = GgufFile::open(out);
  REQUIRE(gguf_has_tokenizer(f));
  const HfTokenizer tok = gguf_tokenizer(f, 512);
  CHECK(tok.bos_id() == std::optional<int>(1));
  gtok_check_golden(tok, "stories260k");

  // The TinyStories documents: the first 300 give the .u16 eval stream (BOS first, at most
  // 512 tokens each), as the tokenizer.json does (test_tokenizer_hf.cpp).
  const std::string text_path = kGtokData + "/stories260k/tinystories_validation_head_794k.txt";
  const std::string ids_path = kGtokData + "/stories260k/eval_tinystories_val_tok512.u16";
  if (gtok_have(text_path) && gtok_have(ids_path)) {
    const std::string text = gtok_slurp(text_path), raw = gtok_slurp(ids_path);
    std::vector<int> want = lowbit_test::u16_token_ids(raw);
    std::size_t docs = 0;
    const std::vector<int> got = lowbit_test::tinystories_token_ids(tok, text, 300, docs);
    REQUIRE(docs == 300);
    REQUIRE(got.size() <= want.size());
    want.resize(got.size());
    CHECK(got == want);
  }

  // TextTokenizer: the model file's own tokenizer, with nothing beside it; its EOS stops.
  const TextTokenizer tt = TextTokenizer::for_model(out, 512);
  CHECK(tt.path() == out);
  CHECK(tt.encode("Once upon a time") == HfTokenizer::load(kGtokData + "/stories260k-hf/tokenizer.json").encode("Once upon a time"));
  CHECK(tt.stop_ids({}) == std::vector<int>{2});
  CHECK(TextTokenizer::load(out, 512).encode("Hello") == tt.encode("Hello"));
  CHECK_THROWS_WITH(TextTokenizer::for_model(out, 600), Catch::Contains("tokenizer.ggml.tokens") && Catch::Contains("600"));
}

TEST_CASE("gguf tokenizer: Llama-3-style and Qwen2-style byte-level BPE through GGUF metadata", "[gguf][tokenizer]") {
  if (gtok_skip()) return;
  lowbit_test::scratch_dir dir;
  struct fixture {
    const char* name;
    const char* file;
    const char* arch;
    const char* pre;
  };
  for (const fixture& fx : {fixture{"llama3_style", "llama3_style_tokenizer.json", "llama", "llama-bpe"},
                            fixture{"qwen2_style", "qwen2_style_tokenizer.json", "qwen2", "qwen2"}}) {
    INFO(fx.name);
    const std::string path = kGtokData + "/tokenizers/" + fx.file;
    const int vocab = HfTokenizer::load(path).vocab_size();
    auto kv = gtok_exported_kv(path, vocab, fx.arch);
    const std::string out = dir.file(std::string(fx.name) + ".gguf");
    gtok_write_meta(out, kv);
    const GgufFile f = GgufFile::open(out);
    CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
    CHECK(f.get_string("tokenizer.ggml.pre") == fx.pre);
    const HfTokenizer tok = gguf_tokenizer(f, vocab);
    gtok_check_golden(tok, fx.name);
    // Texts where the pre-tokenizers differ (digit groups, contractions in capitals, a
    // punctuation mark joined to a word, line breaks): the same ids as the tokenizer.json.
    const HfTokenizer ref = HfTokenizer::load(path);
    for (const char* text : {"In 2023 she had 1234567 apples and 42 pears.", "IT'S HE'LL WE'VE I'M", "\"Wow!\" (said) 'Tom'",
                             "a\r\n\r\n  b \n\tc   \n", "...and,then;she-ran", "caf\x65\xcc\x81 na\xc3\xafve"}) {
      INFO(text);
      CHECK(tok.encode(text) == ref.encode(text));
      CHECK(tok.encode(text, false) == ref.encode(text, false));
    }
  }
}

TEST_CASE("gguf tokenizer: malformed or unsupported metadata name the key", "[gguf][tokenizer]") {
  if (gtok_skip()) return;
  lowbit_test::scratch_dir dir;
  const std::string llama3 = kGtokData + "/tokenizers/llama3_style_tokenizer.json";
  const int vocab = HfTokenizer::load(llama3).vocab_size();
  const auto base = gtok_exported_kv(llama3, vocab, "llama");
  int n = 0;
  auto check = [&](const std::function<void(std::vector<std::pair<std::string, GgufValue>>&)>& edit,
                   const std::string& key, const std::string& problem, std::int64_t model_vocab = -1) {
    auto kv = base;
    edit(kv);
    const std::string out = dir.file("bad" + std::to_string(n++) + ".gguf");
    gtok_write_meta(out, kv);
    const GgufFile f = GgufFile::open(out);
    INFO(key << ": " << problem);
    CHECK_THROWS_AS(gguf_tokenizer(f, model_vocab), lowbit::error);
    CHECK_THROWS_WITH(gguf_tokenizer(f, model_vocab),
                      Catch::Contains(out) && Catch::Contains("'" + key + "'") && Catch::Contains(problem));
  };
  // The metadata as written load (the checks below change one thing each).
  {
    gtok_write_meta(dir.file("good.gguf"), base);
    CHECK(gguf_tokenizer(GgufFile::open(dir.file("good.gguf")), vocab).vocab_size() == vocab);
  }
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.merges", GgufValue::array(std::vector<std::int32_t>{1, 2})); },
        "tokenizer.ggml.merges", "expected an array of STRING");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.merges", GgufValue::string_array({"Ġ t", "nosuchtoken x"})); },
        "tokenizer.ggml.merges", "merge 1");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.merges", GgufValue::string_array({"Ġt"})); },
        "tokenizer.ggml.merges", "not two tokens");
  check([](auto&) {}, "tokenizer.ggml.tokens", "the model's vocabulary", vocab + 1);
  check([](auto& kv) { gtok_erase(kv, "tokenizer.ggml.tokens"); }, "tokenizer.ggml.tokens", "no metadata key");
  check([](auto& kv) { gtok_erase(kv, "tokenizer.ggml.merges"); }, "tokenizer.ggml.merges", "no metadata key");
  check([](auto& kv) { gtok_erase(kv, "tokenizer.ggml.pre"); }, "tokenizer.ggml.pre", "no metadata key");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.pre", GgufValue::string("deepseek-llm")); }, "tokenizer.ggml.pre",
        "'deepseek-llm' is not one lowbit reproduces");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.model", GgufValue::string("bert")); }, "tokenizer.ggml.model",
        "'bert' is not one lowbit reproduces");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.token_type", GgufValue::array(std::vector<std::int32_t>{1, 1})); },
        "tokenizer.ggml.token_type", "2 entries");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.bos_token_id", GgufValue::scalar(std::uint32_t{1u << 20})); },
        "tokenizer.ggml.bos_token_id", "outside");
  check([](auto& kv) { gtok_replace(kv, "tokenizer.ggml.add_bos_token", GgufValue::scalar(std::int32_t{1})); },
        "tokenizer.ggml.add_bos_token", "must be a BOOL");
  check([](auto& kv) {
    gtok_erase(kv, "tokenizer.ggml.bos_token_id");
    gtok_erase(kv, "tokenizer.ggml.add_bos_token");  // llama-bpe's default adds BOS
  }, "tokenizer.ggml.bos_token_id", "missing");

  // SentencePiece-style: scores required, one per token.
  const auto spm = gtok_exported_kv(kGtokData + "/stories260k-hf/tokenizer.json", 512, "llama");
  for (int which = 0; which < 2; ++which) {
    auto kv = spm;
    if (which == 0) gtok_erase(kv, "tokenizer.ggml.scores");
    else gtok_replace(kv, "tokenizer.ggml.scores", GgufValue::array(std::vector<float>{0.0f}));
    const std::string out = dir.file("spm" + std::to_string(which) + ".gguf");
    gtok_write_meta(out, kv);
    CHECK_THROWS_WITH(gguf_tokenizer(GgufFile::open(out)), Catch::Contains("'tokenizer.ggml.scores'"));
  }
  // No tokenizer at all: for_model looks beside the file, load() says what is missing.
  gtok_write_meta(dir.file("none.gguf"), {});
  CHECK_FALSE(gguf_has_tokenizer(GgufFile::open(dir.file("none.gguf"))));
  CHECK_THROWS_WITH(TextTokenizer::load(dir.file("none.gguf"), 512), Catch::Contains("'tokenizer.ggml.model'"));
  CHECK_THROWS_WITH(TextTokenizer::for_model(dir.file("none.gguf"), 512), Catch::Contains("no tokenizer beside"));
}

}  // namespace test_model_gguf_tokenizer_cpp
