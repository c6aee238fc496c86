// RecipeLinear's reference path is QuantizedLinear's formula (algo/linear.hpp, its one home):
// the model layer, with W_hat dequantized once, gives the same floats as
// QuantizedLinear::reference_forward for every recipe (smoothing, activation quantization,
// LoRC and bias included), so the two cannot drift apart again.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/algo.hpp"
#include "lowbit/error.hpp"
#include "lowbit/model/linear_layer.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/threads.hpp"

#include "test_algo_support.hpp"

namespace test_model_recipe_linear_cpp {

using namespace lowbit;

TEST_CASE("RecipeLinear reference path: QuantizedLinear's formula, float for float", "[model][linear]") {
  const RowMatrixXf w = lowbit_test::gaussian(24, 128, 31, 0.05f);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(24, -0.25f, 0.25f);
  RowMatrixXf x = lowbit_test::gaussian(12, 128, 32);
  for (Eigen::Index j = 3; j < x.cols(); j += 17) x.col(j) *= 20.0f;  // outliers: smoothing matters
  CalibrationOptions copt;
  copt.max_sample_rows = 12;
  const ActivationStats stats = collect_stats(x, copt);
  for (const std::string& name : recipe_names()) {
    INFO(name);
    const QuantizedLinear q = quantize_linear(w, &bias, recipe_from_name(name), &stats, "recipe_linear.w");
    const RowMatrixXf ref = q.reference_forward(x);
    const model::RecipeLinear layer(q, /*use_kernels=*/false);
    REQUIRE_FALSE(layer.uses_kernels());
    RowMatrixXf y(x.rows(), w.rows());
    layer.forward(x, y);
    // The same operations in the same order: exact equality is the claim.
    CHECK((y.array() == ref.array()).all());
  }
}

TEST_CASE("QuantizedLinear::reference_forward with a given W_hat checks the shapes", "[model][linear]") {
  const RowMatrixXf w = lowbit_test::gaussian(8, 32, 33, 0.05f);
  const QuantizedLinear q = quantize_linear(w, recipe_from_name("w8a8-fp8"), nullptr, "recipe_linear.shapes");
  const RowMatrixXf x = lowbit_test::gaussian(3, 32, 34);
  RowMatrixXf y(3, 8);
  const RowMatrixXf wrong_w_hat = RowMatrixXf::Zero(8, 31);
  CHECK_THROWS_WITH(q.reference_forward(x, wrong_w_hat, y), Catch::Contains("recipe_linear.shapes"));
  RowMatrixXf wrong_y(2, 8);
  CHECK_THROWS_AS(q.reference_forward(x, dequantize(q.weight), wrong_y), lowbit::error);
  q.reference_forward(x, dequantize(q.weight), y);
  CHECK((y.array() == q.reference_forward(x).array()).all());
}

// forward_together (a decode step's q, k and v in one hand-off) gives each layer's forward()
// bits: packed layers of every recipe, an fp32 and a bf16 layer, split into tasks run
// together, on 1 and 2 threads.
TEST_CASE("forward_together gives the bits of each layer's forward()", "[model][linear]") {
  struct restore {
    ~restore() { set_num_threads(0); }
  } restore_threads;
  RowMatrixXf x = lowbit_test::gaussian(5, 128, 42);
  for (Eigen::Index j = 3; j < x.cols(); j += 17) x.col(j) *= 20.0f;
  CalibrationOptions copt;
  copt.max_sample_rows = 5;
  const ActivationStats stats = collect_stats(x, copt);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(40, -0.25f, 0.25f);
  std::vector<std::unique_ptr<model::LinearLayer>> layers;
  for (const std::string& name : recipe_names()) {
    const RowMatrixXf w = lowbit_test::gaussian(40 + 8 * static_cast<Eigen::Index>(layers.size() % 3), 128,
                                                50 + static_cast<unsigned>(layers.size()), 0.05f);
    auto layer = std::make_unique<model::RecipeLinear>(
        quantize_linear(w, w.rows() == 40 ? &bias : nullptr, recipe_from_name(name), &stats, "together." + name),
        /*use_kernels=*/true);
    if (layer->uses_kernels()) layers.push_back(std::move(layer));
  }
  REQUIRE(layers.size() >= 3);
  // An fp32 and a bf16 layer (the layers of unquantized models split too), placed first.
  layers.push_back(std::make_unique<model::Fp32Linear>(lowbit_test::gaussian(300, 128, 60, 0.05f)));
  auto bits = std::make_shared<std::vector<std::uint16_t>>();
  const RowMatrixXf w16 = lowbit_test::gaussian(200, 128, 61, 0.05f);
  for (Eigen::Index i = 0; i < w16.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, w16.data() + i, 4);
    bits->push_back(static_cast<std::uint16_t>(u >> 16));
  }
  layers.push_back(std::make_unique<model::Wide16Linear>(bits, Wide16View{bits->data(), 200, 128, wide16_type::bf16}));
  std::rotate(layers.begin(), layers.end() - 2, layers.end());
  for (const auto& l : layers) {  // every layer here splits
    RowMatrixXf y(x.rows(), l->out_features());
    CHECK(l->begin(x, y) != nullptr);
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (std::size_t first = 0; first + 3 <= layers.size(); ++first) {
      const model::LinearLayer* group[3] = {layers[first].get(), layers[first + 1].get(), layers[first + 2].get()};
      std::vector<RowMatrixXf> expected, got;
      for (const model::LinearLayer* l : group) {
        expected.emplace_back(x.rows(), l->out_features());
        got.push_back(RowMatrixXf::Constant(x.rows(), l->out_features(), -3.0f));
        l->forward(x, expected.back());
      }
      const RowMatrixRef ys[3] = {got[0], got[1], got[2]};
      model::forward_together(group, ys, 3, x);
      for (std::size_t i = 0; i < 3; ++i) {
        INFO("threads " << threads << ", " << group[i]->describe());
        CHECK((got[i].array() == expected[i].array()).all());
      }
    }
  }
  const model::LinearLayer* nine[9] = {};
  CHECK_THROWS_AS(model::forward_together(nine, nullptr, 9, x), lowbit::error);
}
}  // namespace test_model_recipe_linear_cpp
