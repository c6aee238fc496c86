// tokenizer.json (lowbit::model::HfTokenizer) against Hugging Face tokenizers:
//  - the three shared tokenizers (stories260k-hf, Llama-3-style, Qwen2-style) reproduce every
//    encoding and decoding of ../shared/data/tokenizers/golden_public.json;
//  - stories260k-hf's tokenizer.json gives exactly eval_tinystories_val_tok512.u16 on the
//    4,300 TinyStories documents (BOS first, 512 tokens at most);
//  - small hand-written fixtures, one per component and option the three files do not cover,
//    compared with the ids and text that tokenizers 0.23 gave for them (the table in
//    test_tokenizer_hf_cases.inc, made by hf_tokenizer_fixtures.py, which also builds the
//    fixtures exactly as build_fixture() below does);
//  - malformed files and unsupported components are refused with the component named.
// Built without PCRE2 / utf8proc (the aarch64 cross build), the file reports a visible skip.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/model/hf_tokenizer.hpp"
#include "test_tokenizer_support.hpp"

#if !LOWBIT_HAVE_HF_TOKENIZER

TEST_CASE("hf tokenizer: SKIPPED, built without tokenizer.json support", "[tokenizer][skipped]") {
  WARN("SKIPPED: lowbit was built without PCRE2 / utf8proc, so tokenizer.json support and its "
       "tests are not compiled (built without tokenizer.json support)");
  CHECK_FALSE(lowbit::model::hf_tokenizer_available());
  CHECK_THROWS_WITH(lowbit::model::HfTokenizer::load("tokenizer.json"),
                    Catch::Contains("built without tokenizer.json support"));
}

#else

#include <nlohmann/json.hpp>
#include <thread>

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_tokenizer_hf_cpp {

namespace {

using lowbit::model::HfTokenizer;
using nlohmann::json;

const std::string kData = LOWBIT_SHARED_DATA_DIR;

using lowbit_test::have_file;
using lowbit_test::slurp;

struct FixtureCase {
  const char* name;
  const char* spec;
  const char* text;
  std::vector<int> ids, ids_plain;
  const char* decoded_skip;
  const char* decoded_keep;
};

struct DecodeCase {
  const char* name;
  const char* spec;
  std::vector<int> ids;
  const char* decoded;
};
#include "test_tokenizer_hf_cases.inc"


// The fixture tokenizer.json for a spec, as hf_tokenizer_fixtures.py's build() makes it: a
// character vocabulary (specials, printable ASCII, a few metaspace / byte-level characters,
// optionally the 256 byte tokens), the merges and their results, and the spec's components.
const json kBaseMerges = json::parse(R"([["h","e"],["l","l"],["l","o"],["he","ll"],["hell","o"],
  ["o"," "],[" ","w"],["w","o"],["r","l"],["wo","rl"],["worl","d"],["▁","h"],["▁h","e"],["▁","w"],
  ["Ġ","w"],["Ġw","o"],["1","2"],["12","3"],["a","b"],["ab","c"],["x","y"],["<","x"],["o","r"],
  ["e","l"],["d"," "]])");

std::string build_fixture(const std::string& spec_text) {
  const json spec = json::parse(spec_text);
  json vocab = json::object();
  int next = 0;
  const auto add = [&](const std::string& t) {
    if (!vocab.contains(t)) vocab[t] = next++;
  };
  for (const char* s : {"<unk>", "<s>", "</s>"}) add(s);
  for (int c = 32; c < 127; ++c) add(std::string(1, static_cast<char>(c)));
  for (const char* s : {"▁", "Ġ", "Ċ", "ĉ"}) add(s);
  if (spec.value("byte_tokens", false)) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      add(name);
    }
  }
  for (const auto& t : spec.value("extra_vocab", json::array())) add(t.get<std::string>());
  const json merges = spec.value("merges", kBaseMerges);
  for (const auto& m : merges) {
    add(m[0].get<std::string>());
    add(m[1].get<std::string>());
    add(m[0].get<std::string>() + m[1].get<std::string>());
  }
  json added = json::array();
  for (auto a : spec.value("added_tokens", json::array())) {
    const std::string content = a["content"];
    if (vocab.contains(content)) {
      a["id"] = vocab[content];
    } else {
      a["id"] = next++;
    }
    added.push_back(a);
  }
  json merges_out = merges;
  if (spec.value("merges_as_strings", false)) {
    merges_out = json::array();
    for (const auto& m : merges) merges_out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", spec.value("unk", json())},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", spec.value("fuse_unk", false)},
                {"byte_fallback", spec.value("byte_fallback", false)},
                {"ignore_merges", spec.value("ignore_merges", false)}, {"vocab", vocab},
                {"merges", merges_out}};
  json t = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
            {"model", model}};
  for (const char* k : {"normalizer", "pre_tokenizer", "post_processor", "decoder"})
    t[k] = spec.value(k, json());
  return t.dump();
}

std::string fixture_from(const std::string& components) { return build_fixture(components); }

}  // namespace

TEST_CASE("hf tokenizer: golden encodings and decodings of the three shared tokenizers", "[tokenizer]") {
  const std::string golden_path = kData + "/tokenizers/golden_public.json";
  if (!have_file(golden_path)) {
    WARN("skipped: " << golden_path << " is missing (shared test data)");
    SUCCEED();
    return;
  }
  REQUIRE(lowbit::model::hf_tokenizer_available());
  const json golden = json::parse(slurp(golden_path));
  const std::vector<std::pair<std::string, std::string>> files = {
      {"stories260k", kData + "/stories260k-hf/tokenizer.json"},
      {"llama3_style", kData + "/tokenizers/llama3_style_tokenizer.json"},
      {"qwen2_style", kData + "/tokenizers/qwen2_style_tokenizer.json"}};
  const auto& texts = golden["texts"];
  REQUIRE(texts.size() == 27);
  int encodings = 0, decodings = 0, total = 0;
  for (const auto& [name, path] : files) {
    const HfTokenizer tok = HfTokenizer::load(path);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      INFO(name << " text " << i << ": " << texts[i].get<std::string>());
      const auto want = golden["encodings"][name][i].get<std::vector<int>>();
      const auto got = tok.encode(texts[i].get<std::string>());
      CHECK(got == want);
      const std::string want_text = golden["decodings"][name][i].get<std::string>();
      const std::string got_text = tok.decode(want);
      CHECK(got_text == want_text);
      encodings += got == want;
      decodings += got_text == want_text;
      ++total;
    }
  }
  WARN("golden_public.json: " << encodings << "/" << total << " encodings and " << decodings << "/"
                              << total << " decodings match");
  CHECK(encodings == 81);
  CHECK(decodings == 81);
}

TEST_CASE("hf tokenizer: stories260k-hf encodes the TinyStories documents to the .u16 stream", "[tokenizer]") {
  const std::string tok_path = kData + "/stories260k-hf/tokenizer.json";
  const std::string text_path = kData + "/stories260k/tinystories_validation_head_794k.txt";
  const std::string ids_path = kData + "/stories260k/eval_tinystories_val_tok512.u16";
  if (!have_file(tok_path) || !have_file(text_path) || !have_file(ids_path)) {
    WARN("skipped: stories260k / stories260k-hf shared test data is missing");
    SUCCEED();
    return;
  }
  const HfTokenizer tok = HfTokenizer::load(tok_path);
  REQUIRE(tok.bos_id() == std::optional<int>(1));
  const std::string text = slurp(text_path), raw = slurp(ids_path);
  const std::vector<int> want = lowbit_test::u16_token_ids(raw);
  std::size_t docs = 0;
  const std::vector<int> got = lowbit_test::tinystories_token_ids(tok, text, std::size_t(-1), docs);
  CHECK(docs == 4300);
  REQUIRE(got.size() == want.size());
  std::size_t first_diff = 0;
  while (first_diff < got.size() && got[first_diff] == want[first_diff]) ++first_diff;
  INFO("first difference at token " << first_diff);
  CHECK(got == want);
}

TEST_CASE("hf tokenizer: hand-written fixtures match Hugging Face tokenizers", "[tokenizer]") {
  int checked = 0;
  for (const auto& c : kCases) {
    INFO("fixture " << c.name << ", text '" << c.text << "'");
    const HfTokenizer tok = HfTokenizer::parse(fixture_from(c.spec), c.name);
    CHECK(tok.encode(c.text) == c.ids);
    CHECK(tok.encode(c.text, false) == c.ids_plain);
    CHECK(tok.decode(c.ids) == c.decoded_skip);
    CHECK(tok.decode(c.ids, false) == c.decoded_keep);
    ++checked;
  }
  for (const auto& c : kDecodeCases) {
    INFO("decode fixture " << c.name);
    const HfTokenizer tok = HfTokenizer::parse(fixture_from(c.spec), c.name);
    CHECK(tok.decode(c.ids) == c.decoded);
    ++checked;
  }
  CHECK(checked > 100);
}

TEST_CASE("hf tokenizer: vocabulary queries", "[tokenizer]") {
  const HfTokenizer tok = HfTokenizer::parse(
      fixture_from(R"({"added_tokens": [{"content": "<s>", "special": true, "normalized": false},
                       {"content": "<new>", "special": false, "normalized": false}],
                       "post_processor": {"type": "TemplateProcessing",
                         "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                         "pair": [], "special_tokens": {}}})"),
      "queries");
  CHECK(tok.token_id("<s>") == std::optional<int>(1));
  CHECK(tok.token_id("hello").has_value());
  CHECK(tok.token(*tok.token_id("hello")) == "hello");
  CHECK_FALSE(tok.token_id("not a token").has_value());
  const int added = *tok.token_id("<new>");
  CHECK(tok.vocab_size() == added + 1);  // the one added token past the model vocabulary
  CHECK(tok.token(added) == "<new>");
  CHECK_FALSE(tok.bos_id().has_value());  // the template adds nothing before the text
  CHECK_THROWS_AS(tok.token(tok.vocab_size()), lowbit::error);
  CHECK_THROWS_AS(tok.token(-1), lowbit::error);
  CHECK(tok.decode({-5, 100000, *tok.token_id("hello")}) == "hello");  // unknown ids skipped
}

TEST_CASE("hf tokenizer: BPE merges the leftmost of equal-rank pairs first", "[tokenizer]") {
  // Worked by hand from tokenizers' Word::merge_all: the queue pops the lowest (rank, position),
  // so of the overlapping pairs l+l in "lll" the left one merges and the right l stays.
  const HfTokenizer tok = HfTokenizer::parse(fixture_from("{}"), "ties");
  const int l = *tok.token_id("l"), ll = *tok.token_id("ll"), o = *tok.token_id("o");
  CHECK(tok.encode("lll") == std::vector<int>{ll, l});
  CHECK(tok.encode("llll") == std::vector<int>{ll, ll});
  CHECK(tok.encode("lllo") == std::vector<int>{ll, *tok.token_id("lo")});  // l+o (rank 2) after l+l (1)
  CHECK(tok.encode("llo") == std::vector<int>{ll, o});
}

TEST_CASE("hf tokenizer: one tokenizer encodes from several threads", "[tokenizer]") {
  const HfTokenizer tok = HfTokenizer::parse(
      fixture_from(R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                       "trim_offsets": true, "use_regex": true}})"), "threads");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "hello world " + std::to_string(i) + " woo ";
  const auto want = tok.encode(text);
  std::vector<std::vector<int>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&tok, &text, &g] { g = tok.encode(text); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(g == want);
}

namespace {

// parse() of `text` must throw a lowbit::error whose message contains every part.
void expect_refused(const std::string& text, std::initializer_list<const char*> parts) {
  try {
    (void)HfTokenizer::parse(text, "tokenizer.json");
    FAIL("accepted: " << text.substr(0, 300));
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.rfind("tokenizer.json: ", 0) == 0);
    for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

std::string with(const std::string& key, const std::string& value) {
  json t = json::parse(fixture_from("{}"));
  t[key] = json::parse(value);
  return t.dump();
}

std::string with_model(const std::string& key, const std::string& value) {
  json t = json::parse(fixture_from("{}"));
  t["model"][key] = json::parse(value);
  return t.dump();
}

}  // namespace

TEST_CASE("hf tokenizer: unsupported components are refused with the component named", "[tokenizer]") {
  expect_refused(with("pre_tokenizer", R"({"type": "Whitespace"})"),
                 {"pre_tokenizer type 'Whitespace' is not supported"});
  expect_refused(with("pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "Punctuation"}]})"),
                 {"pre_tokenizer[1] type 'Punctuation' is not supported"});
  expect_refused(with("normalizer", R"({"type": "BertNormalizer"})"), {"normalizer type 'BertNormalizer'"});
  expect_refused(with("normalizer", R"({"type": "NFD"})"), {"normalizer type 'NFD' is not supported"});
  expect_refused(with("decoder", R"({"type": "WordPiece"})"), {"decoder type 'WordPiece' is not supported"});
  expect_refused(with("post_processor", R"({"type": "RobertaProcessing"})"),
                 {"post_processor type 'RobertaProcessing' is not supported"});
  expect_refused(with_model("type", R"("Unigram")"), {"model type 'Unigram' is not supported"});
  expect_refused(with_model("continuing_subword_prefix", R"("##")"), {"model.continuing_subword_prefix"});
  expect_refused(with_model("end_of_word_suffix", R"("</w>")"), {"model.end_of_word_suffix"});
  expect_refused(with_model("dropout", "0.1"), {"model.dropout"});
  expect_refused(with("truncation", R"({"max_length": 8})"), {"truncation"});
  expect_refused(with("padding", R"({"pad_id": 0})"), {"padding"});
  expect_refused(with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated", "invert": false})"),
                 {"pre_tokenizer Split", "regex does not compile"});
  expect_refused(with("pre_tokenizer", R"({"type": "Split", "pattern": {"Glob": "*"}, "behavior": "Isolated"})"),
                 {"pre_tokenizer Split", "'pattern'"});
  expect_refused(with("pre_tokenizer", R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"})"),
                 {"behavior 'Sideways'"});
  expect_refused(with("pre_tokenizer", R"({"type": "Metaspace", "replacement": "ab", "prepend_scheme": "always"})"),
                 {"pre_tokenizer Metaspace", "'replacement' must be exactly one character"});
  expect_refused(with("pre_tokenizer", R"({"type": "Metaspace", "replacement": "_", "prepend_scheme": "sometimes"})"),
                 {"prepend_scheme"});
  expect_refused(with("post_processor", R"({"type": "TemplateProcessing", "single": "<s> $A", "special_tokens": {}})"),
                 {"post_processor TemplateProcessing", "'single'"});
  expect_refused(with("post_processor", R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}], "special_tokens": {}})"),
                 {"special token '<bos>' is not in special_tokens"});
  expect_refused(with("post_processor", R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [4000], "tokens": ["<s>"]}}})"),
                 {"post_processor: special token id 4000 is not in the vocabulary"});
  expect_refused(with("decoder", R"({"type": "Strip", "content": " ", "start": -1, "stop": 0})"), {"decoder Strip", "'start'"});
  expect_refused(with("normalizer", R"({"no_type": 1})"), {"normalizer: missing 'type'"});
}

TEST_CASE("hf tokenizer: malformed files are refused", "[tokenizer]") {
  // Broken merges: a part, or the merged token, missing from the vocabulary.
  expect_refused(with_model("merges", R"([["h", "e"], ["q", "§"]])"), {"model.merges[1]", "broken merge", "'§'"});
  expect_refused(with_model("merges", R"([["x", "z"]])"), {"model.merges[0]", "'xz' is not in the vocabulary"});
  expect_refused(with_model("merges", R"(["h e", "a b c"])"), {"model.merges[1]", "two tokens"});
  expect_refused(with_model("merges", R"([["h"]])"), {"model.merges[0]"});
  expect_refused(with_model("merges", R"({"h": "e"})"), {"model.merges must be an array"});
  // Vocabulary: bad ids, duplicate ids, invalid UTF-8 (a JSON error, located in model.vocab).
  expect_refused(with_model("vocab", R"({"a": "1"})"), {"model.vocab['a']", "integer"});
  expect_refused(with_model("vocab", R"({"a": -1})"), {"model.vocab['a']", "out of range"});
  expect_refused(with_model("vocab", R"({"a": 0, "b": 0})"), {"model.vocab", "id 0 is given to both"});
  expect_refused(with_model("vocab", "[1, 2]"), {"model.vocab must be an object"});
  std::string bad_utf8 = fixture_from("{}");
  const auto at = bad_utf8.find("\"hello\"");
  REQUIRE(at != std::string::npos);
  bad_utf8.replace(at + 1, 1, "\xC3\x28");
  expect_refused(bad_utf8, {"not valid JSON in model.vocab", "UTF-8"});
  expect_refused(R"({"model": {"type": "BPE", "vocab": {"a": 0, "\udc00": 1}, "merges": []}})",
                 {"not valid JSON in model.vocab", "surrogate"});
  // JSON that is not a tokenizer.
  expect_refused("", {"not valid JSON"});
  expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {", {"not valid JSON in model.vocab"});
  expect_refused("[1, 2, 3]", {"the top level must be an object"});
  // A number outside double's range is nlohmann's out_of_range, not a parse_error (fuzzer find).
  expect_refused(R"({"model": 2e555})", {"not valid JSON", "number overflow"});
  expect_refused("{}", {"model: missing"});
  expect_refused(with("added_tokens", R"([{"id": 3, "content": ""}])"), {"added_tokens[0]: empty content"});
  expect_refused(with("added_tokens", R"([{"id": 3}])"), {"added_tokens[0]: missing 'content'"});
  expect_refused(with("added_tokens", R"([{"id": "x", "content": "<a>"}])"), {"added_tokens[0]: 'id'"});
  expect_refused(with("added_tokens", R"([{"id": 500, "content": "<a>"}, {"id": 501, "content": "<a>"}])"),
                 {"added_tokens[1]", "listed twice"});
  expect_refused(with("added_tokens", R"([{"id": 500, "content": "<a>", "lstrip": "yes"}])"), {"added_tokens[0]: 'lstrip'"});
  expect_refused(with("normalizer", R"({"type": "Sequence", "normalizers": {"type": "NFC"}})"), {"'normalizers' must be an array"});
  CHECK_THROWS_WITH(HfTokenizer::load(kData + "/no/such/tokenizer.json"), Catch::Contains("cannot open"));
}

TEST_CASE("hf tokenizer: bad input at encode time is an error, not a crash", "[tokenizer]") {
  const HfTokenizer plain = HfTokenizer::parse(fixture_from("{}"), "plain");
  CHECK_THROWS_WITH(plain.encode("ab\xff" "cd"), Catch::Contains("not valid UTF-8 (byte 2)"));
  CHECK_THROWS_WITH(plain.encode("\xed\xa0\x80"), Catch::Contains("not valid UTF-8"));  // a surrogate
  // unk_token named but missing from the vocabulary: an error when it is needed, as in tokenizers.
  const HfTokenizer no_unk = HfTokenizer::parse(fixture_from(R"({"unk": "<missing>"})"), "no_unk");
  CHECK(no_unk.encode("hello") == plain.encode("hello"));
  CHECK_THROWS_WITH(no_unk.encode("h\xc3\xa9"), Catch::Contains("unk_token '<missing>'"));
  // Catastrophic backtracking hits PCRE2's match limit: an error naming the pre-tokenizer.
  const HfTokenizer slow = HfTokenizer::parse(
      fixture_from(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a|aa)+$"},
                       "behavior": "Isolated", "invert": false}})"), "slow");
  CHECK_THROWS_WITH(slow.encode(std::string(64, 'a') + "b"), Catch::Contains("pre_tokenizer Split"));
}

}  // namespace test_tokenizer_hf_cpp
#endif  // LOWBIT_HAVE_HF_TOKENIZER
