// The rule "the readers of one norm share one smoothing vector" (model/norm_smoothing.hpp):
// q/k/v get one s, gate/up one s, o_proj/down_proj none, for per_norm recipes (the default of
// w8a8-int8; w4a16-sqplus with --smooth-scope norm), so their checkpoints fold into the norms on compressed-tensors
// export. The whole path (quantize -> export -> eval) is the CLI entries cli_ct_eval_equal_*.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/norm_smoothing.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// translation unit (unity groups) without clashes.
namespace test_model_export_smoothing_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;

namespace {

bool norm_smoothing_bits_equal(const Eigen::VectorXf& a, const Eigen::VectorXf& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

RowMatrixXf norm_smoothing_random(Eigen::Index rows, Eigen::Index cols, unsigned seed, float outlier_col = -1) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  if (outlier_col >= 0) m.col(static_cast<Eigen::Index>(outlier_col)) *= 20.0f;
  return m;
}

}  // namespace

TEST_CASE("norm smoothing: which layers read a norm, and what a per_norm recipe does where", "[model][export]") {
  for (linear_slot s : {linear_slot::wq, linear_slot::wk, linear_slot::wv}) CHECK(norm_read_by(s) == 0);
  for (linear_slot s : {linear_slot::w1, linear_slot::w3}) CHECK(norm_read_by(s) == 1);
  CHECK_FALSE(norm_read_by(linear_slot::wo).has_value());
  CHECK_FALSE(norm_read_by(linear_slot::w2).has_value());

  // w8a8-int8 shares by default; w4a16-sqplus smooths per layer unless asked (accuracy: see
  // algo/recipes.hpp).
  CHECK(lowbit::recipe_from_name("w8a8-int8").scope == lowbit::smoothing_scope::per_norm);
  CHECK(lowbit::recipe_from_name("w4a16-sqplus").scope == lowbit::smoothing_scope::per_layer);
  for (const char* name : {"w8a8-int8", "w4a16-sqplus"}) {
    lowbit::LinearRecipe r = lowbit::recipe_from_name(name);
    r.scope = lowbit::smoothing_scope::per_norm;
    INFO(name);
    CHECK(recipe_at(r, linear_slot::wo).smoothing == lowbit::smoothing_mode::none);
    CHECK(recipe_at(r, linear_slot::w2).smoothing == lowbit::smoothing_mode::none);
    CHECK(recipe_at(r, linear_slot::wq).smoothing == r.smoothing);
    CHECK(recipe_at(r, std::nullopt).smoothing == r.smoothing);  // place unknown: as the recipe says
    lowbit::LinearRecipe per_layer = r;
    per_layer.scope = lowbit::smoothing_scope::per_layer;
    CHECK(recipe_at(per_layer, linear_slot::wo).smoothing == r.smoothing);
  }
}

TEST_CASE("norm smoothing: q/k/v and gate/up get one vector, chosen from all of them", "[model][export]") {
  const Eigen::Index dim = 48, hidden = 96;
  RowMatrixXf w[kLinearSlots];
  const Eigen::Index rows[kLinearSlots] = {dim, dim / 2, dim / 2, dim, hidden, dim, hidden};
  const Eigen::Index cols[kLinearSlots] = {dim, dim, dim, dim, dim, hidden, dim};
  for (int k = 0; k < kLinearSlots; ++k) w[k] = norm_smoothing_random(rows[k], cols[k], 11u + unsigned(k), k == 1 ? 5 : -1);
  lowbit::CalibrationOptions co;
  co.max_sample_rows = 64;
  lowbit::ActivationStats attn(dim, co, "attn"), ffn(dim, co, "ffn"), down(hidden, co, "down");
  attn.add(norm_smoothing_random(64, dim, 101, 7));
  ffn.add(norm_smoothing_random(64, dim, 102, 3));
  down.add(norm_smoothing_random(64, hidden, 103));
  const auto stats_of = [&](linear_slot s) -> const lowbit::ActivationStats* {
    const auto n = norm_read_by(s);
    return !n ? &down : *n == 0 ? &attn : &ffn;
  };
  const auto name_of = [](linear_slot s) { return "slot" + std::to_string(static_cast<int>(s)); };
  const auto weight_of = [&](linear_slot s) { return &w[static_cast<int>(s)]; };

  for (const char* recipe : {"w8a8-int8", "w4a16-sqplus"}) {
    INFO(recipe);
    lowbit::LinearRecipe r = lowbit::recipe_from_name(recipe);
    r.scope = lowbit::smoothing_scope::per_norm;
    const LayerSmoothing ls = share_norm_smoothing([&](linear_slot) { return &r; }, weight_of, stats_of, name_of);
    const auto& q = ls.shared[0];
    REQUIRE(q);
    for (linear_slot s : {linear_slot::wk, linear_slot::wv}) {
      REQUIRE(ls.shared[static_cast<int>(s)]);
      CHECK(norm_smoothing_bits_equal(ls.shared[static_cast<int>(s)]->scales, q->scales));
    }
    REQUIRE(ls.shared[4]);
    REQUIRE(ls.shared[6]);
    CHECK(norm_smoothing_bits_equal(ls.shared[4]->scales, ls.shared[6]->scales));
    CHECK_FALSE(ls.shared[3].has_value());  // o_proj
    CHECK_FALSE(ls.shared[5].has_value());  // down_proj
    // The vector is the one smooth_shared chooses over all readers: not q's own.
    const lowbit::SmoothOptions so = lowbit::detail::smooth_options(r, name_of(linear_slot::wq));
    const lowbit::SmoothingResult pooled = lowbit::smooth_shared(attn, {w[0], w[1], w[2]}, so);
    CHECK(norm_smoothing_bits_equal(q->scales, pooled.scales));
    CHECK(q->alpha == pooled.alpha);
    const lowbit::SmoothingResult own = lowbit::smooth(attn, w[0], so);
    CHECK_FALSE(norm_smoothing_bits_equal(q->scales, own.scales));  // k's outlier column moves the shared s
    if (r.smoothing == lowbit::smoothing_mode::fixed) {
      // Fixed alpha: s_j = a_j^0.8 / max over q/k/v of max|W_j|^0.2, from the pooled maxima.
      Eigen::VectorXf wmax = lowbit::weight_column_absmax(w[0]);
      for (int k : {1, 2}) wmax = wmax.cwiseMax(lowbit::weight_column_absmax(w[k]));
      CHECK(norm_smoothing_bits_equal(q->scales, lowbit::smoothing_factors(attn.absmax(), wmax, 0.8f)));
    }
    // quantize_linear_smoothed stores exactly the shared vector.
    const lowbit::QuantizedLinear ql = lowbit::quantize_linear_smoothed(w[1], nullptr, r, *q, &attn, nullptr, "k");
    REQUIRE(ql.smoothing);
    CHECK(norm_smoothing_bits_equal(*ql.smoothing, q->scales));
  }

  // Readers of one norm with different recipes cannot share: refused naming both.
  const lowbit::LinearRecipe a = lowbit::recipe_from_name("w8a8-int8");
  lowbit::LinearRecipe b = lowbit::recipe_from_name("w4a16-sqplus");
  b.scope = lowbit::smoothing_scope::per_norm;
  CHECK_THROWS_WITH(share_norm_smoothing([&](linear_slot s) { return s == linear_slot::wv ? &b : &a; }, weight_of, stats_of,
                                         name_of),
                    Catch::Contains("layer slot2 and slot0 read the same norm (input_layernorm)") &&
                        Catch::Contains("different recipes"));
  // Per-layer scope, or no smoothing: nothing shared.
  lowbit::LinearRecipe pl = a;
  pl.scope = lowbit::smoothing_scope::per_layer;
  const LayerSmoothing none = share_norm_smoothing([&](linear_slot) { return &pl; }, weight_of, stats_of, name_of);
  for (const auto& s : none.shared) CHECK_FALSE(s.has_value());
}

TEST_CASE("norm smoothing: eval --recipe's factory shares per norm on stories260K", "[model][export]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const std::vector<int> tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  lowbit::CalibrationOptions co;
  co.max_sample_rows = 256;
  CalibrationRun run;
  run.max_docs = 2;
  const CalibrationRecorder rec = calibrate(fp32, tokens, co, run);
  EvalScheme scheme;
  scheme.recipe = lowbit::recipe_from_name("w8a8-int8");
  scheme.name = "w8a8-int8";
  CHECK_THROWS_WITH(scheme_linear_factory(scheme, &rec), Catch::Contains("needs the model's weights"));
  LlamaModel m(load_llama_weights(lowbit_test::kStoriesDir + "/stories260K.bin"));
  m.set_linear_layers(scheme_linear_factory(scheme, &rec, &m.source()));
  const auto layers = m.linear_layers();
  const auto smoothing_of = [&](int l, linear_slot s) -> const std::optional<Eigen::VectorXf>& {
    const std::string name = m.linear_name(l, s);
    for (const auto& [n, layer] : layers)
      if (n == name) return dynamic_cast<const RecipeLinear&>(*layer).quantized().smoothing;
    FAIL("no layer " << name);
    static const std::optional<Eigen::VectorXf> none;
    return none;
  };
  for (int l = 0; l < m.config().n_layers; ++l) {
    INFO("layer " << l);
    const auto& q = smoothing_of(l, linear_slot::wq);
    const auto& g = smoothing_of(l, linear_slot::w1);
    REQUIRE(q);
    REQUIRE(g);
    CHECK(!(q->array() == 1.0f).all());
    for (linear_slot s : {linear_slot::wk, linear_slot::wv}) {
      REQUIRE(smoothing_of(l, s));
      CHECK(norm_smoothing_bits_equal(*smoothing_of(l, s), *q));
    }
    REQUIRE(smoothing_of(l, linear_slot::w3));
    CHECK(norm_smoothing_bits_equal(*smoothing_of(l, linear_slot::w3), *g));
    CHECK_FALSE(smoothing_of(l, linear_slot::wo).has_value());
    CHECK_FALSE(smoothing_of(l, linear_slot::w2).has_value());
  }
}

}  // namespace test_model_export_smoothing_cpp
