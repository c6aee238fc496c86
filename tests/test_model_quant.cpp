// Quantized evaluation: the fake-quant linear layers, the scheme -> layer switch, the
// calibration hook, and on stories260K that quantizing to 4 bits costs perplexity.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_quant_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;

namespace {

RowMatrixXf random_matrix(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

lowbit::QuantSpec int4_group(int g) {
  lowbit::QuantSpec s;
  s.format = lowbit::element_format::int4;
  s.gran = lowbit::granularity::per_group;
  s.group_size = g;
  return s;
}

}  // namespace

TEST_CASE("fake-quant linear: weights as dequantize(quantize(w)), activations per token", "[model]") {
  const RowMatrixXf w = random_matrix(24, 40, 1);   // K = 40: a ragged last group of 16
  const RowMatrixXf x = random_matrix(5, 40, 2);
  const lowbit::QuantSpec spec = int4_group(24);
  const lowbit::QuantizedMatrix q = lowbit::quantize(w, spec, "w");
  const RowMatrixXf w_hat = lowbit::dequantize(q);
  RowMatrixXf y(5, 24);

  const FakeQuantLinear weight_only(w, spec, std::nullopt, "w");
  weight_only.forward(x, y);
  CHECK((y - x * w_hat.transpose()).cwiseAbs().maxCoeff() < 1e-5f);
  CHECK(weight_only.storage_bits() == static_cast<double>(q.storage_bits()));
  CHECK(weight_only.storage_bits() < 32.0 * w.size() / 4);  // 4-bit codes + scales: far below fp32

  const FakeQuantLinear a8(w, spec, lowbit::act_format::int8, "w");
  a8.forward(x, y);
  const RowMatrixXf x_hat = lowbit::dequantize(lowbit::quantize_activations(x, lowbit::act_format::int8));
  CHECK((y - x_hat * w_hat.transpose()).cwiseAbs().maxCoeff() < 1e-5f);
  CHECK((x_hat - x).cwiseAbs().maxCoeff() > 0.0f);  // activations really were quantized

  // Rows are quantized independently: one token's result does not depend on the others.
  RowMatrixXf y1(1, 24);
  a8.forward(x.topRows(1), y1);
  CHECK((y1.row(0) - y.row(0)).cwiseAbs().maxCoeff() < 1e-5f);

  RowMatrixXf wrong(5, 23);
  CHECK_THROWS_AS(a8.forward(x, wrong), lowbit::error);

  // A 16-bit input is a weight-only layer's: an A8 layer given one refuses (as PackedLinear
  // does) instead of describing a rounding it would not do.
  CHECK_THROWS_WITH(FakeQuantLinear(w, spec, lowbit::act_format::int8, "w", lowbit::activation_dtype::bf16),
                    Catch::Contains("'w'") && Catch::Contains("weight-only"));
  const FakeQuantLinear bf16_in(w, spec, std::nullopt, "w", lowbit::activation_dtype::bf16);
  CHECK(bf16_in.describe() == "fake-quant weights + bf16 activations");
  bf16_in.forward(x, y);
  const RowMatrixXf xb = x.cast<Eigen::bfloat16>().cast<float>();
  CHECK((y - xb * w_hat.transpose()).cwiseAbs().maxCoeff() < 1e-5f);
  CHECK((xb - x).cwiseAbs().maxCoeff() > 0.0f);  // the input really was rounded
}

TEST_CASE("scheme factory: fp32, quantized blocks, classifier only on request", "[model]") {
  const RowMatrixXf w = random_matrix(16, 32, 3);
  EvalScheme fp32;
  CHECK(fp32.is_fp32());
  CHECK(scheme_linear_factory(fp32)("layers.0.attention.wq", w)->describe() == "fp32");

  EvalScheme w4;
  w4.weights = int4_group(16);
  const auto f = scheme_linear_factory(w4);
  CHECK(f("layers.0.attention.wq", w)->storage_bits() < 32.0 * w.size());
  CHECK(f("output", w)->describe() == "fp32");
  w4.quantize_classifier = true;
  CHECK(scheme_linear_factory(w4)("output", w)->storage_bits() < 32.0 * w.size());
}

TEST_CASE("calibration: the recorder sees every linear input of the forward pass", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& m = lowbit_test::stories_model();
  const auto tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  lowbit::CalibrationOptions opt;
  opt.max_sample_rows = 50;
  CalibrationRun run;
  run.max_docs = 3;
  const CalibrationRecorder rec = calibrate(m, tokens, opt, run);
  const auto docs = split_documents(tokens);
  const std::int64_t n = static_cast<std::int64_t>(docs[0].length + docs[1].length + docs[2].length);
  CHECK(rec.tokens() == n);
  CHECK(rec.stats().size() == 5 * 7 + 1);
  const auto& wq = rec.at("layers.2.attention.wq");
  CHECK(wq.count() == n);
  CHECK(wq.channels() == 64);
  CHECK(rec.at("layers.2.feed_forward.w2").channels() == 172);
  CHECK(rec.at("output").count() == n);
  CHECK(wq.sample().rows() == 50);
  // wq, wk and wv read the same normalized input.
  CHECK(rec.at("layers.2.attention.wk").absmax() == wq.absmax());
  // The first document's first position, recomputed by hand: layer 0's input is
  // rmsnorm(embedding of BOS) * attention_norm.
  const LlamaWeights W = read_all_weights(m.source());
  const Eigen::RowVectorXf e = W.tok_embeddings.row(tokens[0]);
  const float inv = 1.0f / std::sqrt(e.squaredNorm() / 64.0f + W.config.norm_eps);
  const Eigen::RowVectorXf first = (e.array() * inv * W.layers[0].attention_norm.transpose().array()).matrix();
  CHECK((rec.at("layers.0.attention.wq").sample().row(0) - first).cwiseAbs().maxCoeff() < 1e-5f);
  // The Hessian is 2 X^T X / n and symmetric positive semi-definite.
  const Eigen::MatrixXf H = wq.hessian();
  CHECK((H - H.transpose()).cwiseAbs().maxCoeff() < 1e-4f);
  CHECK(H.diagonal().minCoeff() >= 0.0f);
  // max_tokens stops early.
  run.max_docs = -1;
  run.max_tokens = 100;
  CHECK(calibrate(m, tokens, opt, run).tokens() == 100);
}

TEST_CASE("perplexity: 4-bit weights cost perplexity on stories260K, first 20 documents", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const auto tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  PerplexityOptions opt;
  opt.max_docs = 20;
  const double fp32 = evaluate_perplexity(lowbit_test::stories_model(), tokens, opt).perplexity();

  LlamaModel w4(load_llama_weights(lowbit_test::kStoriesDir + "/stories260K.bin"));
  EvalScheme scheme;
  lowbit::QuantSpec spec;
  spec.format = lowbit::element_format::int4;
  spec.gran = lowbit::granularity::per_channel;
  scheme.weights = spec;
  w4.set_linear_layers(scheme_linear_factory(scheme));
  const double q4 = evaluate_perplexity(w4, tokens, opt).perplexity();

  scheme.weights = std::nullopt;
  scheme.activations = lowbit::act_format::int8;
  LlamaModel a8(load_llama_weights(lowbit_test::kStoriesDir + "/stories260K.bin"));
  a8.set_linear_layers(scheme_linear_factory(scheme));
  const double qa8 = evaluate_perplexity(a8, tokens, opt).perplexity();
  INFO("fp32 " << fp32 << ", int4 per-channel weights " << q4 << ", int8 activations " << qa8);
  CHECK(std::isfinite(q4));
  CHECK(fp32 < q4);
  CHECK(q4 < 2 * fp32);  // degraded, not broken
  CHECK(std::abs(qa8 - fp32) < 0.02 * fp32);  // 8-bit activations alone are nearly lossless
  CHECK(qa8 != fp32);
}

TEST_CASE("scheme factory: packed kernels agree with fake quantization", "[model]") {
  const RowMatrixXf w = random_matrix(40, 72, 5);  // K = 72: ragged with group 32
  const RowMatrixXf x = random_matrix(7, 72, 6);
  struct Case {
    lowbit::QuantSpec spec;
    std::optional<lowbit::act_format> act;
    float tolerance;  // relative to max |y|
  };
  lowbit::QuantSpec int8_pc;
  int8_pc.format = lowbit::element_format::int8;
  int8_pc.gran = lowbit::granularity::per_channel;
  const Case cases[] = {{int4_group(32), std::nullopt, 1e-5f},
                        {int8_pc, lowbit::act_format::int8, 1e-5f},
                        {int4_group(32), lowbit::act_format::int8, 1e-5f}};
  for (const Case& c : cases) {
    EvalScheme s;
    s.weights = c.spec;
    s.activations = c.act;
    s.backend = linear_backend::packed;
    const auto packed = scheme_linear_factory(s)("layers.0.attention.wq", w);
    s.backend = linear_backend::fake_quant;
    const auto fake = scheme_linear_factory(s)("layers.0.attention.wq", w);
    INFO(packed->describe());
    CHECK(packed->describe().rfind("packed kernel", 0) == 0);
    CHECK(fake->describe().rfind("fake-quant", 0) == 0);
    CHECK(packed->storage_bits() == fake->storage_bits());
    RowMatrixXf y_packed(7, 40), y_fake(7, 40);
    packed->forward(x, y_packed);
    fake->forward(x, y_fake);
    CHECK((y_packed - y_fake).cwiseAbs().maxCoeff() <= c.tolerance * y_fake.cwiseAbs().maxCoeff());
  }
  // Explicitly packed with no kernel for the format is an error; automatic falls back.
  EvalScheme fp6;
  fp6.weights = lowbit::channel_spec(lowbit::element_format::float6_e3m2fn);
  fp6.backend = linear_backend::packed;
  CHECK_THROWS_AS(scheme_linear_factory(fp6)("w", w), lowbit::error);
  fp6.backend = linear_backend::automatic;
  CHECK(scheme_linear_factory(fp6)("w", w)->describe().rfind("fake-quant", 0) == 0);
}

TEST_CASE("recipes: calibrated from the model's own forward pass", "[model]") {
  EvalScheme gptq;
  gptq.recipe = lowbit::recipe_from_name("w4a16-int4");
  gptq.name = "w4a16-int4";
  CHECK(gptq.needs_calibration());
  CHECK_THROWS_WITH(scheme_linear_factory(gptq), Catch::Contains("calibration"));

  LOWBIT_REQUIRE_STORIES();
  const auto tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  CalibrationRun run;
  run.max_docs = 8;
  const CalibrationRecorder rec = calibrate(lowbit_test::stories_model(), tokens, {}, run);
  LlamaModel m(load_llama_weights(lowbit_test::kStoriesDir + "/stories260K.bin"));
  m.set_linear_layers(scheme_linear_factory(gptq, &rec));
  CHECK(m.linear(0, linear_slot::w2).describe().rfind("recipe w4a16-int4", 0) == 0);
  CHECK(m.classifier().describe() == "fp32");
  PerplexityOptions opt;
  opt.max_docs = 20;
  const double fp32 = evaluate_perplexity(lowbit_test::stories_model(), tokens, opt).perplexity();
  const double q = evaluate_perplexity(m, tokens, opt).perplexity();
  INFO("fp32 " << fp32 << ", w4a16-int4 " << q);
  CHECK(std::isfinite(q));
  CHECK(fp32 < q);
  CHECK(q < 1.5 * fp32);
}
}  // namespace test_model_quant_cpp
