// The stories260K model end to end: tokenizer, fp32 forward, loaders, perplexity.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>

#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/perplexity.hpp"
#include "lowbit/model/tokenizer.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_llama_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
using lowbit_test::kStoriesDir;

TEST_CASE("tokenizer: llama2.c encode of the check sentence", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const Tokenizer tok = Tokenizer::load(kStoriesDir + "/tok512.bin", 512);
  CHECK(tok.vocab_size() == 512);
  const auto ids = tok.encode(lowbit_test::kCheckSentence);
  REQUIRE(ids.size() == 35);
  CHECK(ids.front() == Tokenizer::kBos);
  // The dummy prefix space is part of the first piece; decoding gives the text back.
  CHECK(tok.decode(ids) == " " + lowbit_test::kCheckSentence);
  // Byte fallback: a code point that is not in the 512-token vocabulary.
  const auto euro = tok.encode("\xE2\x82\xAC", false);  // U+20AC
  REQUIRE(euro.size() >= 2);
  CHECK(tok.decode(euro) == " \xE2\x82\xAC");
}

TEST_CASE("llama: fp32 perplexity of the check sentence matches the README", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const Tokenizer tok = Tokenizer::load(kStoriesDir + "/tok512.bin", 512);
  const auto ids = tok.encode(lowbit_test::kCheckSentence);
  const double ppl = lowbit_test::sentence_perplexity(lowbit_test::stories_model(), ids);
  INFO("perplexity " << ppl);
  CHECK(std::abs(ppl - 4.9536) < 4.9536 * 1e-3);
}

TEST_CASE("llama: .bin and .safetensors loads agree", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaWeights a = load_llama_weights(kStoriesDir + "/stories260K.bin");
  const LlamaWeights b = load_llama_weights(kStoriesDir + "/stories260K.safetensors");
  CHECK(a.config.dim == 64);
  CHECK(a.config.hidden_dim == 172);
  CHECK(a.config.n_layers == 5);
  CHECK(a.config.n_heads == 8);
  CHECK(a.config.n_kv_heads == 4);
  CHECK(a.config.vocab_size == 512);
  CHECK(a.config.tied_classifier);
  CHECK(b.config.n_heads == a.config.n_heads);
  CHECK(b.config.n_kv_heads == a.config.n_kv_heads);
  CHECK(b.config.max_seq_len == a.config.max_seq_len);
  CHECK(b.config.tied_classifier == a.config.tied_classifier);
  CHECK(a.tok_embeddings == b.tok_embeddings);
  CHECK(a.norm == b.norm);
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    CHECK(x.attention_norm == y.attention_norm);
    CHECK(x.ffn_norm == y.ffn_norm);
    CHECK(x.wq == y.wq);
    CHECK(x.wk == y.wk);
    CHECK(x.wv == y.wv);
    CHECK(x.wo == y.wo);
    CHECK(x.w1 == y.w1);
    CHECK(x.w2 == y.w2);
    CHECK(x.w3 == y.w3);
  }
}

TEST_CASE("llama: incremental decoding with the KV cache equals the batched forward",
          "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& m = lowbit_test::stories_model();
  const std::vector<int> ids = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 40, 7};
  const RowMatrixXf batched = m.forward(ids);
  KvCache cache(m.config());
  ForwardWorkspace ws;
  RowMatrixXf step;
  // Mixed chunk sizes: 5 tokens, then one at a time.
  m.forward(ids.data(), 5, cache, step, ws);
  CHECK((step - batched.topRows(5)).cwiseAbs().maxCoeff() < 1e-4f);
  for (int t = 5; t < static_cast<int>(ids.size()); ++t) {
    m.forward(ids.data() + t, 1, cache, step, ws);
    INFO("position " << t);
    CHECK((step.row(0) - batched.row(t)).cwiseAbs().maxCoeff() < 1e-4f);
  }
  CHECK(cache.length == static_cast<int>(ids.size()));
}

TEST_CASE("perplexity: document split and the first 20 documents", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const auto tokens = read_u16_tokens(kStoriesDir + "/eval_tinystories_val_tok512.u16");
  REQUIRE(tokens.size() == 384962);
  const auto docs = split_documents(tokens);
  CHECK(docs.size() == 4300);
  std::size_t predicted = 0;
  for (const auto& d : docs) predicted += d.length - 1;
  CHECK(predicted == 380662);

  PerplexityOptions opt;
  opt.max_docs = 20;
  const PerplexityResult one = evaluate_perplexity(lowbit_test::stories_model(), tokens, opt);
  CHECK(one.documents == 20);
  CHECK(std::isfinite(one.perplexity()));
  CHECK(one.perplexity() > 1.0);
  CHECK(one.perplexity() < 20.0);  // a trained model; uniform guessing would be 512
  // Threads split documents but add them in order: the same sum.
  opt.threads = 3;
  const PerplexityResult three = evaluate_perplexity(lowbit_test::stories_model(), tokens, opt);
  CHECK(three.total_nll == one.total_nll);
  CHECK(three.predicted_tokens == one.predicted_tokens);
}

TEST_CASE("perplexity: split_documents edge cases", "[model]") {
  CHECK(split_documents({}).empty());
  const auto d = split_documents({5, 1, 7, 8, 1, 1, 9});
  REQUIRE(d.size() == 4);
  CHECK(d[0].begin == 0);
  CHECK(d[0].length == 1);
  CHECK(d[1].begin == 1);
  CHECK(d[1].length == 3);
  CHECK(d[2].length == 1);
  CHECK(d[3].length == 2);
}
}  // namespace test_model_llama_cpp
